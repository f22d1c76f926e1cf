"""Run the `banana` CLI in-process or as a subprocess and capture what a user would see."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: object, timeout: float = 600, env: dict[str, str] | None = None,
            launcher: list[str] | None = None, in_process: bool = False) -> Result:
    """`python cli.py ARGS` in a subprocess (the real entry point, real exit code); the one way tests run the CLI.

    env: variables set on top of this process's environment. launcher: what runs cli.py instead of
    `python` (e.g. torchrun's argv, one process per rank). in_process: call `cli.main` in this process with
    stdout/stderr captured (the same error handling; no interpreter start-up, sees the test's monkeypatches).
    """
    if in_process:
        if env is not None or launcher is not None:
            raise ValueError("env and launcher need a subprocess (in_process=False)")
        import cli

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main([str(a) for a in args])
        return Result(code, out.getvalue(), err.getvalue())
    command = [*(launcher or [sys.executable]), str(ROOT / "cli.py"), *map(str, args)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, *fragments: str, alone: bool = False) -> str:
    """Non-zero exit, no traceback, an `error:` line mentioning every fragment (returned). alone: that line is all
    of stderr (in-process runs, where library logs written to fd 2 do not land in `err`)."""
    assert result.code != 0, result
    assert "Traceback" not in result.err, result.err
    lines = [ln for ln in result.err.splitlines() if ln.startswith("error:") or ln.startswith("Error:")]
    if alone:
        assert lines == [ln for ln in result.err.splitlines() if ln.strip()], result.err
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def safetensors_payload(path: Path) -> int:
    """Bytes of a safetensors file after its JSON header (the tensors alone)."""
    with open(path, "rb") as handle:
        return Path(path).stat().st_size - 8 - int.from_bytes(handle.read(8), "little")

"""Run the `banana` CLI in-process or as a subprocess and capture what a user would see."""

from __future__ import annotations

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


def run_cli(*args: str, timeout: float = 600) -> Result:
    """`python cli.py ARGS` in a subprocess (the real entry point, real exit code)."""
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """Non-zero exit, no traceback, an `error:` line mentioning every fragment."""
    assert result.code != 0, result
    assert "Traceback" not in result.err, result.err
    lines = [ln for ln in result.err.splitlines() if ln.startswith("error:") or ln.startswith("Error:")]
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def safetensors_payload(path: Path) -> int:
    """Bytes of a safetensors file after its JSON header (the tensors alone)."""
    with open(path, "rb") as handle:
        return Path(path).stat().st_size - 8 - int.from_bytes(handle.read(8), "little")

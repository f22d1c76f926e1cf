"""Run `banana train ...` / `banana eval ...` as a user would (subprocess, real exit code).

Uses cli.py's entry point; registers `banana_sdk.train_commands` first if cli.py does not list it yet.
"""

from __future__ import annotations

import os
import subprocess
import sys

from cli_helpers import ROOT, Result

_BOOT = (
    "import sys, cli\n"
    "from banana_sdk import train_commands as t\n"
    "[cli.banana.add_command(c) for c in t.COMMANDS if c.name not in cli.banana.commands]\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


def run_banana(*args: object, timeout: float = 600, env: dict[str, str] | None = None,
               launcher: list[str] | None = None) -> Result:
    """`banana ARGS` in a subprocess (`launcher`, e.g. torchrun, prefixes the python entry point)."""
    command = (launcher or [sys.executable, "-c", _BOOT]) + [str(a) for a in args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


if __name__ == "__main__":  # `torchrun ... tests/test_train_helpers.py train ...` (one process per rank)
    exec(_BOOT)

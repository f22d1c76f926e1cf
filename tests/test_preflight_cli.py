"""`banana preflight` through the real entry point (cli.main: one-line errors, exit codes), with the command
registered the way cli.py does it for every module in `_COMMAND_MODULES`."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.cli_helpers import ROOT, Result

_LAUNCH = ("import sys, cli\n"
           "from converters.preflight.commands import COMMANDS\n"
           "for c in COMMANDS:\n"
           "    if c.name not in cli.banana.commands:\n"
           "        cli.banana.add_command(c)\n"
           "sys.exit(cli.main(sys.argv[1:]))\n")


def run_cli(*args: object, timeout: float = 600) -> Result:
    """Like tests.cli_helpers.run_cli, also before cli.py lists converters.preflight.commands."""
    proc = subprocess.run([sys.executable, "-c", _LAUNCH, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_preflight_is_a_banana_command() -> None:
    result = run_cli("preflight", "--help")
    assert result.code == 0
    for option in ("--delegate", "--api-level", "--max-fallbacks", "--gpu-backend", "--soc", "--json"):
        assert option in result.out


def run_in_process(capsys, *args: object) -> Result:  # noqa: ANN001
    """cli.main in this process (same error handling as the entry point, no interpreter start-up)."""
    import cli
    from converters.preflight.commands import COMMANDS

    for command in COMMANDS:
        if command.name not in cli.banana.commands:
            cli.banana.add_command(command)
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)

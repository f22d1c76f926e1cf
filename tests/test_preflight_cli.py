"""`banana preflight` is a command of the real entry point (cli.py lists converters.preflight.commands)."""

from __future__ import annotations

from cli_helpers import run_cli


def test_preflight_is_a_banana_command() -> None:
    result = run_cli("preflight", "--help")
    assert result.code == 0
    for option in ("--delegate", "--api-level", "--max-fallbacks", "--gpu-backend", "--soc", "--json"):
        assert option in result.out

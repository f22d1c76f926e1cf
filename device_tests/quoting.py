"""Quoting of device shell commands: the only way an argument reaches the device's `sh`.

`adb shell` sends one string that the device's shell parses, so every argument is quoted with POSIX
single quotes (`'...'`, a `'` becomes `'"'"'`), which mksh and toybox sh read literally -- spaces,
`;`, `$()`, backticks, globs and newlines included. Command lines are never built by pasting
unquoted user text.
"""

from __future__ import annotations

import shlex

from device_tests.errors import DeviceError


def quote(arg: str) -> str:
    """One argument as a shell word that means exactly `arg`; NUL cannot be passed and is refused."""
    if not isinstance(arg, str):
        raise TypeError(f"device arguments are strings, got {type(arg).__name__}")
    if "\0" in arg:
        raise DeviceError(f"argument {arg!r} contains a NUL character, which no device command can receive")
    return shlex.quote(arg)


def command_line(argv: list[str]) -> str:
    """An argument list as one shell command line."""
    if not argv:
        raise ValueError("empty command")
    return " ".join(quote(a) for a in argv)


def script(commands: list[list[str]], separator: str = "; ") -> str:
    """Several quoted commands run one after another (`;`-joined) in one shell round trip."""
    return separator.join(command_line(c) for c in commands)

"""Exit statuses over adb's legacy `shell:` service (devices without the `shell_v2` feature).

adbd before Android 7 (and some vendor builds) only offers `shell:CMD`: one byte stream with stdout and
stderr merged and no exit status. We append `; echo <sentinel>$?` to the command line, where the sentinel
is a fresh random token per call (so no program output can forge it), and read the status back from the
last occurrence of the sentinel. Older adbd runs `shell:` commands on a PTY, which turns every `\\n` into
`\\r\\n`; the sentinel's own line shows whether that happened, and the output is translated back.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from device_tests.quoting import quote

SENTINEL_PREFIX = "BANANA-EXIT-"  # followed by 32 hex digits and a colon, then the exit status


class LegacyShellError(Exception):
    """The legacy shell's output ended without the sentinel (the shell or the connection died mid-command)."""


@dataclass(frozen=True)
class LegacyOutput:
    returncode: int  # the command line's exit status, read from the sentinel
    text: bytes  # everything the command printed (stdout and stderr merged), PTY line endings undone


def new_sentinel() -> str:
    """A marker no program prints by accident: a fresh UUID per command."""
    return f"{SENTINEL_PREFIX}{uuid.uuid4().hex}:"


def wrap(line: str, sentinel: str) -> str:
    """`line` followed by an echo of the sentinel and the exit status of its last command."""
    return f"{line}; echo {quote(sentinel)}$?"


def unwrap(raw: bytes, sentinel: str) -> LegacyOutput:
    """Split the legacy shell's bytes into the command's output and its exit status."""
    at = raw.rfind(sentinel.encode())
    if at < 0:
        raise LegacyShellError("the device's shell ended without reporting an exit status")
    tail = raw[at + len(sentinel):]
    match = re.match(rb"(\d{1,3})(\r?)\n?", tail)
    if match is None:
        raise LegacyShellError(f"the device's shell reported an unreadable exit status {tail[:16]!r}")
    text = raw[:at]
    if match.group(2):  # a PTY: every "\n" the command printed arrived as "\r\n"
        text = text.replace(b"\r\n", b"\n")
    return LegacyOutput(int(match.group(1)), text)

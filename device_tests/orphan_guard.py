"""`python -m device_tests.orphan_guard PARENT_PID -- CMD...`: run CMD so that it dies with its parent.

Sets PR_SET_PDEATHSIG (SIGTERM) on itself and then execs CMD (the setting survives exec), so a
simulator or adb server we start cannot outlive the test run or demo that started it, even if that
process is killed. Done in the child, not with `preexec_fn`, which is unsafe in threaded programs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def guarded(argv: list[str]) -> list[str]:
    """`argv` wrapped so that it dies with the calling process."""
    return [sys.executable, "-m", "device_tests.orphan_guard", str(os.getpid()), "--", *argv]


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print("usage: python -m device_tests.orphan_guard PARENT_PID -- CMD...", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(sys.argv[1]):  # the parent died before we could watch it
        return 1
    os.execvp(sys.argv[3], sys.argv[3:])
    return 127


if __name__ == "__main__":
    sys.exit(main())

"""The `shell:` and `shell,v2,...:` services (and `exec:`).

shell_v2 packets are `[id u8][length u32 LE][data]`: 0 stdin, 1 stdout, 2 stderr, 3 exit code (one
byte), 4 close stdin, 5 window size. The v1 shell (and `exec:`) sends raw output and no exit code.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable

from device_tests.sim.transport import Stream, StreamClosed

ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN, ID_WINDOW = range(6)
PACKET = struct.Struct("<BI")

# run(command_line, stdout_write, stderr_write) -> exit status
ShellRunner = Callable[[str, Callable[[bytes], None], Callable[[bytes], None]], int]


def packet(kind: int, data: bytes) -> bytes:
    """One shell_v2 packet."""
    return PACKET.pack(kind, len(data)) + data


def parse_service(service: str) -> tuple[bool, str] | None:
    """`shell,v2,raw:cmd` -> (v2, cmd); None when `service` is not a shell service."""
    if service.startswith("exec:"):
        return False, service[len("exec:"):]
    if not service.startswith("shell"):
        return None
    head, sep, command = service.partition(":")
    if not sep:
        return None
    options = head.split(",")
    if options[0] != "shell":
        return None
    return "v2" in options[1:], command


def serve_shell(stream: Stream, command: str, v2: bool, run: ShellRunner) -> None:
    """Run `command` and stream its output back (with the exit code when v2)."""
    if not command.strip():
        message = b"interactive shells are not supported by the simulated device; give a command\n"
        if v2:
            stream.write(packet(ID_STDERR, message) + packet(ID_EXIT, bytes([1])))
        else:
            stream.write(message)
        return
    lock = threading.Lock()

    def out(kind: int) -> Callable[[bytes], None]:
        def write(data: bytes) -> None:
            if data:
                with lock:
                    stream.write(packet(kind, data) if v2 else data)
        return write

    if v2:  # drain stdin packets so the host's writes are acknowledged
        threading.Thread(target=_drain, args=(stream,), daemon=True, name="sim-shell-stdin").start()
    status = run(command, out(ID_STDOUT), out(ID_STDERR))
    if v2:
        with lock:
            stream.write(packet(ID_EXIT, bytes([status & 0xFF])))


def _drain(stream: Stream) -> None:
    """Read and drop the host's stdin/window packets until the stream closes."""
    try:
        while True:
            kind, length = PACKET.unpack(stream.read_exact(PACKET.size, timeout=None))
            if length:
                stream.read_exact(length, timeout=None)
            if kind == ID_CLOSE_STDIN:
                return
    except StreamClosed:
        return

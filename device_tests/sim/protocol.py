"""adb transport messages: a 24-byte header of six little-endian u32 plus a payload.

Header: command, arg0, arg1, payload length, payload checksum (byte sum), magic (command ^ 0xFFFFFFFF).
Facts measured with Debian adb 29.0.6 (the host side we serve):
  * the host opens with CNXN(version, maxdata, "host::features=..."); a device may answer CNXN directly
    (no AUTH) with CNXN(min(host version, VERSION), MAX_DATA, "device::<props>;features=...").
  * streams: OPEN(local, 0, "service\\0") -> OKAY(ours, theirs) | CLSE(0, theirs); each WRTE is answered
    by OKAY, and a side keeps at most one unacknowledged WRTE per stream; CLSE is answered with CLSE.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

A_SYNC = 0x434E5953
A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_STLS = 0x534C5453

VERSION = 0x01000001  # protocol version we speak (skip-checksum era)
MAX_DATA = 256 * 1024  # largest payload we announce and accept
HEADER = struct.Struct("<6I")
NAMES = {A_SYNC: "SYNC", A_CNXN: "CNXN", A_AUTH: "AUTH", A_OPEN: "OPEN", A_OKAY: "OKAY",
         A_CLSE: "CLSE", A_WRTE: "WRTE", A_STLS: "STLS"}


class ProtocolError(Exception):
    """The peer sent bytes that are not an adb message (bad magic, oversized payload)."""


@dataclass(frozen=True)
class Message:
    command: int  # A_* constant
    arg0: int  # meaning depends on the command (local stream id, version, ...)
    arg1: int  # meaning depends on the command (remote stream id, maxdata, ...)
    data: bytes = b""  # payload

    def pack(self) -> bytes:
        """Header + payload as sent on the wire."""
        checksum = sum(self.data) & 0xFFFFFFFF
        header = HEADER.pack(self.command, self.arg0, self.arg1, len(self.data), checksum,
                             self.command ^ 0xFFFFFFFF)
        return header + self.data

    def __repr__(self) -> str:
        name = NAMES.get(self.command, hex(self.command))
        return f"Message({name}, {self.arg0}, {self.arg1}, {len(self.data)} bytes)"


def unpack_header(raw: bytes) -> tuple[int, int, int, int, int]:
    """24 header bytes -> (command, arg0, arg1, length, checksum); raises ProtocolError on bad magic."""
    command, arg0, arg1, length, checksum, magic = HEADER.unpack(raw)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic {magic:#x} for command {command:#x}")
    if length > 16 * 1024 * 1024:
        raise ProtocolError(f"payload of {length} bytes is too large")
    return command, arg0, arg1, length, checksum


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """Read exactly n bytes; raises ConnectionError when the peer closes first."""
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket) -> Message:
    """Read one message; raises ConnectionError on EOF, ProtocolError on garbage."""
    command, arg0, arg1, length, checksum = unpack_header(recv_exact(sock, HEADER.size))
    data = recv_exact(sock, length) if length else b""
    return Message(command, arg0, arg1, data)


def banner(props: dict[str, str], features: tuple[str, ...]) -> bytes:
    """The CNXN payload a device sends: `device::key=value;...;features=a,b`."""
    fields = [f"{key}={value}" for key, value in props.items()]
    fields.append("features=" + ",".join(features))
    return ("device::" + ";".join(fields)).encode()

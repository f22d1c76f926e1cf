"""Host side of adb's sync protocol (file transfer) over a transport opened by adbutils.

One `SyncSession` carries many requests (STAT, LIST, SEND, RECV) over a single `sync:` stream, with
64 KiB DATA chunks (adbutils' own push sends 4 KiB chunks and drops FAIL messages). Every read is exact
and bounded by a socket timeout, so a vanished device surfaces as an error, never as a hang.
"""

from __future__ import annotations

import socket
import stat as stat_mod
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from device_tests.errors import DeviceCommandError, DeviceDisconnected, StorageFull

CHUNK = 64 * 1024  # largest DATA payload adbd accepts
MAX_PULL = 256 * 1024 * 1024  # refuse to pull more than this into memory
Progress = Callable[[int], None]


class SyncLost(DeviceDisconnected):
    """The sync stream ended early (device gone, adb server gone)."""


@dataclass(frozen=True)
class RemoteStat:
    mode: int  # st_mode, 0 when the path does not exist
    size: int  # bytes
    mtime: int  # seconds since the epoch

    @property
    def exists(self) -> bool:
        return self.mode != 0

    @property
    def is_dir(self) -> bool:
        return stat_mod.S_ISDIR(self.mode)


class SyncSession:
    """An open `sync:` stream to one device."""

    def __init__(self, sock: socket.socket, serial: str) -> None:
        self.sock = sock
        self.serial = serial

    # ---- framing
    def _recv(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            try:
                chunk = self.sock.recv(min(n - got, 1 << 20))
            except TimeoutError:
                raise SyncLost(f"{self.serial} stopped answering (sync timeout)") from None
            except OSError as exc:
                raise SyncLost(f"lost the connection to {self.serial}: {exc.strerror or exc}") from None
            if not chunk:
                raise SyncLost(f"lost the connection to {self.serial} during a file transfer")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise SyncLost(f"lost the connection to {self.serial}: {exc.strerror or exc}") from None

    def _request(self, ident: bytes, arg: str) -> None:
        raw = arg.encode("utf-8")
        if len(raw) > 1024:
            raise DeviceCommandError(f"device path too long ({len(raw)} bytes > 1024): {arg[:60]}...")
        self._send(ident + struct.pack("<I", len(raw)) + raw)

    def _fail_message(self) -> str:
        (length,) = struct.unpack("<I", self._recv(4))
        return self._recv(length).decode("utf-8", "replace")

    # ---- requests
    def stat(self, path: str) -> RemoteStat:
        self._request(b"STAT", path)
        reply = self._recv(16)
        if reply[:4] != b"STAT":
            raise SyncLost(f"unexpected sync reply {reply[:4]!r} from {self.serial}")
        return RemoteStat(*struct.unpack("<3I", reply[4:]))

    def list(self, path: str) -> list[tuple[str, RemoteStat]]:
        self._request(b"LIST", path)
        out = []
        while True:
            head = self._recv(20)
            if head[:4] == b"DONE":
                return out
            if head[:4] != b"DENT":
                raise SyncLost(f"unexpected sync reply {head[:4]!r} from {self.serial}")
            mode, size, mtime, namelen = struct.unpack("<4I", head[4:])
            name = self._recv(namelen).decode("utf-8", "surrogateescape")
            if name not in (".", ".."):
                out.append((name, RemoteStat(mode, size, mtime)))

    def push(self, local: Path, remote: str, mode: int = 0o644, progress: Progress | None = None) -> int:
        """Send one file; returns bytes sent. StorageFull / DeviceCommandError carry the device's reason."""
        self._request(b"SEND", f"{remote},{stat_mod.S_IFREG | mode}")
        sent = 0
        with open(local, "rb") as handle:
            while block := handle.read(CHUNK):
                self._send(b"DATA" + struct.pack("<I", len(block)) + block)
                sent += len(block)
                if progress:
                    progress(len(block))
        self._send(b"DONE" + struct.pack("<I", int(time.time())))
        reply = self._recv(4)
        if reply == b"OKAY":
            self._recv(4)
            return sent
        if reply != b"FAIL":
            raise SyncLost(f"unexpected sync reply {reply!r} from {self.serial}")
        message = self._fail_message()
        if "No space left" in message:
            raise StorageFull(f"{self.serial} ran out of storage while receiving {remote}: {message}")
        raise DeviceCommandError(f"{self.serial} refused {remote}: {message}")

    def pull(self, remote: str, limit: int = MAX_PULL) -> bytes:
        """Content of a device file (at most `limit` bytes)."""
        self._request(b"RECV", remote)
        chunks, total = [], 0
        while True:
            head = self._recv(8)
            ident, (length,) = head[:4], struct.unpack("<I", head[4:])
            if ident == b"DONE":
                return b"".join(chunks)
            if ident == b"FAIL":
                message = self._recv(length).decode("utf-8", "replace")
                raise DeviceCommandError(f"cannot read {remote} on {self.serial}: {message}")
            if ident != b"DATA" or length > CHUNK:
                raise SyncLost(f"unexpected sync reply {ident!r} from {self.serial}")
            total += length
            if total > limit:
                raise DeviceCommandError(f"{remote} on {self.serial} is larger than {limit} bytes")
            chunks.append(self._recv(length))

    def quit(self) -> None:
        try:
            self._send(b"QUIT" + struct.pack("<I", 0))
        except SyncLost:
            pass

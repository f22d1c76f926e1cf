"""The `sync:` service (file transfer), protocol v1 as adbd speaks it.

Requests are `[id 4 bytes][length u32][path]`:
  STAT -> `STAT mode size mtime` (all zero when absent)
  LIST -> `DENT mode size mtime namelen name`... then `DONE` with four zero words
  SEND "path,mode" -> the host sends `DATA len bytes`... then `DONE mtime`; we answer `OKAY 0` or `FAIL len msg`
  RECV -> `DATA len bytes` (at most 64 KiB each)... then `DONE 0`, or `FAIL len msg`
  QUIT -> end of the service
`STA2`/`LST2` (stat_v2/ls_v2) are not offered: we never advertise those features.
"""

from __future__ import annotations

import stat as stat_mod
import struct
from collections.abc import Iterator

from device_tests.sim.fs import FsError, SimFS
from device_tests.sim.transport import Stream

MAX_PATH = 1024  # adbd's limit on a request path
MAX_CHUNK = 64 * 1024  # largest DATA payload
WORD = struct.Struct("<I")
REQ = struct.Struct("<4sI")


class SyncProtocolError(Exception):
    """The host broke the sync protocol; the service answers FAIL and ends."""


def _fail(stream: Stream, message: str) -> None:
    data = message.encode("utf-8", "replace")
    stream.write(b"FAIL" + WORD.pack(len(data)) + data)


def serve_sync(stream: Stream, fs: SimFS) -> None:
    """Serve sync requests until QUIT or the host closes the stream."""
    while True:
        header = stream.read_exact(REQ.size, timeout=None)
        ident, length = REQ.unpack(header)
        if ident == b"QUIT":
            return
        if length > MAX_PATH:
            _fail(stream, f"path too long ({length} bytes)")
            return
        arg = stream.read_exact(length).decode("utf-8", "surrogateescape")
        if ident == b"STAT":
            st = fs.stat(arg)
            words = (st.mode, min(st.size, 0xFFFFFFFF), st.mtime) if st else (0, 0, 0)
            stream.write(b"STAT" + struct.pack("<3I", *words))
        elif ident == b"LIST":
            _list(stream, fs, arg)
        elif ident == b"SEND":
            try:
                _send(stream, fs, arg)
            except SyncProtocolError as exc:
                _fail(stream, str(exc))
                return
        elif ident == b"RECV":
            _recv(stream, fs, arg)
        else:
            _fail(stream, f"unknown sync command {ident!r}")
            return


def _list(stream: Stream, fs: SimFS, path: str) -> None:
    try:
        entries = fs.listdir(path)
    except FsError:
        entries = []
    for name, st in entries:
        raw = name.encode("utf-8", "surrogateescape")
        stream.write(b"DENT" + struct.pack("<4I", st.mode, min(st.size, 0xFFFFFFFF), st.mtime, len(raw)) + raw)
    stream.write(b"DONE" + bytes(16))


def _send(stream: Stream, fs: SimFS, arg: str) -> None:
    path, _, mode_text = arg.rpartition(",")
    if not path:
        path, mode_text = arg, "33188"
    try:
        mode = int(mode_text)
    except ValueError:
        mode = 0o100644
    mtime: list[int] = []

    def chunks() -> Iterator[bytes]:
        while not mtime:
            ident, length = REQ.unpack(stream.read_exact(REQ.size))
            if ident == b"DATA" and length <= MAX_CHUNK:
                yield stream.read_exact(length)
            elif ident == b"DONE":
                mtime.append(length)
            else:
                raise SyncProtocolError(f"unexpected {ident!r} ({length} bytes) in a file upload")

    try:
        if stat_mod.S_ISLNK(mode):
            raise FsError(95, path)  # EOPNOTSUPP: the simulator has no symlinks
        fs.write(path, chunks(), mode=mode & 0o7777, mtime=None)
    except FsError as exc:
        for _ in chunks():  # swallow the rest of the upload, then refuse it
            pass
        _fail(stream, f"couldn't create file: {exc.strerror}")
        return
    stream.write(b"OKAY" + WORD.pack(0))


def _recv(stream: Stream, fs: SimFS, path: str) -> None:
    try:
        st = fs.stat(path)
        if st is None:
            _fail(stream, "No such file or directory")
            return
        if st.is_dir:
            _fail(stream, "Is a directory")
            return
        for block in fs.read_chunks(path):
            stream.write(b"DATA" + WORD.pack(len(block)) + block)
    except FsError as exc:
        _fail(stream, exc.strerror)
        return
    stream.write(b"DONE" + WORD.pack(0))

"""The simulated device's filesystem: a sandbox directory on the host that no device path can escape.

Device paths are POSIX paths normalised against `/` (so `/../../etc` is `/etc` inside the sandbox);
symbolic links are never created and never followed. The shell user may write only under
`/data/local/tmp` and `/sdcard` (as on a phone); `/proc` and `/sys` files are generated on read from
the device's state. Writes go to a temp name and are renamed when complete, and fail with ENOSPC when
the simulated storage is full (nothing half-written remains).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

WRITABLE = ("/data/local/tmp", "/sdcard")  # where the shell user may write
CHUNK = 64 * 1024  # read size for streaming files out


class FsError(OSError):
    """An errno-style failure with the message a device shell would print."""

    def __init__(self, code: int, path: str) -> None:
        super().__init__(code, os.strerror(code), path)
        self.code = code
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.strerror}"


@dataclass(frozen=True)
class Stat:
    mode: int  # st_mode (type bits + permissions)
    size: int  # bytes
    mtime: int  # seconds since the epoch

    @property
    def is_dir(self) -> bool:
        return stat_mod.S_ISDIR(self.mode)


def normalize(path: str, cwd: str = "/") -> str:
    """Absolute, normalised device path; `..` never climbs above `/`."""
    if "\0" in path:
        raise FsError(errno.EINVAL, path.replace("\0", "\\0"))
    joined = posixpath.join(cwd, path) if path else cwd
    parts: list[str] = []
    for part in joined.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


class SimFS:
    """Device filesystem over a host directory plus generated read-only files."""

    def __init__(self, root: Path, capacity_bytes: int, write_mb_per_s: float | None = None) -> None:
        self.root = root.resolve()
        self.capacity_bytes = capacity_bytes  # total size of the writable storage
        self.write_mb_per_s = write_mb_per_s  # storage/link write speed limit; None: as fast as the host
        self._generated: dict[str, Callable[[], bytes]] = {}  # device path -> content on read
        self._lock = threading.Lock()
        for writable in WRITABLE:  # the shell user's storage exists on every phone
            self.root.joinpath(writable.lstrip("/")).mkdir(parents=True, exist_ok=True)
        self._used = sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file() and not f.is_symlink())

    # ---- mapping
    def _host(self, path: str) -> Path:
        dev = normalize(path)
        host = self.root.joinpath(*[p for p in dev.split("/") if p])
        cursor = self.root
        for part in host.relative_to(self.root).parts:  # refuse any symlink on the way
            cursor = cursor / part
            if cursor.is_symlink():
                raise FsError(errno.ENOENT, dev)
        return host

    def host_path(self, path: str) -> Path:
        """Where a device path lives on the host (for the simulated app, which reads its files directly)."""
        return self._host(path)

    def generate(self, path: str, content: Callable[[], bytes]) -> None:
        """Register a read-only generated file (e.g. /sys/class/thermal/thermal_zone0/temp)."""
        self._generated[normalize(path)] = content

    def _generated_dir(self, dev: str) -> bool:
        prefix = dev.rstrip("/") + "/"
        return any(p.startswith(prefix) for p in self._generated)

    @staticmethod
    def _check_writable(dev: str) -> None:
        if not any(dev == w or dev.startswith(w + "/") for w in WRITABLE):
            raise FsError(errno.EACCES, dev)

    # ---- queries
    def stat(self, path: str) -> Stat | None:
        """Stat of a file or directory, None when it does not exist."""
        dev = normalize(path)
        if dev in self._generated:
            return Stat(stat_mod.S_IFREG | 0o444, len(self._generated[dev]()), int(time.time()))
        if self._generated_dir(dev):
            return Stat(stat_mod.S_IFDIR | 0o555, 0, int(time.time()))
        try:
            st = os.lstat(self._host(dev))
        except (FileNotFoundError, NotADirectoryError, FsError):
            return None
        if stat_mod.S_ISLNK(st.st_mode):
            return None
        return Stat(st.st_mode, st.st_size if stat_mod.S_ISREG(st.st_mode) else 0, int(st.st_mtime))

    def listdir(self, path: str) -> list[tuple[str, Stat]]:
        """Entries of a directory, sorted by name."""
        dev = normalize(path)
        st = self.stat(dev)
        if st is None:
            raise FsError(errno.ENOENT, dev)
        if not st.is_dir:
            raise FsError(errno.ENOTDIR, dev)
        names = set()
        prefix = dev.rstrip("/") + "/"
        for gen in self._generated:
            if gen.startswith(prefix):
                names.add(gen[len(prefix):].split("/")[0])
        host = self._host(dev)
        if host.is_dir():
            names.update(p.name for p in host.iterdir() if not p.is_symlink() and not p.name.startswith(".sim-"))
        out = []
        for name in sorted(names):
            child = self.stat(posixpath.join(dev, name))
            if child is not None:
                out.append((name, child))
        return out

    def read_chunks(self, path: str) -> Iterator[bytes]:
        """Content of a file in chunks of at most 64 KiB."""
        dev = normalize(path)
        if dev in self._generated:
            data = self._generated[dev]()
            for i in range(0, len(data), CHUNK):
                yield data[i:i + CHUNK]
            return
        st = self.stat(dev)
        if st is None:
            raise FsError(errno.ENOENT, dev)
        if st.is_dir:
            raise FsError(errno.EISDIR, dev)
        with open(self._host(dev), "rb") as handle:
            while block := handle.read(CHUNK):
                yield block

    def read(self, path: str) -> bytes:
        return b"".join(self.read_chunks(path))

    # ---- storage accounting
    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def free_bytes(self) -> int:
        return max(0, self.capacity_bytes - self._used)

    def _reserve(self, n: int, dev: str) -> None:
        with self._lock:
            if self._used + n > self.capacity_bytes:
                raise FsError(errno.ENOSPC, dev)
            self._used += n

    def _release(self, n: int) -> None:
        with self._lock:
            self._used = max(0, self._used - n)

    # ---- changes
    def mkdir(self, path: str, parents: bool = False) -> None:
        dev = normalize(path)
        st = self.stat(dev)
        if st is not None:
            if st.is_dir and parents:
                return
            raise FsError(errno.EEXIST, dev)
        parent = posixpath.dirname(dev)
        if self.stat(parent) is None:
            if not parents:
                raise FsError(errno.ENOENT, dev)
            self.mkdir(parent, parents=True)
        elif not self.stat(parent).is_dir:
            raise FsError(errno.ENOTDIR, dev)
        self._check_writable(dev)
        self._host(dev).mkdir()

    def write(self, path: str, chunks: Iterable[bytes], mode: int = 0o644, mtime: int | None = None) -> int:
        """Write a file from chunks atomically (parents created); returns its size. ENOSPC when full."""
        dev = normalize(path)
        self._check_writable(dev)
        existing = self.stat(dev)
        if existing is not None and existing.is_dir:
            raise FsError(errno.EISDIR, dev)
        self.mkdir(posixpath.dirname(dev), parents=True)
        host = self._host(dev)
        tmp = host.with_name(f".sim-{host.name}.{threading.get_ident()}.tmp")
        written = 0
        start = time.monotonic()
        try:
            with open(tmp, "wb") as handle:
                for chunk in chunks:
                    self._reserve(len(chunk), dev)
                    written += len(chunk)
                    handle.write(chunk)
                    if self.write_mb_per_s:  # a slow link: wait until this many bytes may have arrived
                        time.sleep(max(0.0, start + written / (self.write_mb_per_s * 1e6) - time.monotonic()))
            os.chmod(tmp, (mode & 0o777) | 0o600)
            if mtime is not None:
                os.utime(tmp, (mtime, mtime))
            os.replace(tmp, host)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            self._release(written)
            raise
        if existing is not None:
            self._release(existing.size)
        return written

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> int:
        return self.write(path, [data], mode)

    def touch(self, path: str) -> None:
        dev = normalize(path)
        if self.stat(dev) is None:
            self.write(dev, [])
        else:
            self._check_writable(dev)
            os.utime(self._host(dev))

    def chmod(self, path: str, mode: int) -> None:
        dev = normalize(path)
        if self.stat(dev) is None:
            raise FsError(errno.ENOENT, dev)
        self._check_writable(dev)
        os.chmod(self._host(dev), (mode & 0o777) | 0o700 if self.stat(dev).is_dir else (mode & 0o777) | 0o600)

    def remove(self, path: str, recursive: bool = False) -> None:
        dev = normalize(path)
        st = self.stat(dev)
        if st is None:
            raise FsError(errno.ENOENT, dev)
        self._check_writable(dev)
        if dev in WRITABLE:
            raise FsError(errno.EBUSY, dev)
        host = self._host(dev)
        if st.is_dir:
            if not recursive:
                raise FsError(errno.EISDIR, dev)
            size = sum(f.stat().st_size for f in host.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(host)
            self._release(size)
        else:
            os.unlink(host)
            self._release(st.size)

    def rename(self, src: str, dst: str) -> None:
        a, b = normalize(src), normalize(dst)
        if self.stat(a) is None:
            raise FsError(errno.ENOENT, a)
        self._check_writable(a)
        self._check_writable(b)
        os.replace(self._host(a), self._host(b))

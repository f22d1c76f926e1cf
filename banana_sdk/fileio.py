"""Atomic file writes: write to a temp name in the same directory, fsync, rename.

A crash, a full disk or an error mid-write never leaves a half-written file under the final name,
and never touches a file the user already had until the new one is complete. The result gets the mode a
plain `open(path, "w")` would give (0666 minus the umask), not mkstemp's private 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yield a binary file whose content replaces `path` only if the block completes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask: from /proc on Linux (no side effect), else by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_open(path) as handle:
        handle.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Replace `path` with pretty JSON atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


MAX_JSON_DEPTH = 64  # deepest nesting of objects/arrays any of our JSON formats may have (the Kotlin reader's too)
MAX_JSON_BYTES = 64 << 20  # largest JSON document we read (a DDPM schedule table is the biggest part: < 1 MB)


def _json_depth_ok(text: str, limit: int) -> bool:
    """True if brackets nest at most `limit` deep (strings skipped), checked before `json.loads` recurses."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON (JSON has no NaN or Infinity)")


def parse_json(text: str, where: str, error: type[Exception]) -> Any:
    """Strict JSON: no NaN/Infinity literals, at most MAX_JSON_DEPTH deep; `error(one line)` otherwise."""
    if not _json_depth_ok(text, MAX_JSON_DEPTH):
        raise error(f"{where} is not valid JSON: nesting deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(text, parse_constant=_no_constants)
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise error(f"{where} is not valid JSON ({str(exc).splitlines()[0]})") from None


def read_versioned_json(
    path: str | os.PathLike[str], *, fmt: str | None, max_version: int, error: type[Exception], what: str,
    require_version: bool = True,
) -> dict[str, Any]:
    """The one reader of our versioned JSON files (checkpoints, bundle manifests, run files, subjects, upscalers).

    Returns the top-level object after checking, with one-line `error`s naming the file: it exists and is
    readable, is at most MAX_JSON_BYTES, is strict JSON (see `parse_json`), is an object, has `"format": fmt`
    (unless fmt is None) and an integer `schema_version` in 1..max_version (absent is refused unless
    `require_version` is False, for formats that started without one; it then reads as 0).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise error(f"{path} is {size} bytes; a {what} is at most {MAX_JSON_BYTES} bytes")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(f"{path} is missing; it is not a {what}") from None
    except IsADirectoryError:
        raise error(f"{path} is a directory, not a {what} file") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text; it is not a {what}") from None
    data = parse_json(text, str(path), error)
    if not isinstance(data, dict):
        raise error(f"{path} is not a {fmt or what} file (the top level must be an object)")
    if fmt is not None and data.get("format") != fmt:
        raise error(f"{path} is not a {fmt} file (format {data.get('format')!r}); it is not a {what}")
    version = data.get("schema_version")
    if version is None and not require_version:
        return data
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise error(f"{path}: schema_version must be a positive integer, got {version!r}")
    if version > max_version:
        raise error(f"{path} has schema_version {version}; this SDK reads {what}s up to {max_version}: "
                    "upgrade banana-sdk")
    return data


def refuse_overwrite(path: str | os.PathLike[str], force: bool, *, folder: bool = False) -> None:
    """ConfigError unless writing `path` keeps everything the user had: without `force` an existing file (for
    `folder=True`: a folder that holds anything) is refused; a folder where a file goes (or the reverse) always."""
    from banana_sdk.errors import ConfigError

    path = Path(path)
    if folder:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path} is a file; give a folder path (nothing was written)")
        if not force and path.is_dir() and any(path.iterdir()):
            raise ConfigError(f"{path} already holds files; pass --force to write into it")
        return
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file path (nothing was written)")
    if not force and (path.exists() or path.is_symlink()):
        raise ConfigError(f"{path} already exists; pass --force to replace it")

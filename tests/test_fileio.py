"""Atomic writes: all or nothing, the user's file untouched on failure, normal permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from banana_sdk.fileio import atomic_open, atomic_write_bytes


def test_atomic_write_replaces_and_gets_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    old = os.umask(0o022)
    try:
        atomic_write_bytes(target, b"one")
        atomic_write_bytes(target, b"two")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temp file left


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "keep.txt"
    target.write_bytes(b"user data")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"user data"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]

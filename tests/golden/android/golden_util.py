"""Helpers shared by the golden-vector generators (float encodings, canonical safetensors bytes)."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import numpy as np


def f32_list(array: Any) -> list[float]:
    """float32 values as JSON numbers (repr of the exact float32 value, round-trips)."""
    return [float(v) for v in np.asarray(array, dtype=np.float32).ravel()]


def f32_b64(array: Any) -> str:
    """float32 values as base64 of their little-endian bytes (exact, compact for long vectors)."""
    return base64.b64encode(np.asarray(array, dtype="<f4").ravel().tobytes()).decode("ascii")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its header JSON key-sorted.

    The safetensors writer serialises `__metadata__` from a hash map, so its key order (and the file's
    bytes) change from run to run; the golden files must not. Same tensors, same metadata, same layout
    rules (8-byte length, JSON header padded with spaces to a multiple of 8, then the byte buffer).
    """
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def header_of(data: bytes) -> dict[str, Any]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length])


def with_header(data: bytes, header: dict[str, Any]) -> bytes:
    """`data` with its header replaced (same byte buffer)."""
    (length,) = struct.unpack("<Q", data[:8])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + length:]

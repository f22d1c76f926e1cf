"""INT8 storage of peel tensors: symmetric, one float16 scale per block of `BLOCK` consecutive values.

Blocks run over the tensor's flat (row-major) values, so a reader needs no layout to widen them: value k is
q[k] * scale[k // BLOCK]. A scale is the block's largest |value| / 127 (1 for an all-zero block). With blocks
of 64 the scales add 1/32 to the int8 bytes: a peel file is ~0.52 of its float16 form, and each value is
within half a step (|block max| / 254) of the float32 it came from.
"""

from __future__ import annotations

import numpy as np

BLOCK = 64  # values per scale (along the flat, row-major order)
QMAX = 127  # symmetric int8 range [-127, 127] (-128 unused, so negation is exact)


def scale_name(key: str) -> str:
    """The safetensors key of the scales of tensor `key`."""
    return f"{key}.scale"


def quantize(values: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(q int8 of values' shape, scales float16 (ceil(n / block),)) for any float array."""
    flat = np.asarray(values, np.float32).ravel()
    n = flat.size
    blocks = -(-n // block)
    padded = np.zeros(blocks * block, np.float32)
    padded[:n] = flat
    peak = np.abs(padded.reshape(blocks, block)).max(axis=1)
    scales = np.where(peak > 0, peak / QMAX, 1.0).astype(np.float16)
    wide = scales.astype(np.float32)
    wide[wide == 0] = 1.0  # a peak below float16's range rounds to 0: those values quantize to 0 anyway
    q = np.clip(np.rint(padded.reshape(blocks, block) / wide[:, None]), -QMAX, QMAX).astype(np.int8)
    return q.ravel()[:n].reshape(np.shape(values)), scales


def dequantize(q: np.ndarray, scales: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """float32 values of q's shape; ValueError if the scales do not fit q's size."""
    flat = np.asarray(q).ravel()
    n = flat.size
    if q.dtype != np.int8 or scales.ndim != 1 or scales.size != -(-n // block):
        raise ValueError(f"int8 tensor of {n} values needs {-(-n // block)} float16 scales (one per {block}), "
                         f"got {scales.size} for dtype {q.dtype}")
    wide = np.repeat(scales.astype(np.float32), block)[:n]
    return (flat.astype(np.float32) * wide).reshape(q.shape)


def store(key: str, values: np.ndarray, int8: bool, dtype: type = np.float16) -> dict[str, np.ndarray]:
    """The safetensors entries of one tensor: `key` as int8 plus `key.scale`, or `key` as `dtype`."""
    if not int8:
        return {key: np.ascontiguousarray(np.asarray(values, np.float32).astype(dtype))}
    q, scales = quantize(values)
    return {key: np.ascontiguousarray(q), scale_name(key): scales}


def values(entries: dict[str, np.ndarray], key: str) -> np.ndarray:
    """The values of entry `key`: float16 / float32 as stored, int8 widened to float32 with its `key.scale`;
    KeyError if absent, ValueError if inconsistent or of another dtype."""
    value = entries[key]
    if value.dtype == np.int8:
        if scale_name(key) not in entries:
            raise ValueError(f"int8 tensor {key} has no {scale_name(key)}")
        return dequantize(value, entries[scale_name(key)])
    if value.dtype not in (np.float16, np.float32):
        raise ValueError(f"{key} has dtype {value.dtype}; peels store float32, float16 or int8")
    return value

"""Portable Gaussian noise: the same seed gives the same latents in Python and in the Kotlin SDK.

Counter-based: SplitMix64 hashes (seed, stream, index) into 53-bit uniforms, Box-Muller turns pairs
into normals in float64, then float32. Stream 0 is the initial latent; stream k is the noise that
the k-th consistency step re-injects. Kotlin mirrors `gaussian` exactly (golden vectors).
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
MAX_SEED = 2**63 - 1  # seeds are non-negative signed 64-bit integers (a Kotlin Long)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def check_seed(seed: int) -> int:
    """Return `seed` if it is a valid seed, else raise ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return int(seed)


def gaussian(seed: int, stream: int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 array of `shape`, a pure function of (seed, stream, index)."""
    check_seed(seed)
    n = int(np.prod(shape, dtype=np.int64))
    pairs = (n + 1) // 2
    with np.errstate(over="ignore"):
        key = _mix(np.array([seed], dtype=np.uint64) * _GOLDEN + np.uint64(stream))
        counters = np.arange(1, 2 * pairs + 1, dtype=np.uint64)
        bits = _mix(key + counters * _GOLDEN)
    uniform = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * (2.0**-53)
    u1, u2 = uniform[0::2], uniform[1::2]
    radius = np.sqrt(-2.0 * np.log(u1))
    angle = 2.0 * np.pi * u2
    normals = np.empty(2 * pairs, dtype=np.float64)
    normals[0::2] = radius * np.cos(angle)
    normals[1::2] = radius * np.sin(angle)
    return normals[:n].astype(np.float32).reshape(shape)

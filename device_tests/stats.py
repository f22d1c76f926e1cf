"""Summary statistics of latency samples (all raw samples are kept next to them)."""

from __future__ import annotations

import math
from collections.abc import Sequence

TRIM = 0.1  # fraction dropped from each end for the trimmed mean


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)


def trimmed_mean(values: Sequence[float], trim: float = TRIM) -> float:
    """Mean after dropping floor(trim * n) samples from each end."""
    data = sorted(values)
    k = int(len(data) * trim)
    kept = data[k:len(data) - k] if len(data) - 2 * k > 0 else data
    return sum(kept) / len(kept)


def summarize(values: Sequence[float]) -> dict[str, float | int] | None:
    """{n, min, median, p90, trimmed_mean, mean, max} of the samples; None when there are none."""
    data = [float(v) for v in values]
    if not data:
        return None
    return {"n": len(data), "min": min(data), "median": percentile(data, 50), "p90": percentile(data, 90),
            "trimmed_mean": trimmed_mean(data), "mean": sum(data) / len(data), "max": max(data)}

"""Sustained-run analysis: first vs last window latency, and the throttle onset.

Throttle onset = the first timed run that, and the median of the `consecutive` runs from it, is slower
than the baseline (median of the first window) by more than `rise_pct` percent while the thermal status
is at least LIGHT (1). The median of a few consecutive runs keeps a single slow run from counting.
"""

from __future__ import annotations

import bisect
from typing import Any

from device_tests.stats import percentile, summarize

LIGHT = 1  # thermal status LIGHT
MIN_BASELINE_RUNS = 3  # the baseline window is widened to at least this many runs


def window_s_for(duration_s: float) -> float:
    """Window for first-vs-last comparison: one minute, or a fifth of shorter runs."""
    return 60.0 if duration_s >= 300 else max(1.0, duration_s / 5.0)


def _status_at(telemetry: list[dict[str, Any]], t: float) -> int | None:
    """Thermal status of the last telemetry sample at or before t (the first one if none is earlier)."""
    if not telemetry:
        return None
    times = [s["t"] for s in telemetry]
    k = max(0, bisect.bisect_right(times, t) - 1)
    return telemetry[k].get("thermal_status")


def compare_windows(runs: list[dict[str, Any]], window_s: float) -> dict[str, Any] | None:
    """Latency stats of the first and last `window_s` of the run, and the change in percent."""
    if len(runs) < 2:
        return None
    t0, t1 = runs[0]["t"], runs[-1]["t"]
    first = [r["e2e_ms"] for r in runs if r["t"] < t0 + window_s] or [runs[0]["e2e_ms"]]
    last = [r["e2e_ms"] for r in runs if r["t"] > t1 - window_s] or [runs[-1]["e2e_ms"]]
    a, b = summarize(first), summarize(last)
    return {"window_s": window_s, "first": a, "last": b,
            "change_pct": 100.0 * (b["median"] - a["median"]) / a["median"] if a["median"] else None}


def throttle_onset(runs: list[dict[str, Any]], telemetry: list[dict[str, Any]], window_s: float,
                   rise_pct: float = 10.0, consecutive: int = 3) -> dict[str, Any] | None:
    """The first throttling point (see module doc) or None."""
    if len(runs) < MIN_BASELINE_RUNS + consecutive:
        return None
    t0 = runs[0]["t"]
    base = [r["e2e_ms"] for r in runs if r["t"] < t0 + window_s]
    if len(base) < MIN_BASELINE_RUNS:
        base = [r["e2e_ms"] for r in runs[:MIN_BASELINE_RUNS]]
    baseline = percentile(base, 50)
    limit = baseline * (1.0 + rise_pct / 100.0)
    for k in range(len(runs) - consecutive + 1):
        group = runs[k:k + consecutive]
        latency = percentile([r["e2e_ms"] for r in group], 50)
        status = _status_at(telemetry, group[0]["t"])
        if status is None:
            status = group[0].get("thermal_status")
        if group[0]["e2e_ms"] > limit and latency > limit and status is not None and status >= LIGHT:
            return {"t_s": group[0]["t"] - t0, "run_index": k, "latency_ms": latency, "baseline_ms": baseline,
                    "rise_pct": 100.0 * (latency - baseline) / baseline, "threshold_pct": rise_pct,
                    "thermal_status": status}
    return None

"""Sustained-run analysis: first vs last window latency, and the throttle onset.

The first and last windows are sized from the measured duration (a run cut short gets shorter windows) and
compared only when they do not overlap; otherwise the comparison is "not measured" (`compare_windows` is None).

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
    """Window for first-vs-last comparison: one minute, or a fifth of shorter runs (seconds)."""
    return 60.0 if duration_s >= 300 else max(1.0, duration_s / 5.0)


def measured_s(runs: list[dict[str, Any]]) -> float:
    """Seconds the timed runs really covered: from the first one's start to the last one's end."""
    return runs[-1]["t"] + runs[-1]["e2e_ms"] / 1e3 - runs[0]["t"] if runs else 0.0


def measured_window_s(runs: list[dict[str, Any]], planned_window_s: float) -> float:
    """The comparison window of what was measured: `window_s_for` the measured duration, at most the planned
    window (a run cut short by an unplug gets windows of its own length, not of the length it was meant to have)."""
    return min(planned_window_s, window_s_for(measured_s(runs)))


def _status_at(telemetry: list[dict[str, Any]], t: float) -> int | None:
    """Thermal status of the last telemetry sample at or before t (the first one if none is earlier)."""
    if not telemetry:
        return None
    times = [s["t"] for s in telemetry]
    k = max(0, bisect.bisect_right(times, t) - 1)
    return telemetry[k].get("thermal_status")


def compare_windows(runs: list[dict[str, Any]], window_s: float) -> dict[str, Any] | None:
    """Latency stats of the first and last window of the run, and the change in percent; None ("not
    measured") when the two windows would overlap or share a run: a run too short to compare its start with
    its end. The window is sized from the measured duration (`measured_window_s`), `window_s` is its upper bound.
    """
    if len(runs) < 2:
        return None
    window = measured_window_s(runs, window_s)
    t0, end = runs[0]["t"], runs[-1]["t"] + runs[-1]["e2e_ms"] / 1e3
    if end - t0 < 2 * window:
        return None
    first = [k for k, r in enumerate(runs) if r["t"] < t0 + window]
    last = [k for k, r in enumerate(runs) if r["t"] + r["e2e_ms"] / 1e3 > end - window]
    if not first or not last or first[-1] >= last[0]:
        return None
    a, b = summarize([runs[k]["e2e_ms"] for k in first]), summarize([runs[k]["e2e_ms"] for k in last])
    return {"window_s": window, "measured_s": end - t0, "first": a, "last": b,
            "change_pct": 100.0 * (b["median"] - a["median"]) / a["median"] if a["median"] else None}


def throttle_onset(runs: list[dict[str, Any]], telemetry: list[dict[str, Any]], window_s: float,
                   rise_pct: float = 10.0, consecutive: int = 3) -> dict[str, Any] | None:
    """The first throttling point (see module doc) or None."""
    if len(runs) < MIN_BASELINE_RUNS + consecutive:
        return None
    t0 = runs[0]["t"]
    window_s = measured_window_s(runs, window_s)
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

"""Live-run analysis (`banana profile --live`): fps per second, time to first frame after each edit, frame-time
percentiles, frames over budget, the first and last window, the throttle onset and the governor's decisions.

Pure functions over the result's `live` section (docs/DESIGN.md §6): the simulated app uses `fps_bins` and
`time_to_first_frame` to fill its result, the harness `summarize_live` for RUN.json, the records and the report
(also on the frames of a run that ended early, rebuilt from its parts).
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from device_tests.stats import percentile, summarize
from device_tests.sustained import window_s_for

LIGHT = 1  # thermal status LIGHT: the platform starts throttling
CHANGES = ("accepted", "held")  # edits that changed what the stream should show (unchanged/refused did not)


def _level_at(thermal: list[dict[str, Any]], t_s: float) -> int:
    """The governor level of the last thermal sample at or before `t_s` (0 before the first)."""
    times = [s["t_s"] for s in thermal]
    k = bisect.bisect_right(times, t_s) - 1
    return int(thermal[k]["level"]) if k >= 0 else 0


def fps_bins(frames: list[dict[str, Any]], thermal: list[dict[str, Any]], duration_s: float) -> list[dict[str, Any]]:
    """Shown frames per whole second [k, k+1) of the app's clock, k = 0 .. ceil(duration) - 1, with the
    governor level at the end of each second."""
    n = max(0, math.ceil(duration_s - 1e-9))
    counts = [0] * n
    for f in frames:
        if f["outcome"] == "shown" and 0 <= f["t_s"] < n:
            counts[int(f["t_s"])] += 1
    return [{"t_s": float(k), "fps": counts[k], "level": _level_at(thermal, k + 1.0)} for k in range(n)]


def time_to_first_frame(edits: list[dict[str, Any]], frames: list[dict[str, Any]]) -> list[float | None]:
    """Per edit: ms from the edit to the first frame shown that started at or after it (so it renders that edit
    or a newer one); None for edits that changed nothing (unchanged, refused) or with no such frame."""
    shown = sorted((f["start_s"], f["t_s"]) for f in frames if f["outcome"] == "shown")
    starts = [s for s, _ in shown]
    first_after = [math.inf] * (len(shown) + 1)  # earliest shown time among frames k.. (by start)
    for k in range(len(shown) - 1, -1, -1):
        first_after[k] = min(first_after[k + 1], shown[k][1])
    out: list[float | None] = []
    for e in edits:
        k = bisect.bisect_left(starts, e["t_s"] - 1e-9)
        when = first_after[k]
        out.append(round((when - e["t_s"]) * 1e3, 3) if e["status"] in CHANGES and math.isfinite(when) else None)
    return out


def throttle_onset(thermal: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first thermal sample at status LIGHT or above: {t_s, status, headroom}; None if never."""
    for s in thermal:
        if s["status"] >= LIGHT:
            return {"t_s": s["t_s"], "status": s["status"], "headroom": s.get("headroom")}
    return None


def _pcts(values: list[float]) -> dict[str, Any] | None:
    block = summarize(values)
    if block is None:
        return None
    return {**block, "p50": block["median"], "p99": percentile(values, 99)}


def summarize_live(live: dict[str, Any]) -> dict[str, Any]:
    """What RUN.json, the records and the report show of a live run (its section, or the parts so far)."""
    frames, thermal = live.get("frames", []), live.get("thermal", [])
    target = float(live.get("target_fps") or 30)
    budget = 1000.0 / target
    scale = float(live.get("time_scale") or 1.0)
    shown = [f for f in frames if f["outcome"] == "shown"]
    frame_ms = [f["frame_ms"] for f in shown if f.get("frame_ms") is not None]
    ran_s = live.get("duration_s") or 0.0
    if live.get("partial"):  # frames so far: bins up to the last whole second seen
        ran_s = math.floor(max([f["t_s"] for f in frames] + [s["t_s"] for s in thermal] + [0.0]))
    bins = live.get("fps") if live.get("fps") and not live.get("partial") else fps_bins(frames, thermal, ran_s)
    fps = [b["fps"] for b in bins]
    edits = live.get("edits", [])
    ttff = [e["ttff_ms"] for e in edits if e.get("ttff_ms") is not None]
    if live.get("partial"):
        ttff = [x for x in time_to_first_frame(edits, frames) if x is not None]
    # first vs last window: a thermal minute (a fifth of shorter runs) of the seconds measured, in the app's
    # seconds; not measured (None) when the two windows would share a second
    window = max(1.0, window_s_for(len(bins) * scale) / scale) if bins else None
    first = last = None
    if bins and 2 * max(1, int(round(window))) <= len(fps):
        w = max(1, int(round(window)))
        first, last = sum(fps[:w]) / w, sum(fps[-w:]) / w
    decisions = live.get("decisions", [])
    counters = live.get("counters", {})
    return {
        "duration_s": live.get("duration_s"), "ran_s": len(bins), "target_fps": target, "budget_ms": budget,
        "time_scale": scale, "governor": live.get("governor"), "steps": live.get("steps"),
        "frames": len(frames), "shown": len(shown),
        "outcomes": {k: sum(f["outcome"] == k for f in frames) for k in ("shown", "cancelled", "stale")},
        "frame_ms": _pcts(frame_ms),
        "over_budget": {"count": sum(ms > budget for ms in frame_ms), "of": len(frame_ms),
                        "pct": 100.0 * sum(ms > budget for ms in frame_ms) / len(frame_ms) if frame_ms else None},
        "fps": {"median": percentile(fps, 50) if fps else None, "min": min(fps, default=None),
                "max": max(fps, default=None), "mean": sum(fps) / len(fps) if fps else None,
                "window_s": window, "first": first, "last": last,
                "last_over_first": last / first if first else None},
        "ttff_ms": _pcts(ttff), "edits": len(edits),
        "edits_changed": sum(e["status"] in CHANGES for e in edits),
        "throttle_onset": live.get("throttle_onset") if not live.get("partial") else throttle_onset(thermal),
        "decisions": len(decisions), "steps_down": sum(d["to"] > d["from"] for d in decisions),
        "steps_up": sum(d["to"] < d["from"] for d in decisions),
        "max_level": max([d["to"] for d in decisions] + [0]),
        "final_level": decisions[-1]["to"] if decisions else 0,
        "max_status": max((s["status"] for s in thermal), default=None),
        "counters": counters,
    }

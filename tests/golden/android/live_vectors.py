"""Golden vectors for live mode (`live.json`, `governor.json`; docs/DESIGN.md §9).

`live.json`: timed edit scenarios driven through the real `LivePlanner` by `banana_sdk.runtime.live.simulate` on a
virtual clock with fixed per-call costs; the Kotlin planner, driven the same way, must produce the same edit
results, frame log and counters exactly. `governor.json`: `levels_for` cases and tick sequences through the real
`ThermalGovernor`; the Kotlin governor must produce the same levels and decisions exactly.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from banana_sdk.runtime.governor import Capabilities, GovernorConfig, ThermalGovernor, levels_for
from banana_sdk.runtime.live import Costs, simulate

CONTEXT = 32  # the tiny preset's tokenizer context
RED = "a red circle top left"
BLUE = "a blue square"
GREEN = "a green triangle"
PIP = "a pip top left"
TOO_LONG = ("a red circle top left and a blue square bottom right and a green triangle in the center "
            "and a yellow star and a pip top right and a zed bottom left")  # 35 tokens with BOS/EOS
COSTS = Costs(encode_ms=10, step_ms=20, decode_ms=15)  # denoise lane slower than the decoder
SLOW_DECODE = Costs(encode_ms=5, step_ms=10, decode_ms=45)  # one step: the decoder is the bottleneck
SLOW_DECODE_4 = Costs(encode_ms=5, step_ms=4, decode_ms=45)  # four steps: the decoder is the bottleneck


def _typist(every: int, count: int) -> list[tuple[float, str]]:
    """`count` edits `every` ms cycling through four prompts (two of them come back: cache hits)."""
    return [(k * every, [RED, BLUE, GREEN, PIP][k % 4]) for k in range(count)]


# (name, edits as (t_ms, prompt), costs, steps list, overlap list, cache_size); a case is (name, steps, overlap)
SCENARIOS: list[tuple[str, list[tuple[float, str]], Costs, tuple[int, ...], tuple[bool, ...], int]] = [
    # returning to an earlier prompt reuses its encoding; a cache of 1 forgets it; a cache of 0 keeps nothing
    ("cache_hit_on_return", [(0, RED), (300, BLUE), (600, RED), (900, BLUE)], COSTS, (1, 4), (True,), 16),
    ("cache_of_one_evicts", [(0, RED), (300, BLUE), (600, RED)], COSTS, (1, 4), (True,), 1),
    ("cache_off", [(0, RED), (300, BLUE), (600, RED)], COSTS, (1,), (True,), 0),
    # the same prompt again (while running, after shown, while pending), and a return to the running prompt
    # that drops the pending edit
    ("unchanged_edits", [(0, RED), (5, RED), (300, RED), (400, BLUE), (402, GREEN), (403, GREEN), (404, BLUE)],
     COSTS, (1, 4), (True,), 16),
    # edits faster than frames: only the newest pending edit starts, at the running frame's next boundary
    ("burst_dropped", [(0, RED), (1, "a"), (2, "a r"), (3, "a re"), (4, BLUE), (5, GREEN)], COSTS, (1, 4),
     (True,), 16),
    # an edit while frame 0 denoises: cancelled at the next step boundary, never mid-step; with 1 step there is
    # no boundary after the encoder, so frame 0 finishes
    ("edit_mid_denoise", [(0, RED), (15, BLUE)], COSTS, (1,), (True,), 16),
    ("edit_mid_denoise", [(0, RED), (35, BLUE)], COSTS, (4,), (True,), 16),
    ("edit_during_encode", [(0, RED), (4, BLUE)], COSTS, (1, 4), (True,), 16),
    # a steady typist about as fast as the frames: overlap starts the next frame while the last one decodes
    ("overlap", _typist(40, 12), COSTS, (1,), (True, False), 16),
    ("overlap", _typist(95, 8), COSTS, (4,), (True, False), 16),
    # the decoder is the bottleneck: denoised frames wait, the newest wins, older ones are stale
    ("stale_decode", [(0, RED), (16, BLUE), (32, GREEN), (48, PIP), (64, RED)], SLOW_DECODE, (1,), (True, False),
     16),
    ("stale_decode", [(0, RED), (22, BLUE), (44, GREEN), (66, PIP), (88, RED)], SLOW_DECODE_4, (4,),
     (True, False), 16),
    # refused prompts change nothing: the pending edit still starts, the last frame stays, no frame is started
    ("refused_prompts", [(0, RED), (1, BLUE), (2, ""), (3, "   "), (4, TOO_LONG), (300, TOO_LONG), (301, "\t"),
                         (302, GREEN)], COSTS, (1, 4), (True,), 16),
]


def live_vectors() -> dict[str, Any]:
    cases = []
    for name, edits, costs, steps_list, overlaps, cache_size in SCENARIOS:
        for steps in steps_list:
            for overlap in overlaps:
                log = simulate(edits, costs, steps, overlap, cache_size, CONTEXT)
                cases.append({"name": name, "steps": steps, "overlap": overlap, "cache_size": cache_size,
                              "context_length": CONTEXT, "costs": asdict(costs),
                              "edits": [{"t_ms": t, "prompt": p} for t, p in edits], "expected": log})
    return {"about": "LivePlanner driven by simulate() on a virtual clock (DESIGN.md §9.1): at equal times "
                     "completions first (denoise lane, then decode lane), then edits in input order; every value "
                     "exact", "cases": cases}


# --- governor ------------------------------------------------------------------------------------------

NO_PREVIEW = Capabilities(preview_decoder=False, sizes=(64,))
WITH_PREVIEW = Capabilities(preview_decoder=True, sizes=(64,))
TWO_SIZES = Capabilities(preview_decoder=True, sizes=(64, 32))
LEVEL_CASES = [("no_preview_steps_4", NO_PREVIEW, 4), ("preview_steps_4", WITH_PREVIEW, 4),
               ("no_preview_steps_1", NO_PREVIEW, 1), ("preview_two_sizes_steps_4", TWO_SIZES, 4),
               ("preview_two_sizes_steps_1", TWO_SIZES, 1)]


def _ramp(start: int, stop: int, every: int, headroom: float | None, status: int = 0) -> list[tuple[int, Any, int]]:
    return [(t, headroom, status) for t in range(start, stop, every)]


# name -> (capabilities, steps, ticks as (t_ms, headroom, status)); frame_ms = 100 + t_ms / 1000 on every tick
GOVERNOR_SCENARIOS: dict[str, tuple[Capabilities, int, list[tuple[int, Any, int]]]] = {
    # headroom climbs past down_at and stays: down after hold_ms, then one level per settle_ms, never past the last
    "heat_ramp_with_settle": (WITH_PREVIEW, 4, [(0, 0.5, 0), (500, 0.7, 0), (1000, 0.91, 1), (1500, 0.89, 1)]
                              + _ramp(2000, 70001, 500, 0.95, 1)),
    # a hot spell shorter than hold_ms changes nothing
    "short_spike_ignored": (WITH_PREVIEW, 4, _ramp(0, 1500, 250, 0.95) + _ramp(1500, 4000, 250, 0.85)),
    # after a step down, a hot run that breaks and resumes still waits settle_ms from the change and hold_ms from
    # its own start
    "settle_then_hold": (WITH_PREVIEW, 4, _ramp(0, 2001, 500, 0.92) + _ramp(3000, 16001, 1000, 0.85)
                         + _ramp(17000, 20001, 1000, 0.93) + [(20500, 0.89, 2)] + _ramp(21000, 25001, 500, 0.93)),
    # SEVERE steps down at once, then at most one change per hold_ms while it lasts (no settle); no cooling while
    # severe
    "severe_status_jump": (NO_PREVIEW, 4, [(0, 0.3, 0), (100, 0.4, 3), (600, 0.4, 3), (2100, 0.4, 4),
                                           (4200, 0.5, 3), (4300, 0.5, 3)] + _ramp(4500, 20000, 1000, 0.3, 3)),
    # a hot step down, then SEVERE before settle_ms: it steps down again after hold_ms
    "severe_within_settle": (WITH_PREVIEW, 4, _ramp(0, 2001, 1000, 0.95) + _ramp(3000, 6001, 1000, 0.95, 3)),
    # heat to the last level, then between the thresholds (no change either way), then cool: one level per cool_ms
    "cooldown_with_hysteresis": (WITH_PREVIEW, 4, _ramp(0, 42001, 1000, 0.95) + _ramp(43000, 60000, 1000, 0.85)
                                 + _ramp(60000, 95001, 1000, 0.75)),
    # cool spells interrupted by a warm tick restart their count
    "cooldown_interrupted": (NO_PREVIEW, 4, _ramp(0, 2001, 500, 0.95) + _ramp(2500, 9000, 500, 0.75)
                             + [(9000, 0.85, 0)] + _ramp(9500, 22000, 500, 0.7)),
    # a step up, then hot again: the step down needs hold_ms only (settle_ms follows steps down)
    "up_then_hot_again": (WITH_PREVIEW, 4, _ramp(0, 2001, 1000, 0.95) + _ramp(3000, 13001, 1000, 0.7)
                          + _ramp(14000, 20001, 1000, 0.95)),
    # headroom unknown (null; the app passes NaN as null): status alone, SEVERE down, NONE held cool_ms up
    "unknown_headroom": (WITH_PREVIEW, 4, _ramp(0, 3000, 1000, None, 2) + [(3000, None, 3), (4000, None, 3),
                                                                         (5000, None, 3)]
                         + _ramp(6000, 14000, 1000, None, 1) + _ramp(14000, 40001, 1000, None, 0)),
    # the bundle without a preview decoder, at 1 step: only the frame-rate level exists
    "levels_skipped": (NO_PREVIEW, 1, _ramp(0, 40001, 500, 0.95)),
}
TARGET_FPS = 8.0


def governor_vectors() -> dict[str, Any]:
    config = GovernorConfig()
    levels = [{"name": name, "preview_decoder": caps.preview_decoder, "sizes": list(caps.sizes), "steps": steps,
               "size": 64, "target_fps": TARGET_FPS,
               "levels": [lv.to_dict() for lv in levels_for(caps, TARGET_FPS, steps, 64, config)]}
              for name, caps, steps in LEVEL_CASES]
    cases = []
    for name, (caps, steps, ticks) in GOVERNOR_SCENARIOS.items():
        governor = ThermalGovernor(levels_for(caps, TARGET_FPS, steps, 64, config), config)
        after, target = [], []
        for t_ms, headroom, status in ticks:
            governor.tick(t_ms, headroom, status, 100 + t_ms / 1000)
            after.append(governor.index)
            target.append(governor.target_frame_ms)
        cases.append({"name": name, "preview_decoder": caps.preview_decoder, "sizes": list(caps.sizes),
                      "steps": steps, "size": 64, "target_fps": TARGET_FPS,
                      "levels": [lv.to_dict() for lv in governor.levels],
                      "ticks": [{"t_ms": t, "headroom": h, "status": s, "frame_ms": 100 + t / 1000}
                                for t, h, s in ticks],
                      "level_after_tick": after, "target_frame_ms_after_tick": target,
                      "decisions": [d.to_dict() for d in governor.decisions]})
    return {"about": "levels_for and ThermalGovernor.tick (DESIGN.md §9.2); indices, decisions and levels exact, "
                     "float values as written",
            "config": {"down_at": config.down_at, "up_at": config.up_at, "hold_ms": config.hold_ms,
                       "settle_ms": config.settle_ms, "cool_ms": config.cool_ms, "severe_status": config.severe_status,
                       "levels": [d.value for d in config.levels]},
            "level_cases": levels, "cases": cases}

"""Golden vectors for the runner contract's live mode (`live_run.json`; docs/DESIGN.md §6, `mode=live`).

What the Kotlin `LiveBenchmark` (the app's `BenchmarkActivity` in live mode) must write so that the harness reads
it: the `live` section's keys and JSON types as DESIGN.md §6 documents them, the part file's keys, the lists and
nullable fields `device_tests/contract.py` checks, the live extras `RunRequest.from_extras` accepts or refuses, and
cases of the `device_tests/live_stats.py` functions the app uses to fill its result (fps per second, time to the
first frame after an edit, throttle onset), each computed by the real Python function.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DESIGN = Path(__file__).resolve().parents[3] / "docs" / "DESIGN.md"


def _section6() -> str:
    return DESIGN.read_text(encoding="utf-8").split("## 6.", 1)[1].split("\n## ", 1)[0]


def _design_live() -> dict[str, Any]:
    """The `"live": {...}` block of DESIGN.md §6 as an object (alternatives `a | b` read as their first)."""
    block = re.findall(r"```json\n(.*?)```", _section6(), re.S)[1]
    block = re.sub(r'("[^"]*")(?:\s*\|\s*"[^"]*")+', r"\1", block)
    block = block.replace("null | {", "{")
    return json.loads("{" + block + "}")["live"]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    return "object" if isinstance(value, dict) else "null"


def _design_part_keys() -> list[str]:
    """The part file's keys as DESIGN.md §6 lists them: `<results>/<run_id>.part<k>.json` = `{...}`."""
    match = re.search(r"\.part<k>\.json` = `\{([^}]*)\}`", _section6().replace("\n", " "))
    assert match, "DESIGN.md §6 no longer lists the part file's keys"
    return [item.split(":")[0].strip() for item in match.group(1).split(",")]


def _types(live: dict[str, Any]) -> dict[str, Any]:
    """Key -> JSON kind of the section, and of one entry of each list / object in it."""
    out: dict[str, Any] = {"section": {k: _kind(v) for k, v in live.items()}}
    for key, value in live.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            out[key] = {k: _kind(v) for k, v in value[0].items()}
        elif isinstance(value, dict):
            out[key] = {k: _kind(v) for k, v in value.items()}
    return out


def _frame(t_s: float, start_s: float, outcome: str = "shown") -> dict[str, Any]:
    return {"t_s": t_s, "start_s": start_s, "outcome": outcome}


def _stats_cases() -> list[dict[str, Any]]:
    from device_tests.live_stats import fps_bins, throttle_onset, time_to_first_frame

    steady_frames = [_frame(0.1, 0.0), _frame(0.5, 0.3), _frame(0.9999, 0.6), _frame(1.0, 0.9),
                     _frame(1.2, 1.1, "cancelled"), _frame(1.7, 1.2, "stale"), _frame(2.4, 1.9), _frame(3.0, 2.8),
                     _frame(3.5, 3.1)]
    steady_edits = [(0.0, "accepted"), (0.3, "held"), (0.6, "unchanged"), (0.9, "accepted"), (1.1, "refused"),
                    (1.15, "accepted"), (2.9, "accepted"), (3.2, "accepted")]
    steady_thermal = [(0.0, 0, 0.5, 0), (1.0, 0, 0.7, 0), (2.0, 1, 0.9, 1), (3.0, 2, 0.95, 2)]
    cases = [
        {"name": "steady", "duration_s": 3.0, "frames": steady_frames,
         "edits": [{"t_s": t, "status": status} for t, status in steady_edits],
         "thermal": [{"t_s": t, "status": status, "headroom": headroom, "level": level}
                     for t, status, headroom, level in steady_thermal]},
        {"name": "nothing_shown", "duration_s": 2.5,
         "frames": [_frame(0.4, 0.0, "cancelled")],
         "edits": [{"t_s": 0.0, "status": "accepted"}, {"t_s": 0.2, "status": "accepted"}],
         "thermal": [{"t_s": 0.5, "status": 0, "headroom": None, "level": 0}]},
        {"name": "no_ticks", "duration_s": 1.0, "frames": [_frame(0.25, 0.0), _frame(0.5, 0.25)],
         "edits": [{"t_s": 0.0, "status": "accepted"}, {"t_s": 0.25, "status": "accepted"}], "thermal": []},
    ]
    for case in cases:
        case["expect"] = {"fps": fps_bins(case["frames"], case["thermal"], case["duration_s"]),
                          "ttff_ms": time_to_first_frame(case["edits"], case["frames"]),
                          "throttle_onset": throttle_onset(case["thermal"])}
    return cases


def _request_cases() -> list[dict[str, Any]]:
    """Live extras over a valid generate request: does `RunRequest.from_extras` accept them?"""
    from device_tests.contract import RunRequest
    from device_tests.errors import ContractError

    base = {"bundle": "/data/local/tmp/banana/b", "prompt": "a red circle", "steps": 1, "size": 64, "seed": 0,
            "delegate": "cpu", "threads": 2, "warmup": 0, "runs": 1, "run_id": "l1"}
    live = {"mode": "live", "duration_s": 60, "target_fps": 30, "prompts": "/data/local/tmp/banana/prompts/p.txt",
            "edit_ms": 33, "governor": 1}
    variants: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
        ("live", {}, ()), ("governor_off", {"governor": 0}, ()), ("longest", {"duration_s": 24 * 3600}, ()),
        ("fastest", {"target_fps": 240, "edit_ms": 1}, ()),
        ("no_mode", {}, ("mode",)), ("generate_with_live_extras", {"mode": "generate"}, ()),
        ("missing_prompts", {}, ("prompts",)), ("missing_governor", {}, ("governor",)),
        ("duration_0", {"duration_s": 0}, ()), ("duration_over_a_day", {"duration_s": 24 * 3600 + 1}, ()),
        ("fps_0", {"target_fps": 0}, ()), ("fps_241", {"target_fps": 241}, ()), ("edit_ms_0", {"edit_ms": 0}, ()),
        ("governor_2", {"governor": 2}, ()), ("prompts_relative", {"prompts": "prompts.txt"}, ()),
        ("unknown_mode", {"mode": "stream"}, ()),
    ]
    cases = []
    for name, change, drop in variants:
        extras = {k: v for k, v in {**base, **live, **change}.items() if k not in drop}
        try:
            RunRequest.from_extras(extras)
            valid = True
        except ContractError:
            valid = False
        cases.append({"name": name, "extras": extras, "valid": valid})
    return cases


def live_run_vectors() -> dict[str, Any]:
    from device_tests import contract

    live = _design_live()
    return {
        "about": "mode=live results (DESIGN.md §6): the live section's keys and JSON types as documented, the part "
                 "file's keys, contract.py's live lists, the live extras from_extras accepts, and live_stats.py "
                 "fps_bins / time_to_first_frame / throttle_onset cases",
        "part_s": contract.LIVE_PART_S,
        "part_name": contract.part_path("r1", 3).rsplit("/", 1)[1],
        "section_keys": list(live),
        "types": _types(live),
        "part_keys": _design_part_keys(),
        "lists": {key: list(fields) for key, fields in contract.LIVE_LISTS.items()},
        "nullable": sorted(contract.LIVE_NULLABLE),
        "outcomes": list(contract.LIVE_OUTCOMES),
        "edit_statuses": list(contract.EDIT_STATUSES),
        "requests": _request_cases(),
        "stats": _stats_cases(),
    }

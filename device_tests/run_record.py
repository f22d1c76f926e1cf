"""A device's part of a profile run, rebuilt from journal events; and its summary for RUN.json.

The profiler writes events to the journal and applies the same events here, so a RUN.json written at the
end and one rebuilt from the journal of a run that died (`banana report RUN.journal.jsonl`) are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from device_tests.live_stats import summarize_live
from device_tests.records import executorch_records
from device_tests.stats import summarize
from device_tests.sustained import compare_windows, measured_s, measured_window_s, throttle_onset, window_s_for
from device_tests.telemetry import time_in_state_delta
from device_tests.thermal_source import Role, sample_role


@dataclass
class DeviceRun:
    serial: str  # adb serial
    info: dict[str, Any] | None = None  # DeviceInfo.to_dict()
    push: dict[str, Any] | None = None  # PushReport.to_dict()
    cooldown: list[dict[str, Any]] = field(default_factory=list)  # CooldownResult per gate
    launches: list[dict[str, Any]] = field(default_factory=list)  # per launch: load_ms, first_image_ms, delegate, ...
    warmup: list[dict[str, Any]] = field(default_factory=list)  # RUN records, untimed
    runs: list[dict[str, Any]] = field(default_factory=list)  # RUN records + t (s since measurement start), launch
    telemetry: list[dict[str, Any]] = field(default_factory=list)  # Sample.to_dict() at 1 Hz
    time_in_state: dict[str, Any] = field(default_factory=dict)  # before / after
    benchmark_model: list[dict[str, Any]] = field(default_factory=list)  # per graph, parsed tool output
    notes: list[str] = field(default_factory=list)  # things the reader must know (restarts, timeouts)
    error: str | None = None  # why the run stopped early
    complete: bool = False  # every planned measurement finished
    sustained_s: float | None = None  # planned sustained duration
    live_s: float | None = None  # planned live duration
    live_plan: dict[str, Any] | None = None  # the live request: duration_s, target_fps, edit_ms, governor, steps, ...
    live: dict[str, Any] | None = None  # the result's live section (+ offset_s), or the parts so far (partial)
    thermal_source: dict[str, Any] | None = None  # ThermalSource.to_dict(): where the temperatures came from
    trace: dict[str, Any] | None = None  # `--trace`: the pulled Perfetto trace and its summary (trace_device.py)

    def apply(self, event: dict[str, Any]) -> None:
        """Fold one journal event into the record."""
        kind = event["kind"]
        if kind == "device":
            self.info = event["info"]
        elif kind == "push":
            self.push = event["push"]
        elif kind == "thermal_source":
            self.thermal_source = event["source"]
        elif kind == "cooldown":
            self.cooldown.append(event["cooldown"])
        elif kind == "telemetry":
            self.telemetry.append(event["sample"])
        elif kind == "launch_result":
            self._apply_result(event)
        elif kind == "time_in_state":
            self.time_in_state[event["when"]] = event["policies"]
        elif kind == "benchmark_model":
            self.benchmark_model.append(event["result"])
        elif kind == "note":
            self.notes.append(event["text"])
        elif kind == "error":
            self.error = event["message"]
        elif kind == "end":
            self.complete = bool(event["complete"])
        elif kind == "plan":
            self.sustained_s = event.get("sustained_s")
            self.live_s = event.get("live_s")
        elif kind == "live_plan":
            self.live_plan = event["plan"]
        elif kind == "live_part":
            self._apply_part(event)
        elif kind == "trace":
            self.trace = event["trace"]

    def _apply_part(self, event: dict[str, Any]) -> None:
        """A live run's part: append its records to what arrived so far (the result replaces them at the end)."""
        part = event["part"]
        if self.live is None:
            self.live = {**(self.live_plan or {}), "partial": True, "time_scale": part["time_scale"],
                         "start_ms": part["start_ms"], "offset_s": event["started_s"] + part["start_ms"] / 1e3,
                         "frames": [], "edits": [], "fps": [], "thermal": [], "decisions": [], "counters": {},
                         "throttle_onset": None, "levels": []}
        for key in ("frames", "edits", "thermal", "decisions"):
            self.live[key].extend(part[key])

    def _apply_result(self, event: dict[str, Any]) -> None:
        result = event["result"]
        if result.get("live") is not None:
            live = result["live"]
            self.live = {**live, "offset_s": round(event["started_s"] + live["start_ms"] / 1e3, 4)}
        index = len(self.launches)
        self.launches.append({"load_ms": result["load_ms"], "first_image_ms": result["first_image_ms"],
                              "delegate": result["delegate"], "image": result["image"],
                              "thermal": result["thermal"], "started_s": event["started_s"],
                              "finished_s": event["finished_s"]})
        self.warmup.extend({**run, "launch": index} for run in result["warmup"])
        # run end times: back from the moment the result was seen, each run ends one e2e after the previous
        end = event["finished_s"]
        stamped = []
        for run in reversed(result["runs"]):
            stamped.append({**run, "t": round(end - run["e2e_ms"] / 1e3, 4), "launch": index,
                            "thermal_status": result["thermal"]["status"]})
            end -= run["e2e_ms"] / 1e3
        self.runs.extend(reversed(stamped))

    # ---- summary
    def summary(self, bundle: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "serial": self.serial, "info": self.info, "simulated": bool(self.info and self.info.get("simulated")),
            "complete": self.complete, "error": self.error, "notes": self.notes, "push": self.push,
            "cooldown": self.cooldown, "launches": self.launches, "warmup": self.warmup, "runs": self.runs,
            "telemetry": self.telemetry, "benchmark_model": self.benchmark_model,
            "thermal_source": self.thermal_source,
        }
        if self.trace is not None:
            out["trace"] = self.trace
        out["stats"] = self.stats()
        if "before" in self.time_in_state and "after" in self.time_in_state:
            out["time_in_state"] = {**self.time_in_state, "delta_s": time_in_state_delta(
                self.time_in_state["before"], self.time_in_state["after"])}
        if self.sustained_s and self.runs:
            window = window_s_for(self.sustained_s)  # planned; the comparison sizes its windows from what ran
            out["sustained"] = {"duration_s": self.sustained_s, "measured_s": round(measured_s(self.runs), 3),
                                "window_s": measured_window_s(self.runs, window),
                                "windows": compare_windows(self.runs, window),
                                "throttle_onset": throttle_onset(self.runs, self.telemetry, window,
                                                                 settings.get("throttle_rise_pct", 10.0))}
        if self.live is not None:
            out["live"] = self.live
            out["live_summary"] = summarize_live(self.live)
        out["records"] = executorch_records(self, out, bundle)
        return out

    def stats(self) -> dict[str, Any]:
        runs = self.runs
        steps = [ms for r in runs for ms in r["denoise_ms"]]
        pss = [s["pss_kb"] for s in self.telemetry if s.get("pss_kb") is not None]
        skin = [v for v in (sample_role(s, Role.SKIN) for s in self.telemetry) if v is not None]
        return {
            "e2e_ms": summarize([r["e2e_ms"] for r in runs]),
            "text_ms": summarize([r["text_ms"] for r in runs]),
            "denoise_step_ms": summarize(steps),
            "denoise_total_ms": summarize([sum(r["denoise_ms"]) for r in runs]),
            "decode_ms": summarize([r["decode_ms"] for r in runs]),
            "load_ms": summarize([sum(launch["load_ms"].values()) for launch in self.launches]),
            "first_image_ms": summarize([launch["first_image_ms"] for launch in self.launches]),
            "peak_pss_mb": max(pss) / 1024.0 if pss else None,
            "max_thermal_status": max((s["thermal_status"] for s in self.telemetry
                                       if s.get("thermal_status") is not None), default=None),
            "max_skin_c": max(skin, default=None),
        }

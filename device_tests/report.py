"""`banana report RUN.json... -o report.html`: one self-contained HTML page with tables and SVG plots.

Sections: devices side by side, per-component latency breakdown, and per device the latency over time
against temperature (thermal status shaded, throttle onset marked), memory, cool-down, cpufreq residency
and the raw samples; for a live run (`--live`) the frame rate against temperature over time, the governor's
levels and decisions, frame times and the time to the first frame after an edit. A run from a simulated
device says so in a banner that stays on screen and repeats on every printed page, and again on each device.
"""

from __future__ import annotations

import time
from html import escape
from pathlib import Path
from typing import Any

from banana_sdk.fileio import atomic_write_bytes
from device_tests.errors import ReportError
from device_tests.parsers import THERMAL_STATUS
from device_tests.run_file import load_run
from device_tests.svg import PALETTE, STATUS_COLORS, Chart, Series, line_chart, stacked_bars
from device_tests.thermal_source import Role, sample_role
from device_tests.trace_report import trace_section

SIM_NOTE = ("SIMULATED DEVICE — these numbers come from Banana-SDK's simulated phone running real LiteRT inference "
            "on the host CPU, with simulated slow-down and thermals; they are not measurements of a phone.")
CSS = """
body{font-family:sans-serif;margin:0 24px 24px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
.sim{position:sticky;top:0;background:#ffe3e3;color:#900;border:2px solid #c00;padding:6px 10px;font-weight:bold;
z-index:9}.badge{background:#c00;color:#fff;padding:1px 6px;border-radius:3px;font-size:12px;margin-left:8px}
.err{color:#a00}.note{color:#850}section{border-top:1px solid #ddd;margin-top:18px}
@media print{.sim{position:fixed;top:0;left:0;right:0}body{margin-top:60px}}
"""


def _ms(us: float | None) -> str:
    """Microseconds as milliseconds with 2 decimals ("–" when the tool did not print it)."""
    return "–" if us is None else f"{us / 1e3:.2f}"


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _stat(stats: dict, key: str, field: str = "median", digits: int = 1) -> str:
    block = stats.get(key)
    return _num(block.get(field) if block else None, digits)


def _device_name(d: dict) -> str:
    info = d.get("info") or {}
    return f"{d['serial']} ({info.get('model') or 'unknown'})"


def _side_by_side(devices: list[tuple[dict, dict]]) -> str:
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, fn: Any) -> None:
        rows.append((label, [fn(run, d) for run, d in devices]))

    row("model", lambda r, d: escape((d.get("info") or {}).get("model", "")))
    row("SoC", lambda r, d: escape((d.get("info") or {}).get("soc", "")))
    row("ABI / Android", lambda r, d: escape(f"{(d.get('info') or {}).get('abi', '')} / "
                                             f"{(d.get('info') or {}).get('release', '')}"))
    row("RAM (MiB)", lambda r, d: _num((d.get("info") or {}).get("ram_mb")))
    row("simulated", lambda r, d: "yes" if d.get("simulated") else "no")
    row("bundle", lambda r, d: escape(f"{r['bundle'].get('model')} {r['bundle'].get('quantization')} "
                                      f"{r['bundle'].get('image_size')}px"))
    row("delegate used", lambda r, d: escape(", ".join(sorted({(x.get("delegate") or {}).get("used") or "?"
                                                              for x in d.get("launches", [])})) or "–"))
    s = "stats"
    row("cold load (ms)", lambda r, d: _stat(d[s], "load_ms"))
    row("first image (ms)", lambda r, d: _stat(d[s], "first_image_ms"))
    for field in ("min", "median", "p90", "trimmed_mean"):
        row(f"end-to-end {field} (ms)", lambda r, d, f=field: _stat(d[s], "e2e_ms", f))
    row("text encoder median (ms)", lambda r, d: _stat(d[s], "text_ms", digits=2))
    row("denoise step median (ms)", lambda r, d: _stat(d[s], "denoise_step_ms", digits=2))
    row("decode median (ms)", lambda r, d: _stat(d[s], "decode_ms", digits=2))
    row("timed runs", lambda r, d: str(len(d.get("runs", []))))
    row("peak PSS (MiB)", lambda r, d: _num(d[s].get("peak_pss_mb")))
    row("max thermal status", lambda r, d: _status(d[s].get("max_thermal_status")))
    row("max skin (°C)", lambda r, d: _num(d[s].get("max_skin_c")))
    row("temperatures from", lambda r, d: escape(_source_kind(d)))
    row("throttle onset", lambda r, d: _onset(d))
    row("first vs last window", lambda r, d: _windows(d))
    if any(d.get("live_summary") for _, d in devices):
        row("live fps median (target)", lambda r, d: _live_cell(d, lambda s: f"{_num(s['fps']['median'])} "
                                                                           f"({s['target_fps']:g})"))
        row("live frame time p50 / p99 (ms)", lambda r, d: _live_cell(d, lambda s: (
            f"{_num((s['frame_ms'] or {}).get('p50'))} / {_num((s['frame_ms'] or {}).get('p99'))}")))
        row("live frames over budget", lambda r, d: _live_cell(d, lambda s: f"{_num(s['over_budget']['pct'])}%"))
        row("live first frame after an edit p50 (ms)", lambda r, d: _live_cell(
            d, lambda s: _num((s['ttff_ms'] or {}).get('p50'))))
        row("live fps last / first window", lambda r, d: _live_cell(d, lambda s: _num(s['fps']['last_over_first'],
                                                                                      2)))
        row("live governor decisions", lambda r, d: _live_cell(d, lambda s: f"{s['decisions']}" + (
            "" if s["governor"] else " (off)")))
    row("result", lambda r, d: "complete" if d.get("complete") else f'<span class="err">incomplete: '
                                                                       f'{escape(d.get("error") or "")}</span>')
    head = "".join(f"<th>{escape(_device_name(d))}</th>" for _, d in devices)
    body = "".join(f"<tr><td>{escape(label)}</td>{''.join(f'<td>{c}</td>' for c in cells)}</tr>"
                   for label, cells in rows)
    return f"<table><tr><th>metric</th>{head}</tr>{body}</table>"


def _live_cell(d: dict, fn: Any) -> str:
    summary = d.get("live_summary")
    return fn(summary) if summary else "– (not a live run)"


def _status(value: Any) -> str:
    return f"{value} {THERMAL_STATUS[value]}" if isinstance(value, int) and 0 <= value < 7 else "–"


def _onset(d: dict) -> str:
    sustained = d.get("sustained")
    if not sustained:
        return "– (not a sustained run)"
    onset = sustained.get("throttle_onset")
    if not onset:
        return "none detected"
    return (f"{onset['t_s']:.1f} s: {onset['latency_ms']:.1f} ms vs {onset['baseline_ms']:.1f} ms "
            f"(+{onset['rise_pct']:.0f}%, status {_status(onset['thermal_status'])})")


def _windows(d: dict) -> str:
    sustained = d.get("sustained")
    if not sustained:
        return "–"
    windows = sustained.get("windows")
    if not windows:
        return "not measured (the run was shorter than two windows)"
    return (f"{windows['first']['median']:.1f} → {windows['last']['median']:.1f} ms "
            f"({windows['change_pct']:+.0f}%, {windows['window_s']:.0f} s windows)")


def _source_kind(d: dict) -> str:
    """Which thermal source gave a device's temperatures (runs from before `thermal_source`: the thermal HAL)."""
    source = d.get("thermal_source")
    return source["kind"] if source else "thermal HAL"


def _bands(telemetry: list[dict]) -> list[tuple[float, float, str]]:
    bands = []
    for a, b in zip(telemetry, telemetry[1:] + telemetry[-1:], strict=True):
        status = a.get("thermal_status") or 0
        if status:
            bands.append((a["t"], max(b["t"], a["t"] + 0.5), STATUS_COLORS[min(status, 6)]))
    return bands


def _timeline(d: dict) -> str:
    runs, tele = d.get("runs", []), d.get("telemetry", [])
    if not runs and not tele:
        return "<p>No timed runs or telemetry.</p>"
    series = [Series("end-to-end latency (ms)", [(r["t"], r["e2e_ms"]) for r in runs], PALETTE[0], "left", True)]
    kind = _source_kind(d)
    for role, label, color, dashed in ((Role.SKIN, "skin", PALETTE[1], False), (Role.CPU, "CPU", PALETTE[3], True),
                                       (Role.GPU, "GPU", PALETTE[5], True),
                                       (Role.BATTERY, "battery", PALETTE[2], True)):
        points = [(s["t"], v) for s in tele if (v := sample_role(s, role)) is not None]
        series.append(Series(f"{label} (°C, {kind})", points, color, "right", dashed=dashed))
    vlines = []
    onset = (d.get("sustained") or {}).get("throttle_onset")
    if onset and runs:
        vlines.append((runs[0]["t"] + onset["t_s"], "throttle onset"))
    chart = Chart(f"Latency over time against temperature from the {kind} (shading: thermal status)",
                  "time since start (s)",
                  "latency (ms)", "temperature (°C)", [s for s in series if s.points], _bands(tele), vlines)
    return line_chart(chart)


def _level_name(levels: list[dict], index: int) -> str:
    if 0 <= index < len(levels):
        lv = levels[index]
        return f"L{index} ({lv['fps']:g} fps, {lv['decoder']}, {lv['steps']} step(s))"
    return f"L{index}"


def _live(d: dict) -> str:
    """A live run: summary, the frame rate against temperature over time, and the governor's decisions."""
    live, s = d.get("live"), d.get("live_summary")
    if not live or not s:
        return ""
    scale = s["time_scale"] or 1.0
    clock = "app seconds" + (f"; thermal time runs {scale:g}x (simulator speed-up)" if scale != 1 else "")
    parts = [f"<h3>Live session{' (partial: the device was lost or the run stopped)' if live.get('partial') else ''}"
             "</h3>"]
    frame, ttff, fps = s["frame_ms"] or {}, s["ttff_ms"] or {}, s["fps"]
    onset = s["throttle_onset"]
    rows = [
        ("duration (s)", f"{s['ran_s']} of {_num(s['duration_s'])}"),
        ("target fps / frame budget", f"{s['target_fps']:g} / {s['budget_ms']:.1f} ms"),
        ("governor", "on" if s["governor"] else "off"), ("steps", _num(s["steps"])),
        ("frames shown / cancelled / stale",
         " / ".join(str(s["outcomes"][k]) for k in ("shown", "cancelled", "stale"))),
        ("fps median / min / max", f"{_num(fps['median'])} / {_num(fps['min'])} / {_num(fps['max'])}"),
        (f"fps first / last window ({_num(fps['window_s'])} s)",
         f"{_num(fps['first'])} / {_num(fps['last'])} (x{_num(fps['last_over_first'], 2)})"),
        ("frame time p50 / p90 / p99 (ms)", f"{_num(frame.get('p50'))} / {_num(frame.get('p90'))} / "
                                            f"{_num(frame.get('p99'))}"),
        ("frames over budget", f"{s['over_budget']['count']} of {s['over_budget']['of']} "
                               f"({_num(s['over_budget']['pct'])}%)"),
        ("first frame after an edit p50 / p90 / p99 (ms)", f"{_num(ttff.get('p50'))} / {_num(ttff.get('p90'))} / "
                                                           f"{_num(ttff.get('p99'))}"),
        ("edits (that changed the prompt)", f"{s['edits']} ({s['edits_changed']})"),
        ("throttle onset (status >= LIGHT)", f"{onset['t_s']:.1f} s, {_status(onset['status'])}" if onset else "none"),
        ("governor decisions (down / up), last level", f"{s['decisions']} ({s['steps_down']} / {s['steps_up']}), "
                                                       f"L{s['final_level']}"),
        ("counters", ", ".join(f"{k} {v}" for k, v in s["counters"].items()) or "–"),
    ]
    parts.append("<table>" + "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in rows)
                 + "</table>")
    thermal = live.get("thermal", [])
    bins = live.get("fps") if live.get("fps") and not live.get("partial") else None
    if bins is None:
        from device_tests.live_stats import fps_bins

        bins = fps_bins(live.get("frames", []), thermal, s["ran_s"])
    series = [Series("fps (frames shown per second)", [(b["t_s"] + 0.5, b["fps"]) for b in bins], PALETTE[0], "left",
                     True),
              Series("target fps of the level", [(t["t_s"], _level_fps(live, t["level"], s)) for t in thermal],
                     PALETTE[2], "left", dashed=True),
              Series("skin (°C)", [(t["t_s"], t["skin_c"]) for t in thermal if t.get("skin_c") is not None],
                     PALETTE[1], "right")]
    if not series[2].points:  # a phone's app cannot read the skin sensor: the harness's telemetry, on the app's clock
        offset = live.get("offset_s") or 0.0
        series[2].points = [(x["t"] - offset, v) for x in d.get("telemetry", [])
                            if (v := sample_role(x, Role.SKIN)) is not None]
        series[2].label = f"skin (°C, {_source_kind(d)})"
    bands = []
    for a, b in zip(thermal, thermal[1:] + thermal[-1:], strict=True):
        if a["status"]:
            bands.append((a["t_s"], max(b["t_s"], a["t_s"] + 0.05), STATUS_COLORS[min(a["status"], 6)]))
    vlines = [(x["t_s"], f"L{x['from']}→L{x['to']} {x['reason']}") for x in live.get("decisions", [])[:12]]
    if onset:
        vlines.append((onset["t_s"], "throttle onset"))
    parts.append(line_chart(Chart("Frame rate against temperature over time (shading: thermal status; lines: "
                                  "governor decisions)", f"time ({clock})", "frames per second", "skin (°C)",
                                  [x for x in series if x.points], bands, vlines)))
    decisions = live.get("decisions", [])
    levels = live.get("levels", [])
    if decisions:
        body = "".join(
            f"<tr><td>{x['t_s']:.2f}</td><td>{x['t_ms'] / 1e3:.1f}</td><td>{escape(_level_name(levels, x['from']))}"
            f"</td><td>{escape(_level_name(levels, x['to']))}</td><td>{escape(x['reason'])}</td>"
            f"<td>{_num(x['headroom'], 3)}</td><td>{escape(_status(x['status']))}</td><td>{_num(x['frame_ms'])}</td>"
            "</tr>" for x in decisions)
        parts.append("<h3>Governor decisions</h3><table><tr><th>t (s)</th><th>governor clock (thermal s)</th>"
                     "<th>from</th><th>to</th><th>reason</th><th>headroom forecast</th><th>status</th>"
                     f"<th>last frame (ms)</th></tr>{body}</table>")
    else:
        parts.append("<p>Governor decisions: none" + ("" if s["governor"] else " (governor off)") + ".</p>")
    return "".join(parts)


def _level_fps(live: dict, index: int, summary: dict) -> float:
    levels = live.get("levels") or []
    return float(levels[index]["fps"]) if 0 <= index < len(levels) else float(summary["target_fps"])


def _memory(d: dict) -> str:
    pss = [(s["t"], s["pss_kb"] / 1024) for s in d.get("telemetry", []) if s.get("pss_kb") is not None]
    if not pss:
        return ""
    return line_chart(Chart("App memory (PSS)", "time since start (s)", "PSS (MiB)",
                            series=[Series("PSS (MiB)", pss, PALETTE[4], markers=True)], height=220))


def _device_section(run: dict, d: dict) -> str:
    badge = '<span class="badge">SIMULATED</span>' if d.get("simulated") else ""
    parts = [f"<section><h2>{escape(_device_name(d))}{badge}</h2>"]
    if d.get("simulated"):
        parts.append(f'<p class="err">{escape(SIM_NOTE)}</p>')
    if d.get("error"):
        parts.append(f'<p class="err">Run incomplete: {escape(d["error"])}</p>')
    parts += [f'<p class="note">{escape(n)}</p>' for n in d.get("notes", [])]
    push = d.get("push")
    if push:
        parts.append(f"<p>Bundle at <code>{escape(push['remote_dir'])}</code>: {len(push['pushed'])} file(s) pushed "
                     f"({push['bytes_pushed'] / 1e6:.2f} MB, {push['mb_per_s']:.1f} MB/s), {len(push['skipped'])} "
                     f"unchanged, verified: {'yes' if push['verified'] else 'no'}.</p>")
    source = d.get("thermal_source")
    if source:
        parts.append(f"<p>Temperatures from the {escape(source['description'])}"
                     + (f"; kept out as pseudo-sensors: {escape(', '.join(source['excluded']))}"
                        if source.get("excluded") else "") + ".</p>")
    for gate in d.get("cooldown", []):
        parts.append(f"<p>Cool-down gate: {escape(gate['message'])}.</p>")
    parts.append(_live(d))
    if d.get("runs") or not d.get("live"):
        parts.append(_timeline(d))
    parts.append(_memory(d))
    parts.append(_time_in_state(d))
    parts.append(trace_section(d))
    if d.get("benchmark_model"):
        rows = "".join(f"<tr><td>{escape(b['graph_name'])}</td><td>{b['init_us'] / 1e3:.2f}</td>"
                       f"<td>{_ms(b.get('first_us'))}</td><td>{b['inference_avg_us'] / 1e3:.3f}</td>"
                       f"<td>{_num(b.get('peak_memory_mb'))}</td></tr>" for b in d["benchmark_model"])
        parts.append("<h3>benchmark_model</h3><table><tr><th>graph</th><th>init (ms)</th><th>first (ms)</th>"
                     f"<th>avg (ms)</th><th>peak memory (MB)</th></tr>{rows}</table>")
    parts.append(_raw_runs(d))
    parts.append("</section>")
    return "".join(parts)


def _time_in_state(d: dict) -> str:
    delta = (d.get("time_in_state") or {}).get("delta_s")
    if not delta:
        return ""
    rows = []
    for policy, freqs in delta.items():
        text = ", ".join(f"{int(f) // 1000} MHz: {s:.1f} s" for f, s in freqs.items() if s > 0) or "idle"
        rows.append(f"<tr><td>{escape(policy)}</td><td>{escape(text)}</td></tr>")
    return ("<h3>CPU frequency residency during the measurement</h3><table><tr><th>policy</th>"
            f"<th>time at each clock</th></tr>{''.join(rows)}</table>")


def _raw_runs(d: dict) -> str:
    runs = d.get("runs", [])
    if not runs:
        return ""
    rows = "".join(f"<tr><td>{k}</td><td>{r['t']:.2f}</td><td>{r['e2e_ms']:.2f}</td><td>{r['text_ms']:.2f}</td>"
                   f"<td>{', '.join(f'{x:.2f}' for x in r['denoise_ms'])}</td><td>{r['decode_ms']:.2f}</td></tr>"
                   for k, r in enumerate(runs))
    return (f"<details><summary>All {len(runs)} timed runs (raw samples)</summary><table><tr><th>#</th>"
            "<th>t (s)</th><th>e2e (ms)</th><th>text (ms)</th><th>denoise steps (ms)</th><th>decode (ms)</th></tr>"
            f"{rows}</table></details>")


def render(runs: list[dict[str, Any]], sources: list[str]) -> str:
    """The HTML page for one or more runs."""
    devices = [(run, d) for run in runs for d in run["devices"]]
    simulated = any(d.get("simulated") for _, d in devices)
    title = "Banana-SDK device report" + (" — SIMULATED DEVICE" if simulated else "")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{CSS}</style></head><body>"]
    if simulated:
        parts.append(f'<div class="sim">{escape(SIM_NOTE)}</div>')
    parts.append(f"<h1>{escape(title)}</h1><p>Generated {escape(time.strftime('%Y-%m-%d %H:%M:%S'))} from "
                 f"{escape(', '.join(sources))}. Prompt: <code>{escape(str(runs[0]['settings'].get('prompt')))}</code>."
                 "</p>")
    for run in runs:
        if not run.get("complete", False):
            parts.append(f'<p class="err">Run started {escape(str(run.get("started_at")))} is incomplete.</p>')
    parts.append("<h2>Devices side by side</h2>" + _side_by_side(devices))
    with_runs = [(r, d) for r, d in devices if d["stats"].get("e2e_ms")]
    if with_runs:
        names = [_device_name(d) for _, d in with_runs]
        segments = {key: [d["stats"][stat]["median"] if d["stats"].get(stat) else 0.0 for _, d in with_runs]
                    for key, stat in (("text encoder", "text_ms"), ("denoise (all steps)", "denoise_total_ms"),
                                      ("VAE decode", "decode_ms"))}
        parts.append(stacked_bars("Per-component latency (medians)", names, segments, "ms"))
    parts += [_device_section(run, d) for run, d in devices]
    if simulated:
        parts.append(f'<p class="err">{escape(SIM_NOTE)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(inputs: list[Path], out: Path) -> Path:
    """Render the runs in `inputs` into `out` (written atomically); returns `out`."""
    if not inputs:
        raise ReportError("give at least one RUN.json (or RUN.journal.jsonl)")
    if Path(out).suffix.lower() not in (".html", ".htm"):
        raise ReportError(f"the report is HTML; name it *.html, got {str(out)!r}")
    runs = [load_run(Path(p)) for p in inputs]
    atomic_write_bytes(out, render(runs, [str(p) for p in inputs]).encode("utf-8"))
    return Path(out)

"""A device's Perfetto trace in the report (link + summary tables) and in the CLI's closing lines."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

UI_URL = "https://ui.perfetto.dev"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _stage_rows(stages: dict[str, Any]) -> str:
    rows = [("text encode", stages.get("text_encode")), ("denoise step (all)", stages.get("denoise_step"))]
    rows += [(f"denoise step {k}", v) for k, v in (stages.get("denoise_steps") or {}).items()]
    rows += [("decode", stages.get("decode")), ("whole run (banana:run)", stages.get("runs"))]
    return "".join(f"<tr><td>{escape(name)}</td><td>{s['count']}</td><td>{_ms(s['total_ms'])}</td>"
                   f"<td>{_ms(s['median_ms'])}</td></tr>" for name, s in rows if s and s["count"])


def _clusters(freq: dict[str, Any]) -> str:
    rows = []
    for c in freq.get("clusters", []):
        spent = ", ".join(f"{int(khz) // 1000} MHz: {ms / 1e3:.2f} s" for khz, ms in c["residency_ms"].items() if ms)
        cpus = ",".join(str(x) for x in c["cpus"])
        rows.append(f"<tr><td>{escape(cpus)}</td><td>{_ms(c['mean_mhz'])}</td><td>{escape(spent)}</td></tr>")
    return "".join(rows)


def trace_section(d: dict[str, Any]) -> str:
    """HTML for the device's `trace` (RUN.json): a link to the file, what it summarises, the summary tables.
    Empty when the device has no trace. The link is relative: the report must sit beside RUN.json."""
    trace = d.get("trace")
    if not trace:
        return ""
    summary = trace.get("summary") or {}
    name = escape(trace["path"])
    parts = [f"<h3>Perfetto trace</h3><p><a href=\"{name}\">{name}</a> ({trace['bytes'] / 1024:.0f} KiB, "
             f"{_ms(summary.get('duration_ms'))} ms): open it in <a href=\"{UI_URL}\">ui.perfetto.dev</a> "
             "(\"Open trace file\"; the browser reads it locally) for the app's stage sections on its thread, each "
             "CPU's clock and idle state, thermal zones, battery and power-rail counters. Stage times below come "
             "from the app's sections in the timed runs.</p>"]
    stages = _stage_rows(summary.get("stages") or {})
    if stages:
        parts.append("<table><tr><th>stage</th><th>count</th><th>total (ms)</th><th>median (ms)</th></tr>"
                     f"{stages}</table>")
    clusters = _clusters(summary.get("cpu_frequency") or {})
    if clusters:
        parts.append("<table><tr><th>CPUs</th><th>mean clock (MHz)</th><th>time at each clock</th></tr>"
                     f"{clusters}</table>")
    thermal = summary.get("thermal") or {}
    if thermal:
        rows = "".join(f"<tr><td>{escape(z)}</td><td>{v['min_c']:.1f}</td><td>{v['max_c']:.1f}</td></tr>"
                       for z, v in thermal.items())
        parts.append(f"<table><tr><th>thermal zone</th><th>min (C)</th><th>max (C)</th></tr>{rows}</table>")
    battery = summary.get("battery")
    if battery:
        facts = []
        if "charge_counter_uah" in battery:
            facts.append(f"charge {battery['charge_counter_uah']['delta']:+d} uAh")
        if "current_ua" in battery:
            facts.append(f"current mean {battery['current_ua']['mean'] / 1e3:.1f} mA")
        if "power_mw" in battery:
            facts.append(f"power mean {battery['power_mw']['mean']:.0f} mW")
        parts.append(f"<p>Battery ({battery['samples']} readings): {escape(', '.join(facts))}.</p>")
    rails = summary.get("power_rails") or {}
    if rails:
        rows = "".join(f"<tr><td>{escape(r)}</td><td>{v['energy_mj']:.1f}</td><td>{_ms(v['mean_mw'])}</td></tr>"
                       for r, v in rails.items())
        parts.append(f"<table><tr><th>power rail</th><th>energy (mJ)</th><th>mean (mW)</th></tr>{rows}</table>")
    return "".join(parts)


def trace_line(d: dict[str, Any], run_json: Path) -> str:
    """One CLI line: where the device's trace is and its stage medians."""
    trace = d["trace"]
    stages = (trace.get("summary") or {}).get("stages") or {}
    medians = ", ".join(f"{label} {stages[key]['median_ms']:.1f}" for key, label in
                        (("text_encode", "text"), ("denoise_step", "step"), ("decode", "decode"))
                        if (stages.get(key) or {}).get("median_ms") is not None)
    where = Path(run_json).with_name(trace["path"])
    return (f"{d['serial']}: Perfetto trace {where} (open in {UI_URL})"
            + (f"; stage medians ms: {medians}" if medians else ""))

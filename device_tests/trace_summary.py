"""Summary of a Perfetto trace, read offline with the `perfetto` package's protobuf classes (no trace processor).

`perfetto.protos.perfetto.trace.perfetto_trace_pb2.Trace` parses the file; nothing is downloaded or run. From its
packets: the app's sections (atrace `print` events `B|pid|name` / `E|pid`, async `S|pid|name|cookie` /
`F|pid|name|cookie`, and track_event slices with inline or interned names) give time per stage (text encode, each
denoise step, decode: count, total, median ms), counting only stages inside the runner's `banana:run K` sections
when it wrote them (warm-up runs left out); ftrace `cpu_frequency` / `gpu_frequency` give the time each CPU (and
GPU) spent at each clock from its first event to the trace's end, CPUs with the same residency grouped as a
cluster; `thermal_temperature` gives each zone's min/max; `battery` and `power_rails` packets the battery counters
and energy per rail. Timestamps are taken as the trace clock (BOOTTIME, Android's default); packets on another
clock (`timestamp_clock_id`) are not converted.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_tests.errors import ReportError
from device_tests.trace_config import DECODE_SECTION, DENOISE_RE, RUN_RE, SECTION_PREFIX, TEXT_SECTION

MAX_TRACE_BYTES = 2 << 30  # larger files are refused (protobuf parses the whole message in memory)


@dataclass(frozen=True)
class Slice:
    name: str  # section name
    start_ns: int  # begin, trace clock (ns)
    end_ns: int  # end, trace clock (ns)
    tid: int  # thread (or async track) it ran on

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def read_trace(path: Path) -> Any:
    """The file's `Trace` message; ReportError when it is missing, too large or not a Perfetto trace."""
    from google.protobuf.message import DecodeError
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_TRACE_BYTES:
            raise ReportError(f"{path} is {size / 1e9:.1f} GB; open it in ui.perfetto.dev instead")
        trace = Trace.FromString(path.read_bytes())
    except OSError as exc:
        raise ReportError(f"cannot read trace {path}: {exc.strerror}") from None
    except DecodeError:
        raise ReportError(f"{path} is not a Perfetto trace (protobuf Trace)") from None
    if not trace.packet:
        raise ReportError(f"{path} holds no trace packets")
    return trace


# ---- slices
def _print_slices(trace: Any) -> list[Slice]:
    """Slices from atrace markers in ftrace print events: B/E nest per thread, S/F match by (pid, name, cookie)."""
    events = [(e.timestamp, e.pid, e.print.buf) for p in trace.packet if p.HasField("ftrace_events")
              for e in p.ftrace_events.event if e.HasField("print")]
    stacks: dict[int, list[tuple[str, int]]] = defaultdict(list)
    pending: dict[tuple[str, str, str], int] = {}
    out: list[Slice] = []
    for ts, tid, buf in sorted(events, key=lambda e: e[0]):
        fields = buf.rstrip("\n").split("|")
        kind = fields[0]
        if kind == "B" and len(fields) >= 3:
            stacks[tid].append(("|".join(fields[2:]), ts))
        elif kind == "E" and stacks[tid]:
            name, start = stacks[tid].pop()
            out.append(Slice(name, start, ts, tid))
        elif kind in ("S", "F") and len(fields) >= 4:
            key = (fields[1], "|".join(fields[2:-1]), fields[-1])
            if kind == "S":
                pending[key] = ts
            elif key in pending:
                out.append(Slice(key[1], pending.pop(key), ts, -1))
    return out


def _track_event_slices(trace: Any) -> list[Slice]:
    """Slices from track_event packets (SDK tracing): BEGIN/END nest per track; names inline or interned."""
    names: dict[int, dict[int, str]] = defaultdict(dict)  # sequence -> iid -> name
    stacks: dict[int, list[tuple[str, int]]] = defaultdict(list)
    out: list[Slice] = []
    for p in trace.packet:
        seq = p.trusted_packet_sequence_id
        if p.sequence_flags & 1:  # SEQ_INCREMENTAL_STATE_CLEARED
            names[seq].clear()
        for entry in p.interned_data.event_names:
            names[seq][entry.iid] = entry.name
        if not p.HasField("track_event"):
            continue
        event = p.track_event
        track = event.track_uuid
        if event.type == 1:  # TYPE_SLICE_BEGIN
            stacks[track].append((event.name or names[seq].get(event.name_iid, ""), p.timestamp))
        elif event.type == 2 and stacks[track]:  # TYPE_SLICE_END
            name, start = stacks[track].pop()
            out.append(Slice(name, start, p.timestamp, track))
    return out


def app_slices(trace: Any) -> list[Slice]:
    """The app's sections (names starting `banana:`) in start order."""
    return sorted((s for s in _print_slices(trace) + _track_event_slices(trace) if s.name.startswith(SECTION_PREFIX)),
                  key=lambda s: s.start_ns)


def _stat(values: list[float]) -> dict[str, Any]:
    return {"count": len(values), "total_ms": round(sum(values), 3),
            "median_ms": round(statistics.median(values), 3) if values else None}


def stage_times(slices: list[Slice]) -> dict[str, Any]:
    """Per stage: count, total and median ms, over the timed runs' sections (all sections when no run sections)."""
    runs = [s for s in slices if (m := RUN_RE.fullmatch(s.name)) and m.group(1) == "run"]
    warmups = [s for s in slices if (m := RUN_RE.fullmatch(s.name)) and m.group(1) == "warmup"]

    def timed(s: Slice) -> bool:
        inside = any(r.start_ns <= s.start_ns and s.end_ns <= r.end_ns for r in runs)
        return inside if runs else not any(w.start_ns <= s.start_ns and s.end_ns <= w.end_ns for w in warmups)

    stages = [s for s in slices if not RUN_RE.fullmatch(s.name) and timed(s)]
    steps: dict[int, list[float]] = defaultdict(list)
    for s in stages:
        if m := DENOISE_RE.fullmatch(s.name):
            steps[int(m.group(1))].append(s.ms)
    return {
        "runs": _stat([r.ms for r in runs]),
        "warmup_runs": len(warmups),
        "text_encode": _stat([s.ms for s in stages if s.name == TEXT_SECTION]),
        "denoise_step": _stat([ms for values in steps.values() for ms in values]),
        "denoise_steps": {str(k): _stat(v) for k, v in sorted(steps.items())},
        "decode": _stat([s.ms for s in stages if s.name == DECODE_SECTION]),
    }


# ---- counters
def _ftrace(trace: Any, field: str) -> list[tuple[int, Any]]:
    return sorted(((e.timestamp, getattr(e, field)) for p in trace.packet if p.HasField("ftrace_events")
                   for e in p.ftrace_events.event if e.HasField(field)), key=lambda x: x[0])


def _residency(changes: list[tuple[int, int, int]], end_ns: int) -> dict[int, dict[int, float]]:
    """(ts, unit, khz) clock changes -> unit -> khz -> ms spent there, from the unit's first change to `end_ns`."""
    per_unit: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for ts, unit, khz in changes:
        per_unit[unit].append((ts, khz))
    out: dict[int, dict[int, float]] = {}
    for unit, points in sorted(per_unit.items()):
        spent: dict[int, float] = defaultdict(float)
        for (ts, khz), (nxt, _) in zip(points, [*points[1:], (end_ns, 0)], strict=True):
            spent[khz] += max(0, nxt - ts) / 1e6
        out[unit] = {khz: round(ms, 3) for khz, ms in sorted(spent.items())}
    return out


def cpu_residency(trace: Any, end_ns: int) -> dict[str, Any]:
    """Per CPU: ms at each clock (kHz); CPUs with identical residency grouped as clusters."""
    changes = [(ts, e.cpu_id, e.state) for ts, e in _ftrace(trace, "cpu_frequency")]
    per_cpu = _residency(changes, end_ns)
    clusters: dict[tuple, list[int]] = defaultdict(list)  # a policy's CPUs change clock together (us apart)
    for cpu, spent in per_cpu.items():
        clusters[tuple((khz, round(ms)) for khz, ms in spent.items())].append(cpu)
    groups = []
    for cpus in clusters.values():
        spent = per_cpu[cpus[0]]
        total = sum(spent.values())
        groups.append({"cpus": cpus, "residency_ms": {str(khz): ms for khz, ms in spent.items()},
                       "mean_mhz": round(sum(k * ms for k, ms in spent.items()) / total / 1e3, 1) if total else None})
    return {"cpus": {str(cpu): {str(khz): ms for khz, ms in spent.items()} for cpu, spent in per_cpu.items()},
            "clusters": groups}


def gpu_residency(trace: Any, end_ns: int) -> dict[str, Any]:
    """Per GPU: ms at each clock (the event's unit, kHz on most kernels)."""
    changes = [(ts, e.gpu_id, e.state) for ts, e in _ftrace(trace, "gpu_frequency")]
    return {str(gpu): {str(f): ms for f, ms in spent.items()} for gpu, spent in _residency(changes, end_ns).items()}


def thermal_range(trace: Any) -> dict[str, Any]:
    """Per thermal zone: min and max C and the number of readings."""
    zones: dict[str, list[float]] = defaultdict(list)
    for _, e in _ftrace(trace, "thermal_temperature"):
        zones[e.thermal_zone or f"zone{e.id}"].append(e.temp / 1000.0)
    return {name: {"min_c": min(v), "max_c": max(v), "samples": len(v)} for name, v in sorted(zones.items())}


def battery_counters(trace: Any) -> dict[str, Any] | None:
    """Battery counters over the trace: charge first/last (uAh), current mean/min/max (uA), voltage, power (mW)."""
    samples = sorted(((p.timestamp, p.battery) for p in trace.packet if p.HasField("battery")), key=lambda x: x[0])
    if not samples:
        return None
    out: dict[str, Any] = {"samples": len(samples)}
    charge = [b.charge_counter_uah for _, b in samples if b.HasField("charge_counter_uah")]
    if charge:
        out["charge_counter_uah"] = {"first": charge[0], "last": charge[-1], "delta": charge[-1] - charge[0]}
    current = [b.current_ua for _, b in samples if b.HasField("current_ua")]
    if current:
        out["current_ua"] = {"mean": round(statistics.fmean(current), 1), "min": min(current), "max": max(current)}
    volts = [b.voltage_uv for _, b in samples if b.HasField("voltage_uv")]
    if volts:
        out["voltage_uv"] = {"mean": round(statistics.fmean(volts), 1)}
    if current and volts:  # mean drawn power: |I| x V
        out["power_mw"] = {"mean": round(statistics.fmean(
            abs(b.current_ua) * b.voltage_uv / 1e9 for _, b in samples
            if b.HasField("current_ua") and b.HasField("voltage_uv")), 3)}
    level = [b.capacity_percent for _, b in samples if b.HasField("capacity_percent")]
    if level:
        out["capacity_percent"] = {"first": level[0], "last": level[-1]}
    return out


def power_rails(trace: Any) -> dict[str, Any]:
    """Per rail: energy used over the trace (mJ, last - first cumulative reading) and mean power (mW)."""
    names: dict[int, str] = {}
    readings: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for p in trace.packet:
        if not p.HasField("power_rails"):
            continue
        for d in p.power_rails.rail_descriptor:
            names[d.index] = d.rail_name
        for e in p.power_rails.energy_data:
            readings[e.index].append((e.timestamp_ms, e.energy))
    out = {}
    for index, values in sorted(readings.items()):
        values.sort()
        energy_mj = (values[-1][1] - values[0][1]) / 1e3
        span_s = (values[-1][0] - values[0][0]) / 1e3
        out[names.get(index, f"rail{index}")] = {"energy_mj": round(energy_mj, 3), "samples": len(values),
                                                 "mean_mw": round(energy_mj / span_s, 3) if span_s > 0 else None}
    return out


def _bounds(trace: Any) -> tuple[int, int]:
    stamps = [p.timestamp for p in trace.packet if p.timestamp]
    stamps += [e.timestamp for p in trace.packet if p.HasField("ftrace_events") for e in p.ftrace_events.event]
    return (min(stamps), max(stamps)) if stamps else (0, 0)


def summarize_trace(path: Path) -> dict[str, Any]:
    """The summary RUN.json keeps beside the trace's path (see the module docstring)."""
    trace = read_trace(path)
    start, end = _bounds(trace)
    return {
        "packets": len(trace.packet), "duration_ms": round((end - start) / 1e6, 3),
        "stages": stage_times(app_slices(trace)),
        "cpu_frequency": cpu_residency(trace, end), "gpu_frequency": gpu_residency(trace, end),
        "thermal": thermal_range(trace), "battery": battery_counters(trace), "power_rails": power_rails(trace),
    }

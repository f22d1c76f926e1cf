"""Parsers for what Android prints: getprop, dumpsys thermalservice/battery/meminfo, sysfs, df, sha256sum,
benchmark_model (toybox and GNU coreutils formats; current and TFLite 1.x benchmark_model).

Each takes the command's text and returns plain data; malformed lines are skipped, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THERMAL_STATUS = ("NONE", "LIGHT", "MODERATE", "SEVERE", "CRITICAL", "EMERGENCY", "SHUTDOWN")  # 0..6
SENSOR_TYPES = {0: "CPU", 1: "GPU", 2: "BATTERY", 3: "SKIN", 4: "USB_PORT", 5: "POWER_AMPLIFIER",
                6: "BCL_VOLTAGE", 7: "BCL_CURRENT", 8: "BCL_PERCENTAGE", 9: "NPU"}

_PROP = re.compile(r"^\[(?P<key>[^\]]+)\]: \[(?P<value>.*)\]$")
_TEMPERATURE = re.compile(
    r"Temperature\{mValue=(?P<value>-?[0-9.]+(?:[eE][-+]?\d+)?|NaN), mType=(?P<type>-?\d+), "
    r"mName=(?P<name>[^,]*), mStatus=(?P<status>\d+)\}")


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` -> {key: value}."""
    props = {}
    for line in text.splitlines():
        match = _PROP.match(line.strip())
        if match:
            props[match["key"]] = match["value"]
    return props


def parse_packages(text: str) -> list[str]:
    """`pm list packages` -> package names."""
    return [line.strip()[len("package:"):] for line in text.splitlines() if line.strip().startswith("package:")]


@dataclass(frozen=True)
class Sensor:
    name: str  # mName
    type: int  # mType (0 CPU, 1 GPU, 2 BATTERY, 3 SKIN, 9 NPU, ...)
    value_c: float  # mValue, degrees Celsius
    status: int  # mStatus, 0 NONE .. 6 SHUTDOWN


@dataclass(frozen=True)
class ThermalService:
    status: int | None  # `Thermal Status: N`
    sensors: list[Sensor]  # current temperatures from the HAL (cached ones when the HAL has none)


def parse_thermalservice(text: str) -> ThermalService:
    """`dumpsys thermalservice` -> overall status and every temperature sensor."""
    status = None
    match = re.search(r"^\s*Thermal Status:\s*(\d+)", text, re.MULTILINE)
    if match:
        status = int(match.group(1))
    sections: dict[str, list[Sensor]] = {"current": [], "cached": []}
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Current temperatures from HAL"):
            section = "current"
        elif stripped.startswith("Cached temperatures"):
            section = "cached"
        elif stripped.endswith(":") and not stripped.startswith("Temperature"):
            section = None
        found = _TEMPERATURE.search(stripped)
        if found and section and found["value"] != "NaN":
            sections[section].append(Sensor(found["name"], int(found["type"]), float(found["value"]),
                                             int(found["status"])))
    return ThermalService(status, sections["current"] or sections["cached"])


def parse_battery_temp(text: str) -> float | None:
    """`dumpsys battery` -> battery temperature in C (the service prints tenths of a degree)."""
    match = re.search(r"^\s*temperature:\s*(-?\d+)", text, re.MULTILINE)
    return int(match.group(1)) / 10.0 if match else None


def parse_meminfo_pss_kb(text: str) -> int | None:
    """`dumpsys meminfo <pkg>` -> total PSS in KiB; None when the process is not running."""
    if "No process found" in text:
        return None
    match = re.search(r"TOTAL PSS:\s*(\d+)", text)
    if match:
        return int(match.group(1))
    match = re.search(r"^\s*TOTAL\s+(\d+)", text, re.MULTILINE)
    return int(match.group(1)) if match else None


PLAUSIBLE_C = (-30.0, 150.0)  # a reading outside this range is a fault or not a temperature; it is dropped


def zone_celsius(raw: str) -> float | None:
    """A zone's `temp` text in C: millidegrees (the kernel's unit), tenths (some old MSM tsens drivers print
    309) or whole degrees (31); None when it is not a number or not a plausible temperature."""
    text = raw.strip()
    if not re.fullmatch(r"-?\d+", text):
        return None
    value = int(text)
    celsius = value / 1000.0 if abs(value) >= 1000 else value / 10.0 if abs(value) >= 150 else float(value)
    return celsius if PLAUSIBLE_C[0] <= celsius <= PLAUSIBLE_C[1] else None


def parse_thermal_zones(text: str) -> dict[str, float]:
    """Output of `cat zoneN/type zoneN/temp ...` (pairs of lines) -> {type: C} (units as `zone_celsius` reads
    them; implausible readings left out)."""
    lines = [line.strip() for line in text.splitlines()]
    zones = {}
    for name, raw in zip(lines[0::2], lines[1::2], strict=False):
        celsius = zone_celsius(raw)
        if celsius is not None:
            zones[name] = celsius
    return zones


def parse_time_in_state(text: str) -> dict[int, int]:
    """`stats/time_in_state` -> {freq_khz: time in 10 ms units}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            out[int(parts[0])] = int(parts[1])
    return out


def parse_df_available_kb(text: str) -> int | None:
    """`df -k PATH` (toybox or GNU) -> available KiB of the filesystem holding PATH.

    The column is found by its header (`Available`, or `Avail`); a filesystem name too long for its column
    stands on a line of its own (GNU coreutils before 8.11, busybox) and is joined to the numbers below it.
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    header = lines[0]
    column = next((k for k, name in enumerate(header) if name in ("Available", "Avail")), 3)
    rows, pending = [], None
    for row in lines[1:]:
        if pending is not None:
            row, pending = [pending, *row], None
        elif len(row) == 1:
            pending = row[0]
            continue
        rows.append(row)
    for row in rows:
        if len(row) > column and row[column].isdigit():
            return int(row[column])
    return None


def parse_sha256sum(text: str) -> str | None:
    """The hash on the first line of `sha256sum FILE` (toybox or GNU); None when there is none (an error).

    GNU coreutils escapes a file name holding a newline or backslash and marks the line with a leading `\\`.
    """
    line = text.split("\n", 1)[0]
    if line.startswith("\\"):
        line = line[1:]
    digest = line[:64]
    ok = len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) and line[64:66] in ("  ", " *")
    return digest if ok else None


def parse_meminfo_total_kb(text: str) -> int | None:
    """/proc/meminfo -> MemTotal in KiB."""
    match = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class BenchmarkModelResult:
    init_us: float  # Init
    first_us: float | None  # First inference (old builds: the first warm-up run, when they printed it)
    warmup_avg_us: float | None  # Warmup (avg); None when the tool printed nan (no warm-up runs)
    inference_avg_us: float  # Inference (avg), "Inference" or "no stats" in older builds
    peak_memory_mb: float | None  # Overall peak memory footprint (MB) via periodic monitoring (new builds only)
    memory_delta_mb: float | None  # Memory footprint delta ... overall= (new builds only)
    output_format: str = "current"  # "current" (TFLite 2.x / LiteRT) or "old" (TFLite 1.x: "Average inference ...")
    delegate: str | None = None  # delegate(s) that took nodes, e.g. TfLiteXNNPackDelegate ("+"-joined); None: no log
    delegated_nodes: int | None = None  # nodes replaced by the delegate(s) ("Replacing N out of M node(s)")
    total_nodes: int | None = None  # nodes of the graph (M)
    partitions: int | None = None  # delegate partitions ("yielding K partitions", "w/ K delegate kernels")
    fully_delegated: bool | None = None  # "completely executed by the delegate" / "partially" / "not executed"


_NUM = r"[\d.eE+-]+"
_BM_TIMINGS = re.compile(
    rf"Inference timings in us: Init: (?P<init>{_NUM}), First inference: (?P<first>{_NUM}), "
    rf"Warmup \(avg\): (?P<warm>{_NUM}|nan|-nan), Inference \(avg\): (?P<avg>{_NUM})")
_BM_OLD_TIMINGS = re.compile(  # TFLite 1.x: "no stats" (1.12-1.13) or "Inference" (1.14-1.15)
    rf"Average inference timings in us: Warmup: (?P<warm>{_NUM}|nan|-nan), Init: (?P<init>{_NUM}), "
    rf"(?:no stats|Inference): (?P<avg>{_NUM})")
_BM_OLD_FIRST = re.compile(rf"count=\d+ (?:first=(?P<first>{_NUM})|curr=(?P<curr>{_NUM}))")
_BM_REPLACING = re.compile(
    r"Replacing (?P<n>\d+)(?: out of (?P<m>\d+))? node\(s\) with delegate \((?P<name>[^)]*)\) node, "
    r"yielding (?P<k>\d+) partitions")
_BM_APPLIED = re.compile(
    r"(?:Explicitly applied|Though) (?P<name>.+?) delegate(?: is explicitly applied)?,(?: and)? the model graph will "
    r"(?:be (?P<how>completely|partially) executed by the delegate(?: w/ (?P<k>\d+) delegate kernels)?|"
    r"not be executed by the delegate)")


def parse_benchmark_model(text: str) -> BenchmarkModelResult | None:
    """LiteRT / TFLite `benchmark_model` output (current or TFLite 1.x format) -> timings (us), memory and
    delegation; None when it has no timings line."""
    match = _BM_TIMINGS.search(text)
    if match:
        first: float | None = float(match["first"])
        fmt = "current"
    else:
        match = _BM_OLD_TIMINGS.search(text)
        if not match:
            return None
        warm_line = _BM_OLD_FIRST.search(text)  # the warm-up runs' line comes first
        first = float(warm_line["first"] or warm_line["curr"]) if warm_line else None
        fmt = "old"
    peak = re.search(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})", text)
    delta = re.search(rf"Memory footprint delta from the start of the tool \(MB\): init={_NUM} overall=({_NUM})",
                      text)
    warm = match["warm"]
    return BenchmarkModelResult(
        float(match["init"]), first, None if "nan" in warm else float(warm), float(match["avg"]),
        float(peak.group(1)) if peak else None, float(delta.group(1)) if delta else None, fmt,
        **_delegation(text))


def _delegation(text: str) -> dict[str, object]:
    """Delegate coverage from the `Replacing N out of M node(s)` log lines (summed over delegates) and
    benchmark_model's `Explicitly applied X delegate, and the model graph will be ...` line."""
    lines = list(_BM_REPLACING.finditer(text))
    applied = _BM_APPLIED.search(text)
    out: dict[str, object] = {}
    if lines:
        out["delegate"] = "+".join(dict.fromkeys(m["name"] for m in lines))
        out["delegated_nodes"] = sum(int(m["n"]) for m in lines)
        totals = [int(m["m"]) for m in lines if m["m"]]
        out["total_nodes"] = max(totals) if totals else None
        out["partitions"] = sum(int(m["k"]) for m in lines)
    if applied:
        how = applied["how"]
        out["fully_delegated"] = how == "completely"
        out.setdefault("delegate", applied["name"])
        if applied["k"] and "partitions" not in out:
            out["partitions"] = int(applied["k"])
        if how is None:  # "will not be executed by the delegate"
            out.setdefault("delegated_nodes", 0)
            out.setdefault("partitions", 0)
    elif lines and out["total_nodes"] is not None:
        out["fully_delegated"] = out["delegated_nodes"] == out["total_nodes"]
    return out

"""Parsers for what Android prints: getprop, dumpsys thermalservice/battery/meminfo, sysfs, df, benchmark_model.

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


def parse_thermal_zones(text: str) -> dict[str, float]:
    """Output of `cat zoneN/type zoneN/temp ...` (pairs of lines) -> {type: C}; millidegrees converted."""
    lines = [line.strip() for line in text.splitlines()]
    zones = {}
    for name, raw in zip(lines[0::2], lines[1::2], strict=False):
        if re.fullmatch(r"-?\d+", raw):
            value = int(raw)
            zones[name] = value / 1000.0 if abs(value) > 200 else float(value)
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
    """`df -k PATH` -> available KiB of the filesystem holding PATH."""
    rows = [line.split() for line in text.splitlines()[1:] if line.strip()]
    for row in rows:
        if len(row) >= 6 and row[3].isdigit():
            return int(row[3])
    return None


def parse_meminfo_total_kb(text: str) -> int | None:
    """/proc/meminfo -> MemTotal in KiB."""
    match = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class BenchmarkModelResult:
    init_us: float  # Init
    first_us: float  # First inference
    warmup_avg_us: float | None  # Warmup (avg); None when the tool printed nan (no warm-up runs)
    inference_avg_us: float  # Inference (avg)
    peak_memory_mb: float | None  # Overall peak memory footprint (MB) via periodic monitoring
    memory_delta_mb: float | None  # Memory footprint delta ... overall=


_BM_TIMINGS = re.compile(
    r"Inference timings in us: Init: (?P<init>[\d.eE+-]+), First inference: (?P<first>[\d.eE+-]+), "
    r"Warmup \(avg\): (?P<warm>[\d.eE+-]+|nan|-nan), Inference \(avg\): (?P<avg>[\d.eE+-]+)")


def parse_benchmark_model(text: str) -> BenchmarkModelResult | None:
    """LiteRT `benchmark_model` output -> timings (us) and memory; None when it has no timings line."""
    match = _BM_TIMINGS.search(text)
    if not match:
        return None
    peak = re.search(r"Overall peak memory footprint \(MB\) via periodic monitoring: ([\d.eE+-]+)", text)
    delta = re.search(r"Memory footprint delta from the start of the tool \(MB\): init=[\d.eE+-]+ "
                      r"overall=([\d.eE+-]+)", text)
    warm = match["warm"]
    return BenchmarkModelResult(
        float(match["init"]), float(match["first"]), None if "nan" in warm else float(warm),
        float(match["avg"]), float(peak.group(1)) if peak else None, float(delta.group(1)) if delta else None)

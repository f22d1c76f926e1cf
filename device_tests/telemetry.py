"""Device telemetry: thermal status, skin/CPU/GPU/battery temperatures, app PSS, at 1 Hz, and cpufreq
`time_in_state` before/after a measurement.

The temperatures come from the device's thermal source (`thermal_source.py`: the thermal HAL's sensors, else the
sysfs zones mapped to roles by name), probed once. One tick is one shell round trip that reads only what the
source needs (`tick_commands`): `cat` of the role zones' `temp` files and the battery temperature file, then
`dumpsys thermalservice` (the thermal status, and the sensors with a HAL), `dumpsys battery` only when the
battery file could not be read, and `dumpsys meminfo PKG` only every `pss_every` ticks: it is the expensive one,
a walk of the app's page tables and a binder call into the app that is being measured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from device_tests.adb import Device
from device_tests.contract import PACKAGE
from device_tests.errors import DeviceDisconnected, DeviceError
from device_tests.parsers import parse_battery_temp, parse_meminfo_pss_kb, parse_thermalservice, parse_time_in_state
from device_tests.thermal_source import (
    Role,
    SourceKind,
    ThermalSource,
    battery_tenths,
    probe_source,
    read_cat,
    zone_celsius,
)

SECTION = "---banana-telemetry---"
PSS_EVERY = 5  # ticks between two `dumpsys meminfo` reads (PSS at 0.2 Hz with 1 Hz sampling)


@dataclass
class Sample:
    t: float  # seconds since the measurement started (host clock)
    thermal_status: int | None  # 0 NONE .. 6 SHUTDOWN
    sensors: list[dict[str, Any]] = field(default_factory=list)  # thermal HAL: {name, type, value_c, status}
    zones: dict[str, float] = field(default_factory=dict)  # sysfs source: zone type -> C, the role zones read
    battery_c: float | None = None  # the battery service's temperature (battery file or `dumpsys battery`)
    pss_kb: int | None = None  # app PSS (None when not read this tick, or the app is not running)
    roles: dict[str, float | None] = field(default_factory=dict)  # skin/cpu/gpu/battery -> hottest C of its inputs

    @property
    def skin_c(self) -> float | None:
        return self.roles.get(Role.SKIN.value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_dir(device: Device, path: str) -> list[str]:
    """Names in a device directory (empty when it is absent or unreadable)."""
    with device.sync() as sync:
        return sorted(name for name, _ in sync.list(path))


def tick_files(source: ThermalSource) -> list[str]:
    """The sysfs files one tick reads with one `cat`: the role zones' temperatures, then the battery file."""
    return [z.temp_file for z in source.zones] + ([source.battery_file] if source.battery_file else [])


def tick_commands(source: ThermalSource, package: str = PACKAGE, with_pss: bool = True
                  ) -> tuple[list[list[str]], list[str]]:
    """(commands of one tick's shell round trip, the name of each output section in order)."""
    commands: list[list[str]] = []
    sections: list[str] = []

    def add(name: str, argv: list[str]) -> None:
        if commands:
            commands.append(["echo", SECTION])
        commands.append(argv)
        sections.append(name)

    files = tick_files(source)
    if files:
        add("files", ["cat", *files])
    add("thermal", ["dumpsys", "thermalservice"])
    if source.battery_file is None:
        add("battery", ["dumpsys", "battery"])
    if with_pss:
        add("meminfo", ["dumpsys", "meminfo", package])
    return commands, sections


def read_sample(device: Device, source: ThermalSource, t: float, package: str = PACKAGE,
                with_pss: bool = True) -> Sample:
    """One telemetry sample in one shell round trip (`tick_commands`)."""
    commands, names = tick_commands(source, package, with_pss)
    result = device.script(commands, timeout_s=15.0)
    parts = dict(zip(names, result.stdout.split(SECTION + "\n"), strict=False))
    files = tick_files(source)
    lines = read_cat(parts.get("files", ""), result.stderr, files) if files else {}
    zone_c = {z.temp_file: zone_celsius(lines[z.temp_file]) for z in source.zones if z.temp_file in lines}
    if source.battery_file is not None:
        battery_c = battery_tenths(lines.get(source.battery_file, ""))
    else:
        battery_c = parse_battery_temp(parts.get("battery", ""))
    thermal = parse_thermalservice(parts.get("thermal", ""))
    zones: dict[str, float] = {}
    for zone in source.zones:
        value = zone_c.get(zone.temp_file)
        if value is not None:
            zones[zone.name if zone.name not in zones else f"{zone.name}#{zone.index}"] = value
    pss = parse_meminfo_pss_kb(parts["meminfo"]) if "meminfo" in parts else None
    sensors = [asdict(s) for s in thermal.sensors] if source.kind is SourceKind.HAL else []
    return Sample(t, thermal.status, sensors, zones, battery_c, pss, source.roles(thermal.sensors, zone_c, battery_c))


def read_time_in_state(device: Device) -> dict[str, dict[int, int]]:
    """{policyN: {freq_khz: 10 ms units}} for every cpufreq policy (empty when unreadable)."""
    base = "/sys/devices/system/cpu/cpufreq"
    policies = [p for p in list_dir(device, base) if p.startswith("policy")]
    if not policies:
        return {}
    commands: list[list[str]] = []
    for policy in policies:
        commands += [["cat", f"{base}/{policy}/stats/time_in_state"], ["echo", SECTION]]
    parts = device.script(commands).stdout.split(SECTION + "\n")
    return {p: parse_time_in_state(text) for p, text in zip(policies, parts, strict=False)}


def time_in_state_delta(before: dict[str, dict], after: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Seconds spent at each frequency between two readings, per policy."""
    out = {}
    for policy, rows in after.items():
        old = {int(k): v for k, v in before.get(policy, {}).items()}
        out[policy] = {str(f): round((v - old.get(int(f), 0)) / 100.0, 2) for f, v in rows.items()}
    return out


class TelemetrySampler:
    """Samples in a background thread every `interval_s` until stopped; each sample goes to `on_sample`.

    The thermal source is probed at `start` unless one is given (the profiler passes the one its cool-down gate
    used). PSS is read every tick until the app is first seen running, then every `pss_every` ticks."""

    def __init__(self, device: Device, on_sample: Callable[[Sample], None], interval_s: float = 1.0,
                 t0: float | None = None, source: ThermalSource | None = None, pss_every: int = PSS_EVERY) -> None:
        self.device = device
        self.on_sample = on_sample
        self.interval_s = interval_s
        self.t0 = time.monotonic() if t0 is None else t0
        self.source = source  # where the temperatures come from (probed at start when None)
        self.pss_every = max(1, pss_every)  # ticks between two PSS reads
        self.errors: list[str] = []  # sampling failures (the run itself decides what they mean)
        self.lost = False  # the device went away
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"telemetry-{device.serial}")

    def start(self) -> TelemetrySampler:
        if self.source is None:
            self.source = probe_source(self.device)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        source = self.source or probe_source(self.device)
        next_at = time.monotonic()
        pss_in = 0  # ticks until the next PSS read
        while not self._stop.is_set():
            try:
                with_pss = pss_in <= 0
                sample = read_sample(self.device, source, round(time.monotonic() - self.t0, 3), with_pss=with_pss)
                pss_in = self.pss_every - 1 if with_pss and sample.pss_kb is not None else pss_in - 1
                self.on_sample(sample)
            except DeviceDisconnected as exc:
                self.lost = True
                self.errors.append(str(exc))
                return
            except DeviceError as exc:
                self.errors.append(str(exc))
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

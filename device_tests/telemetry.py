"""Device telemetry: thermal status and every sensor, thermal zones, battery temperature, app PSS, at 1 Hz,
and cpufreq `time_in_state` before/after a measurement.

One sample is one shell round trip (`dumpsys thermalservice; dumpsys battery; dumpsys meminfo PKG; cat
zone files`), so sampling costs the device little and the harness overhead can be measured.
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
from device_tests.parsers import (
    parse_battery_temp,
    parse_meminfo_pss_kb,
    parse_thermal_zones,
    parse_thermalservice,
    parse_time_in_state,
)

SECTION = "---banana-telemetry---"
TYPE_SKIN = 3


@dataclass
class Sample:
    t: float  # seconds since the measurement started (host clock)
    thermal_status: int | None  # 0 NONE .. 6 SHUTDOWN
    sensors: list[dict[str, Any]] = field(default_factory=list)  # {name, type, value_c, status}
    zones: dict[str, float] = field(default_factory=dict)  # thermal_zone type -> C
    battery_c: float | None = None  # dumpsys battery temperature
    pss_kb: int | None = None  # app PSS (None when the app is not running)

    @property
    def skin_c(self) -> float | None:
        skins = [s["value_c"] for s in self.sensors if s["type"] == TYPE_SKIN]
        return max(skins) if skins else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_dir(device: Device, path: str) -> list[str]:
    """Names in a device directory (empty when it is absent or unreadable)."""
    with device.sync() as sync:
        return sorted(name for name, _ in sync.list(path))


def thermal_zone_files(device: Device) -> list[str]:
    """`/sys/class/thermal/thermal_zoneN/{type,temp}` paths, interleaved."""
    zones = [z for z in list_dir(device, "/sys/class/thermal") if z.startswith("thermal_zone")]
    zones.sort(key=lambda z: int(z[len("thermal_zone"):]) if z[len("thermal_zone"):].isdigit() else 0)
    return [f"/sys/class/thermal/{z}/{leaf}" for z in zones for leaf in ("type", "temp")]


def read_sample(device: Device, zone_files: list[str], t: float, package: str = PACKAGE) -> Sample:
    """One telemetry sample in one round trip."""
    commands = [["dumpsys", "thermalservice"], ["echo", SECTION], ["dumpsys", "battery"], ["echo", SECTION],
                ["dumpsys", "meminfo", package], ["echo", SECTION]]
    if zone_files:
        commands.append(["cat", *zone_files])
    parts = device.script(commands, timeout_s=15.0).stdout.split(SECTION + "\n")
    parts += [""] * (4 - len(parts))
    thermal = parse_thermalservice(parts[0])
    return Sample(t, thermal.status, [asdict(s) for s in thermal.sensors], parse_thermal_zones(parts[3]),
                  parse_battery_temp(parts[1]), parse_meminfo_pss_kb(parts[2]))


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
    """Samples in a background thread every `interval_s` until stopped; each sample goes to `on_sample`."""

    def __init__(self, device: Device, on_sample: Callable[[Sample], None], interval_s: float = 1.0,
                 t0: float | None = None) -> None:
        self.device = device
        self.on_sample = on_sample
        self.interval_s = interval_s
        self.t0 = time.monotonic() if t0 is None else t0
        self.errors: list[str] = []  # sampling failures (the run itself decides what they mean)
        self.lost = False  # the device went away
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"telemetry-{device.serial}")
        self.zone_files: list[str] = []

    def start(self) -> TelemetrySampler:
        self.zone_files = thermal_zone_files(self.device)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                sample = read_sample(self.device, self.zone_files, round(time.monotonic() - self.t0, 3))
                self.on_sample(sample)
            except DeviceDisconnected as exc:
                self.lost = True
                self.errors.append(str(exc))
                return
            except DeviceError as exc:
                self.errors.append(str(exc))
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))

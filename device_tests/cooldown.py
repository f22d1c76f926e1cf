"""Cool-down gate: before a measurement, wait until the phone's skin and battery are cool enough.

The skin and battery are the device's thermal-source roles (`thermal_source.py`): the HAL's skin sensors, or on a
phone whose HAL lists none the skin zone (`skin-therm`), never only the battery because the skin went unread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from device_tests.adb import Device
from device_tests.telemetry import Sample, read_sample
from device_tests.thermal_source import Role, ThermalSource, probe_source


@dataclass(frozen=True)
class CooldownResult:
    threshold_c: float  # the gate
    reached: bool  # False: timed out and measured anyway
    waited_s: float  # time spent waiting
    start_c: float | None  # hottest of skin/battery when the gate started
    end_c: float | None  # ... when it ended
    message: str  # one line for the user
    source: str = "none"  # thermal source of the readings (SourceKind value: "thermal HAL", "sysfs zones", "none")
    hottest: str | None = None  # the role that read end_c ("skin" or "battery")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def body_temp(sample: Sample) -> tuple[float, str] | None:
    """(C, role) of the hotter of the skin and the battery (what the gate compares); None when neither read."""
    values = [(sample.roles.get(r.value), r.value) for r in (Role.SKIN, Role.BATTERY)]
    present = [(v, name) for v, name in values if v is not None]
    return max(present) if present else None


def cool_down(device: Device, threshold_c: float, timeout_s: float, poll_s: float = 1.0,
              on_sample: Callable[[Sample], None] | None = None,
              source: ThermalSource | None = None) -> CooldownResult:
    """Poll until skin and battery are at or below `threshold_c`, or `timeout_s` passes (probes the thermal source
    first unless one is given)."""
    source = source or probe_source(device)
    kind = source.kind.value
    start = time.monotonic()
    first = None
    while True:
        sample = read_sample(device, source, round(time.monotonic() - start, 3), with_pss=False)
        if on_sample:
            on_sample(sample)
        body = body_temp(sample)
        waited = time.monotonic() - start
        if body is None:
            return CooldownResult(threshold_c, True, waited, None, None,
                                  f"{device.serial}: no skin or battery temperature reported ({kind}); cool-down "
                                  "gate skipped", kind)
        last, role = body
        first = last if first is None else first
        what = f"{role} {last:.1f} C ({kind})"
        if last <= threshold_c:
            return CooldownResult(threshold_c, True, waited, first, last,
                                  f"{device.serial}: {what} <= {threshold_c:.1f} C after {waited:.0f} s", kind, role)
        if waited >= timeout_s:
            return CooldownResult(threshold_c, False, waited, first, last,
                                  f"{device.serial}: still {what} after {waited:.0f} s "
                                  f"(gate {threshold_c:.1f} C); cool-down timed out, measuring anyway", kind, role)
        time.sleep(min(poll_s, max(0.0, timeout_s - waited)))

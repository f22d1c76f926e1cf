"""Cool-down gate: before a measurement, wait until the phone's skin and battery are cool enough."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from device_tests.adb import Device
from device_tests.telemetry import Sample, read_sample


@dataclass(frozen=True)
class CooldownResult:
    threshold_c: float  # the gate
    reached: bool  # False: timed out and measured anyway
    waited_s: float  # time spent waiting
    start_c: float | None  # hottest of skin/battery when the gate started
    end_c: float | None  # ... when it ended
    message: str  # one line for the user

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def body_temp(sample: Sample) -> float | None:
    """The hotter of the skin sensor and the battery (what the gate compares)."""
    values = [v for v in (sample.skin_c, sample.battery_c) if v is not None]
    return max(values) if values else None


def cool_down(device: Device, threshold_c: float, timeout_s: float, poll_s: float = 1.0,
              on_sample: Callable[[Sample], None] | None = None) -> CooldownResult:
    """Poll until skin and battery are at or below `threshold_c`, or `timeout_s` passes."""
    start = time.monotonic()
    first = last = None
    while True:
        sample = read_sample(device, [], round(time.monotonic() - start, 3))
        if on_sample:
            on_sample(sample)
        last = body_temp(sample)
        first = last if first is None else first
        waited = time.monotonic() - start
        if last is None:
            return CooldownResult(threshold_c, True, waited, None, None,
                                  f"{device.serial}: no skin or battery temperature reported; cool-down gate skipped")
        if last <= threshold_c:
            return CooldownResult(threshold_c, True, waited, first, last,
                                  f"{device.serial}: {last:.1f} C <= {threshold_c:.1f} C after {waited:.0f} s")
        if waited >= timeout_s:
            return CooldownResult(threshold_c, False, waited, first, last,
                                  f"{device.serial}: still {last:.1f} C after {waited:.0f} s "
                                  f"(gate {threshold_c:.1f} C); cool-down timed out, measuring anyway")
        time.sleep(min(poll_s, max(0.0, timeout_s - waited)))

"""Device quirks a simulated phone can be started with: the ways real fleets differ from the reference phone.

Each quirk is one behaviour of a real device class that the harness must handle (issue 22's variety matrix);
`banana sim start --quirk NAME` (repeatable) and `SimOptions.quirks` select them. A slow link and low storage
are not quirks: they are `--write-mbps` and `--storage-mb`.
"""

from __future__ import annotations

from enum import Enum

from device_tests.errors import SimulatorError


class Quirk(str, Enum):
    NO_SHELL_V2 = "no-shell-v2"  # adbd without the shell_v2 feature (Android < 7, some vendor builds): the legacy
    # ^ `shell:` service only (stdout and stderr merged, no exit status)
    OLD_BENCHMARK_MODEL = "old-benchmark-model"  # benchmark_model of older TFLite builds: "Average inference
    # ^ timings in us: Warmup: ..., Init: ..., no stats: ..." and no memory line
    NO_THERMAL_HAL = "no-thermal-hal"  # the thermal HAL reports no sensors (`dumpsys thermalservice` lists none);
    # ^ temperatures exist only as /sys/class/thermal zones, typed by name
    GNU_COREUTILS = "gnu-coreutils"  # ls, df, sha256sum, ps print GNU coreutils/procps formats instead of toybox's
    NO_GETPROP = "no-getprop"  # `getprop` is not installed (sh: exit 127)
    FAILING_GETPROP = "failing-getprop"  # `getprop` exits 1 with an error (property service unavailable)
    FAILING_PM = "failing-pm"  # `pm`/`cmd package` fail: "cmd: Can't find service: package" (exit 20, as cmd)
    FAILING_AM = "failing-am"  # `am start` is not found (sh: exit 127)
    NO_PERFETTO = "no-perfetto"  # no `perfetto` binary (Android < 9)


def parse_quirks(names: tuple[str, ...] | list[str]) -> frozenset[Quirk]:
    """Quirks by name; an unknown name raises SimulatorError listing the valid ones."""
    valid = {q.value: q for q in Quirk}
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise SimulatorError(f"unknown device quirk {unknown[0]!r}; choose from {sorted(valid)}")
    return frozenset(valid[n] for n in names)

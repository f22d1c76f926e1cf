"""Where a phone's temperatures come from, and which readings are its skin, CPU, GPU and battery.

A device gets one source, chosen once by `probe_source` (one sync listing and one shell round trip):

  * **thermal HAL** when `dumpsys thermalservice` lists at least one sensor of a role's Android type
    (`Temperature.TYPE_CPU` 0, `TYPE_GPU` 1, `TYPE_BATTERY` 2, `TYPE_SKIN` 3); a role is the hottest sensor of its
    type (a Samsung lists three skin sensors and a `SUBBAT` battery at 0.0 C);
  * **sysfs zones** otherwise: `/sys/class/thermal/thermal_zoneN`, the role read from the zone's `type` name
    (`zone_role`). Zones that are not temperatures or only derive from other zones are kept out by name
    (`is_pseudo`): a name test, not a value test, because `vbat` = 4213 (mV) reads as a plausible 4.2 C.
    Without a zone named for the skin, the coolest-placed board thermistor stands in (`SKIN_PROXIES` order:
    quiet, case, back, then xo, which sits by the SoC and reads hot: the cool-down gate waits longer, never
    shorter). Each tick reads only the zones a role uses (`ThermalSource.zones`).

The battery role falls back to the battery service's temperature (`/sys/class/power_supply/battery/temp` when
the probe could read it, else `dumpsys battery`). The cool-down gate, the run statistics and the report's charts
all read `Sample.roles`, so they agree, and RUN.json's `thermal_source` says which source gave them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from device_tests.adb import Device
from device_tests.parsers import PLAUSIBLE_C, Sensor, parse_thermalservice, zone_celsius

SECTION = "---banana-thermal---"
ZONES_DIR = "/sys/class/thermal"
BATTERY_TEMP_FILE = "/sys/class/power_supply/battery/temp"  # tenths of a degree C, like `dumpsys battery`


class Role(str, Enum):
    SKIN = "skin"
    CPU = "cpu"
    GPU = "gpu"
    BATTERY = "battery"


class SourceKind(str, Enum):
    HAL = "thermal HAL"
    ZONES = "sysfs zones"
    NONE = "none"  # neither: only the battery service's temperature


HAL_ROLES = {3: Role.SKIN, 0: Role.CPU, 1: Role.GPU, 2: Role.BATTERY}  # android.os.Temperature.TYPE_* -> role
ROLE_LABELS = {Role.SKIN: "skin", Role.CPU: "CPU", Role.GPU: "GPU", Role.BATTERY: "battery"}

# Zone type names (lower-cased) that are not temperatures or only derive from other zones. Qualcomm's battery
# current limiter exposes `vbat` (mV), `ibat` (mA), `soc` (state of charge, %) and `*-bcl-lvlN` trip levels as
# zones; `virtual-*`, `*-virt-*` (e.g. `cpu-virt-max`) are the kernel's aggregates of real zones (max or
# weighted sums) that would count their inputs twice. Names that map to no role need no rule: they are never read.
PSEUDO = re.compile(r"^(v|i)bat|^vph|^soc$|bcl|-lvl\d|virt")
ROLE_RULES: tuple[tuple[Role, re.Pattern[str]], ...] = (
    (Role.SKIN, re.compile(r"skin")),  # skin-therm, skin_therm, skin-msm-therm
    (Role.BATTERY, re.compile(r"batt|^bms$")),  # battery, batt_therm, mtktsbattery, Qualcomm's fuel gauge `bms`
    (Role.GPU, re.compile(r"gpu|g3d|mali")),  # gpuss-0, gpu-thermal, gpu0-usr, Exynos/Tensor g3d
    (Role.CPU, re.compile(r"cpu|^apc\d|^(big|mid|little)$|^cluster\d")),  # cpu-0-0-usr, cpuss-0, cpu0-thermal,
    # ^ mtktscpu, apc1-cpu0-usr (older Qualcomm), Tensor's BIG / MID / LITTLE
)
SKIN_PROXIES = ("quiet", "case", "back", "xo")  # board thermistors standing in for a missing skin zone, in order


def is_pseudo(name: str) -> bool:
    """True for a zone type that is not a temperature, or an aggregate of other zones (see PSEUDO)."""
    return bool(PSEUDO.search(name.strip().lower()))


def zone_role(name: str) -> Role | None:
    """The role a thermal zone's `type` name gives it; None for pseudo-sensors and names of no role."""
    low = name.strip().lower()
    if is_pseudo(low):
        return None
    return next((role for role, rule in ROLE_RULES if rule.search(low)), None)


def skin_proxy_rank(name: str) -> int | None:
    """Preference of a board thermistor as the skin reading when no zone is named for the skin (0 = best)."""
    low = name.strip().lower()
    if is_pseudo(low) or "therm" not in low:
        return None
    return next((k for k, word in enumerate(SKIN_PROXIES) if low.startswith(word)), None)


def battery_tenths(raw: str) -> float | None:
    """The battery temperature file's text (tenths of a degree, as `dumpsys battery` prints) in C; None when it
    is not a number or not plausible."""
    text = raw.strip()
    if not re.fullmatch(r"-?\d+", text):
        return None
    celsius = int(text) / 10.0
    return celsius if PLAUSIBLE_C[0] <= celsius <= PLAUSIBLE_C[1] else None


@dataclass(frozen=True)
class Zone:
    index: int  # N of thermal_zoneN
    name: str  # its `type`
    role: Role  # what it is read as

    @property
    def temp_file(self) -> str:
        return f"{ZONES_DIR}/thermal_zone{self.index}/temp"


@dataclass(frozen=True)
class ThermalSource:
    kind: SourceKind  # where the role temperatures come from
    zones: tuple[Zone, ...] = ()  # zones read each tick (kind ZONES only)
    hal_sensors: tuple[tuple[str, Role], ...] = ()  # HAL sensor names by role (kind HAL only), as probed
    battery_file: str | None = None  # battery temperature file (tenths of C); None: `dumpsys battery`
    excluded: tuple[str, ...] = ()  # zone types kept out as pseudo-sensors
    unmapped: tuple[str, ...] = ()  # zone types of no role (modem, pmic, ddr, ...), not read

    def inputs(self) -> dict[str, list[str]]:
        """{role: names of the sensors or zones it is read from}."""
        pairs = self.hal_sensors if self.kind is SourceKind.HAL else tuple((z.name, z.role) for z in self.zones)
        out: dict[str, list[str]] = {}
        for name, role in pairs:
            out.setdefault(role.value, []).append(name)
        return out

    def describe(self) -> str:
        """One line: the source and what each role reads, e.g. `sysfs zones (skin: skin-therm; CPU: ...)`."""
        inputs = self.inputs()
        parts = [f"{ROLE_LABELS[r]}: {', '.join(inputs[r.value])}" for r in Role if r.value in inputs]
        if Role.BATTERY.value not in inputs:
            parts.append("battery: battery service")
        return f"{self.kind.value} ({'; '.join(parts)})"

    def roles(self, sensors: list[Sensor], zone_c: dict[str, float], battery_c: float | None) -> dict[str, Any]:
        """{role: hottest reading in C or None} from one tick's HAL sensors or zone readings."""
        values: dict[Role, list[float]] = {r: [] for r in Role}
        if self.kind is SourceKind.HAL:
            for s in sensors:
                if s.type in HAL_ROLES and PLAUSIBLE_C[0] <= s.value_c <= PLAUSIBLE_C[1]:
                    values[HAL_ROLES[s.type]].append(s.value_c)
        elif self.kind is SourceKind.ZONES:
            for zone in self.zones:
                if zone_c.get(zone.temp_file) is not None:
                    values[zone.role].append(zone_c[zone.temp_file])
        out: dict[str, Any] = {r.value: (max(v) if v else None) for r, v in values.items()}
        if out[Role.BATTERY.value] is None:
            out[Role.BATTERY.value] = battery_c
        return out

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        out["zones"] = [{"index": z.index, "name": z.name, "role": z.role.value} for z in self.zones]
        out["hal_sensors"] = [[name, role.value] for name, role in self.hal_sensors]
        out["inputs"] = self.inputs()
        out["description"] = self.describe()
        return out


def read_cat(stdout: str, stderr: str, paths: list[str]) -> dict[str, str]:
    """{path: its line} from `cat PATHS` of one-line files; a file cat could not read (named on stderr, or in
    stdout by a legacy shell that merges them) is left out. {} when the lines cannot be matched to the files."""
    merged = [line for line in stdout.splitlines() if line.startswith("cat: ")]
    failed = {p for p in paths if f"{p}:" in stderr or any(f"{p}:" in line for line in merged)}
    lines = [line for line in stdout.splitlines() if not line.startswith("cat: ")]
    readable = [p for p in paths if p not in failed]
    return dict(zip(readable, lines, strict=True)) if len(lines) == len(readable) else {}


def choose_zones(names: dict[int, str], temps: dict[int, float | None]) -> tuple[list[Zone], list[str], list[str]]:
    """(zones to read, pseudo names excluded, names of no role) from {N: type} and {N: C} of one probe.

    Zones whose temperature did not read or is implausible are dropped (disabled sensors read -EINVAL or 0)."""
    zones, excluded, unmapped, proxies = [], [], [], []
    for index in sorted(names):
        name = names[index]
        if is_pseudo(name):
            excluded.append(name)
            continue
        role = zone_role(name)
        if temps.get(index) is None:
            continue
        if role is not None:
            zones.append(Zone(index, name, role))
        elif skin_proxy_rank(name) is not None:
            proxies.append(Zone(index, name, Role.SKIN))
        else:
            unmapped.append(name)
    if proxies and not any(z.role is Role.SKIN for z in zones):
        best = min(skin_proxy_rank(z.name) for z in proxies)
        zones += [z for z in proxies if skin_proxy_rank(z.name) == best]
        unmapped += [z.name for z in proxies if skin_proxy_rank(z.name) != best]
    else:
        unmapped += [z.name for z in proxies]
    return sorted(zones, key=lambda z: z.index), excluded, unmapped


def list_zone_indices(device: Device) -> list[int]:
    """N of every /sys/class/thermal/thermal_zoneN (empty when the directory is absent or unreadable)."""
    with device.sync() as sync:
        names = [name for name, _ in sync.list(ZONES_DIR)]
    return sorted(int(n[len("thermal_zone"):]) for n in names
                  if n.startswith("thermal_zone") and n[len("thermal_zone"):].isdigit())


def probe_source(device: Device) -> ThermalSource:
    """Choose the device's thermal source: one directory listing, then one shell round trip that reads the HAL's
    sensors, every zone's type and temperature, and the battery temperature file."""
    indices = list_zone_indices(device)
    type_files = [f"{ZONES_DIR}/thermal_zone{k}/type" for k in indices]
    temp_files = [f"{ZONES_DIR}/thermal_zone{k}/temp" for k in indices]
    commands = [["dumpsys", "thermalservice"], ["echo", SECTION], ["cat", *type_files], ["echo", SECTION],
                ["cat", *temp_files, BATTERY_TEMP_FILE]]
    result = device.script(commands, timeout_s=30.0)
    parts = (result.stdout.split(SECTION + "\n") + ["", "", ""])[:3]
    sensors = parse_thermalservice(parts[0]).sensors
    types = read_cat(parts[1], result.stderr, type_files)
    values = read_cat(parts[2], result.stderr, [*temp_files, BATTERY_TEMP_FILE])
    battery_file = BATTERY_TEMP_FILE if battery_tenths(values.get(BATTERY_TEMP_FILE, "")) is not None else None
    names = {k: types[f] for k, f in zip(indices, type_files, strict=True) if f in types}
    temps = {k: zone_celsius(values.get(f, "")) for k, f in zip(indices, temp_files, strict=True)}
    zones, excluded, unmapped = choose_zones(names, temps)
    hal = tuple((s.name, HAL_ROLES[s.type]) for s in sensors if s.type in HAL_ROLES)
    if hal:
        return ThermalSource(SourceKind.HAL, (), hal, battery_file, tuple(excluded), tuple(unmapped))
    kind = SourceKind.ZONES if zones else SourceKind.NONE
    return ThermalSource(kind, tuple(zones), (), battery_file, tuple(excluded), tuple(unmapped))


def sample_role(sample: dict[str, Any], role: Role) -> float | None:
    """A telemetry sample's reading for `role`: its `roles`, or for a RUN.json from before them (no `roles`)
    the HAL sensors of the role's type (battery: the battery service)."""
    if "roles" in sample:
        return sample["roles"].get(role.value)
    if role is Role.BATTERY and sample.get("battery_c") is not None:
        return sample["battery_c"]
    values = [s["value_c"] for s in sample.get("sensors", []) if HAL_ROLES.get(s["type"]) is role]
    return max(values) if values else None

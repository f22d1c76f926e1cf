"""The simulated phone's `/sys/class/thermal` zones and battery temperature file, laid out like a Qualcomm phone's.

Every zone reads the lumped thermal model (`thermal.py`) at the moment it is read, in millidegrees like the kernel:
per core `cpu-K-J-usr` (TSENS sensors, cluster K, core J) and per cluster `cpuss-K` from the die node (bigger
clusters hotter, as the HAL's CPU sensors), `gpuss-0/1`, `nspss-0` (the NPU), `ddr`, the board thermistors
`xo-therm` (by the SoC: between die and body) and `quiet-therm`, `skin-therm` (the body node, the HAL's skin
sensor), `battery` and the PMIC's `pm7250b-tz`. Then what real phones also list and a harness must not read as
temperatures: the battery current limiter's `vbat` (mV), `ibat` (mA), `soc` (state of charge, %) and
`pm7250b-bcl-lvl0` (a trip level), and the kernel's aggregate `cpu-virt-max`. Zone numbers follow no role order,
as on a phone. `/sys/class/power_supply/battery/temp` gives the battery in tenths of a degree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from device_tests.sim.device import SimDevice

ZONES_DIR = "/sys/class/thermal"
BATTERY_TEMP_FILE = "/sys/class/power_supply/battery/temp"


def zone_table(device: SimDevice) -> list[tuple[str, Callable[[], int]]]:
    """(type, reading in the zone's unit) of every simulated zone, in thermal_zoneN order."""
    thermal = device.thermal

    def die(offset: float) -> Callable[[], int]:
        return lambda: round((thermal.state().die_c + offset) * 1000)

    def xo() -> int:
        st = thermal.state()
        return round((st.skin_c + 0.3 * (st.die_c - st.skin_c)) * 1000)

    zones: list[tuple[str, Callable[[], int]]] = [
        ("aoss-0", die(-1.0)),
        ("cpu-virt-max", die(1.5 * (len(device.profile.clusters) - 1) + 0.3)),  # max of the CPU zones
    ]
    for k, cluster in enumerate(device.profile.clusters):
        for j in range(cluster.cpus):
            zones.append((f"cpu-{k}-{j}-usr", die(1.5 * k + 0.3 * (j % 2))))
        zones.append((f"cpuss-{k}", die(1.5 * k - 0.5)))
    zones += [
        ("gpuss-0", die(-2.0)), ("gpuss-1", die(-2.3)), ("nspss-0", die(-4.0)), ("ddr", die(-3.0)),
        ("xo-therm", xo), ("quiet-therm", lambda: round((thermal.state().skin_c - 0.5) * 1000)),
        ("skin-therm", lambda: round(thermal.state().skin_c * 1000)),
        ("battery", lambda: round(thermal.state().battery_c * 1000)),
        ("pm7250b-tz", die(-6.0)),
        ("vbat", lambda: 4213), ("ibat", lambda: 850), ("soc", lambda: 87), ("pm7250b-bcl-lvl0", lambda: 0),
    ]
    return zones


def layout_thermal(device: SimDevice) -> None:
    """Generate the zone files (`type`, `temp`) and the battery temperature file on the device's filesystem."""
    for k, (name, read) in enumerate(zone_table(device)):
        device.fs.generate(f"{ZONES_DIR}/thermal_zone{k}/type", lambda name=name: f"{name}\n".encode())
        device.fs.generate(f"{ZONES_DIR}/thermal_zone{k}/temp", lambda read=read: f"{read()}\n".encode())
    device.fs.generate(BATTERY_TEMP_FILE, lambda: f"{round(device.thermal.state().battery_c * 10)}\n".encode())

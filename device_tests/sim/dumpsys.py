"""`dumpsys thermalservice | battery | meminfo <pkg> | package <pkg>` in the formats Android prints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from device_tests.sim.quirks import Quirk
from device_tests.sim.thermal import severity

if TYPE_CHECKING:
    from device_tests.sim.device import SimDevice

# Temperature.TYPE_* of android.os.Temperature
TYPE_CPU, TYPE_GPU, TYPE_BATTERY, TYPE_SKIN, TYPE_NPU = 0, 1, 2, 3, 9


def sensors(device: SimDevice) -> list[tuple[str, int, float, int]]:
    """(name, type, value C, status) of every simulated temperature sensor."""
    st = device.thermal.state()
    p = device.profile.thermal
    skin_t = p.skin_thresholds_c
    die_t = tuple(x + p.die_offset_c for x in skin_t)
    battery_t = tuple(x + 3.0 for x in skin_t)
    out = []
    for k, cluster in enumerate(device.profile.clusters):
        value = st.die_c + 1.5 * k  # bigger clusters run hotter
        out.append((f"CPU{cluster.policy}", TYPE_CPU, value, severity(value, die_t)))
    out.append(("GPU", TYPE_GPU, st.die_c - 2.0, severity(st.die_c - 2.0, die_t)))
    out.append(("NPU", TYPE_NPU, st.die_c - 4.0, severity(st.die_c - 4.0, die_t)))
    out.append(("battery", TYPE_BATTERY, st.battery_c, severity(st.battery_c, battery_t)))
    out.append(("skin", TYPE_SKIN, st.skin_c, severity(st.skin_c, skin_t)))
    return out


def _temperature(name: str, kind: int, value: float, status: int) -> str:
    return f"Temperature{{mValue={value:.1f}, mType={kind}, mName={name}, mStatus={status}}}"


def thermalservice(device: SimDevice) -> str:
    """What ThermalManagerService dumps; with Quirk.NO_THERMAL_HAL what it dumps when no HAL connected: no
    temperatures, `HAL Ready: false`, the status never raised (NONE)."""
    if Quirk.NO_THERMAL_HAL in device.quirks:
        return "\n".join([
            "IsStatusOverride: false", "ThermalEventListeners:", "\tcallbacks: 1", "\tkilled: false",
            "\tbroadcasts count: -1", "ThermalStatusListeners:", "\tcallbacks: 1", "\tkilled: false",
            "\tbroadcasts count: -1", "Thermal Status: 0", "Cached temperatures:", "HAL Ready: false"]) + "\n"
    rows = sensors(device)
    status = device.thermal.state().status
    lines = [
        "IsStatusOverride: false",
        "ThermalEventListeners:",
        "\tcallbacks: 1", "\tkilled: false", "\tbroadcasts count: -1",
        "ThermalStatusListeners:",
        "\tcallbacks: 1", "\tkilled: false", "\tbroadcasts count: -1",
        f"Thermal Status: {status}",
        "Cached temperatures:",
        *(f"\t{_temperature(*row)}" for row in rows),
        "HAL Ready: true",
        "HAL connection:",
        "\tThermalHAL 2.0 connected: yes",
        "Current temperatures from HAL:",
        *(f"\t{_temperature(*row)}" for row in rows),
        "Current cooling devices from HAL:",
        *(f"\tCoolingDevice{{mValue={device.profile.thermal.throttle.index(device.thermal.state().freq_cap)}, "
          f"mType=2, mName=cpufreq-policy{c.policy}}}" for c in device.profile.clusters),
    ]
    return "\n".join(lines) + "\n"


def battery(device: SimDevice) -> str:
    tenths = int(round(device.thermal.state().battery_c * 10))
    fast = device.profile.thermal.charging_w > 0  # on a wall charger, not the host's USB port
    return (
        "Current Battery Service state:\n"
        f"  AC powered: {str(fast).lower()}\n  USB powered: {str(not fast).lower()}\n"
        "  Wireless powered: false\n  Dock powered: false\n"
        f"  Max charging current: {3000000 if fast else 500000}\n  Max charging voltage: "
        f"{9000000 if fast else 5000000}\n  Charge counter: 3456789\n"
        "  status: 2\n  health: 2\n  present: true\n  level: 87\n  scale: 100\n  voltage: 4213\n"
        f"  temperature: {tenths}\n  technology: Li-ion\n"
    )


def process_memory_kb() -> tuple[int, int]:
    """(PSS, RSS) in KiB of this process: the simulated app is this process."""
    pss = rss = 0
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def meminfo(device: SimDevice, package: str) -> str:
    pid = device.pid_of(package)
    if not pid:
        return f"No process found for: {package}\n"
    pss, rss = process_memory_kb()
    native = pss * 7 // 10
    java = pss // 20
    other = pss - native - java
    uptime = int(time.monotonic() * 1000)
    return (
        "Applications Memory Usage (in Kilobytes):\n"
        f"Uptime: {uptime} Realtime: {uptime}\n\n"
        f"** MEMINFO in pid {pid} [{package}] **\n"
        "                   Pss  Private  Private  SwapPss      Rss     Heap     Heap     Heap\n"
        "                 Total    Dirty    Clean    Dirty    Total     Size    Alloc     Free\n"
        "                ------   ------   ------   ------   ------   ------   ------   ------\n"
        f"  Native Heap {native:>8} {native:>8} {0:>8} {0:>8} {native:>8} {native:>8} {native:>8} {0:>8}\n"
        f"  Dalvik Heap {java:>8} {java:>8} {0:>8} {0:>8} {java:>8} {java:>8} {java:>8} {0:>8}\n"
        f"        Other {other:>8} {other:>8} {0:>8} {0:>8} {rss - native - java:>8}\n"
        f"        TOTAL {pss:>8} {pss:>8} {0:>8} {0:>8} {rss:>8} {native + java:>8} {native + java:>8} {0:>8}\n\n"
        " App Summary\n"
        "                       Pss(KB)                        Rss(KB)\n"
        "                        ------                         ------\n"
        f"           Java Heap: {java:>8}                       {java:>8}\n"
        f"         Native Heap: {native:>8}                       {native:>8}\n"
        f"               TOTAL PSS: {pss:>8}            TOTAL RSS: {rss:>8}       TOTAL SWAP PSS: {0:>8}\n"
    )


def package(device: SimDevice, name: str) -> str:
    if not device.app_installed or name != device.app_package:
        return f"Unable to find package: {name}\n"
    return (
        "Packages:\n"
        f"  Package [{name}] (7a3c1e2):\n"
        "    versionCode=1 minSdk=26 targetSdk=34\n"
        "    versionName=0.1.0\n"
        f"    primaryCpuAbi={device.profile.abi}\n"
    )

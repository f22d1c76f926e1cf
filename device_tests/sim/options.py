"""What a simulated device is started with, and the loopback ports it may take.

The harness side of the simulator: `device_tests.sim.launcher` and `banana sim start` start it as a process
from these options; everything else reaches it through adb only.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace

from device_tests.errors import SimulatorError
from device_tests.sim.profiles import DeviceProfile, get_profile, with_abi
from device_tests.sim.quirks import Quirk


@dataclass(frozen=True)
class SimOptions:
    profile: str = "midrange"  # key of PROFILES
    app_installed: bool = True  # False: the sample app is missing
    abi: str | None = None  # override the profile's primary ABI (wrong-ABI phones)
    storage_mb: float | None = None  # override the free storage (storage-full tests)
    thermal_speedup: float = 1.0  # thermal seconds per real second
    start_temp_c: float | None = None  # initial temperature of every node (default: ambient)
    write_mb_per_s: float | None = None  # limit on how fast pushed files are written (a slow USB link)
    quirks: frozenset[Quirk] = frozenset()  # device-variety behaviours (device_tests.sim.quirks)
    charging_w: float = 0.0  # heat of charging the battery in W (0: on USB, not charging fast); a phone on a
    # ^ fast charger stays warm whatever the app does, so a hot start does not cool off while a bundle is pushed

    def resolve(self) -> DeviceProfile:
        profile = with_abi(get_profile(self.profile), self.abi)
        if self.storage_mb is not None:
            profile = replace(profile, storage_mb=self.storage_mb)
        if self.charging_w < 0:
            raise SimulatorError(f"charging heat must be >= 0 W, got {self.charging_w}")
        if self.charging_w:
            profile = replace(profile, thermal=replace(profile.thermal, charging_w=self.charging_w))
        return profile


EMULATOR_PORTS = range(5555, 5586, 2)  # adb ports adb polls for emulators


def serial_for(port: int, host: str = "127.0.0.1") -> str:
    """The serial adb gives a device on `port`."""
    return f"emulator-{port - 1}" if port in EMULATOR_PORTS else f"{host}:{port}"


def port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(emulator: bool = False) -> int:
    """A free loopback port: an emulator port (with its console port free too) or any port."""
    if emulator:
        for port in EMULATOR_PORTS:
            if port_free(port) and port_free(port - 1):
                return port
        raise SimulatorError("all emulator ports 5555-5585 are taken; pass another --port (then `adb connect`)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

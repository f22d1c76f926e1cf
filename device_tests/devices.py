"""Which devices are attached, what they are, and which ones a command should use."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from device_tests.adb import Adb, Device, ShellResult, is_network_serial
from device_tests.contract import PACKAGE
from device_tests.errors import AppNotInstalled, DeviceCommandError, NoDevice, WrongAbi
from device_tests.parsers import parse_getprop, parse_meminfo_total_kb, parse_packages

APP_ABIS = ("arm64-v8a", "x86_64")  # ABIs the sample app ships native LiteRT libraries for


@dataclass(frozen=True)
class DeviceInfo:
    serial: str  # adb serial
    state: str  # adb state: device, offline, unauthorized, ...
    manufacturer: str = ""  # ro.product.manufacturer
    brand: str = ""  # ro.product.brand
    model: str = ""  # ro.product.model
    soc: str = ""  # SoC maker and model (ro.soc.*), else the board platform
    abi: str = ""  # primary ABI (ro.product.cpu.abi)
    abilist: tuple[str, ...] = ()  # every ABI the device runs
    sdk: int | None = None  # Android API level
    release: str = ""  # Android version
    ram_mb: int | None = None  # MemTotal
    app_installed: bool = False  # com.banana.sdk.app present
    simulated: bool = False  # a Banana-SDK simulated device (ro.banana.simulated=1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "abilist": list(self.abilist)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceInfo:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**fields, "abilist": tuple(fields.get("abilist", ()))})

    def executorch_device_info(self) -> dict[str, Any]:
        """ExecuTorch benchmark `deviceInfo` (device = brand, arch = model, os, totalMem)."""
        return {"device": self.brand, "arch": self.model, "os": f"Android {self.release}",
                "totalMem": (self.ram_mb or 0) * 1024 * 1024, "availMem": None, "soc": self.soc,
                "abi": self.abi, "serial": self.serial, "simulated": self.simulated}


def describe(device: Device, state: str = "device") -> DeviceInfo:
    """Query one device (one shell round trip: getprop, /proc/meminfo, pm list packages); DeviceCommandError
    naming the command, its exit status and what to do when getprop or pm fails."""
    props_out, meminfo_out, packages_out = device.batch([["getprop"], ["cat", "/proc/meminfo"],
                                                         ["pm", "list", "packages", PACKAGE]])
    props = parse_getprop(props_out.stdout)
    if props_out.returncode == 127:
        raise DeviceCommandError(_failed(device, props_out, "this build has no getprop, which the harness needs to "
                                         "tell the device's model and ABI; use a device with a standard Android "
                                         f"shell, or check `adb -s {device.serial} shell which getprop`"))
    if props_out.returncode != 0 or not props:
        raise DeviceCommandError(_failed(device, props_out, "the device's property service is not answering; "
                                         f"reboot it or check `adb -s {device.serial} shell getprop`"))
    if packages_out.returncode != 0:
        raise DeviceCommandError(_failed(device, packages_out, "the package manager is not answering (still "
                                         f"booting?); wait until `adb -s {device.serial} shell getprop "
                                         "sys.boot_completed` prints 1, or reboot the device"))
    total_kb = parse_meminfo_total_kb(meminfo_out.stdout) if meminfo_out.returncode == 0 else None
    packages = parse_packages(packages_out.stdout)
    soc = " ".join(x for x in (props.get("ro.soc.manufacturer", ""), props.get("ro.soc.model", "")) if x)
    sdk = props.get("ro.build.version.sdk", "")
    return DeviceInfo(
        serial=device.serial, state=state, manufacturer=props.get("ro.product.manufacturer", ""),
        brand=props.get("ro.product.brand", ""), model=props.get("ro.product.model", ""),
        soc=soc or props.get("ro.board.platform", "") or props.get("ro.hardware", ""),
        abi=props.get("ro.product.cpu.abi", ""),
        abilist=tuple(a for a in props.get("ro.product.cpu.abilist", props.get("ro.product.cpu.abi", "")).split(",")
                      if a),
        sdk=int(sdk) if sdk.isdigit() else None, release=props.get("ro.build.version.release", ""),
        ram_mb=total_kb // 1024 if total_kb else None, app_installed=PACKAGE in packages,
        simulated=props.get("ro.banana.simulated") == "1",
    )


def _failed(device: Device, result: ShellResult, todo: str) -> str:
    """`<command>` failed on SERIAL (exit N: last line of its output): what to do."""
    what = "printed no properties" if result.returncode == 0 else f"exit {result.returncode}"
    return f"`{' '.join(result.argv)}` failed on {device.serial} ({what}: {result.summary()}); {todo}"


def list_devices(adb: Adb) -> list[DeviceInfo]:
    """Every attached device; ones not in state `device` are listed with their state only."""
    out = []
    for serial, state in sorted(adb.devices().items()):
        out.append(describe(adb.device(serial), state) if state == "device" else DeviceInfo(serial, state))
    return out


def resolve_serials(adb: Adb, serial: str | None) -> list[str]:
    """Serials to use: `--serial S[,S2]`, `all`, else ANDROID_SERIAL, else the only attached device."""
    serial = serial or os.environ.get("ANDROID_SERIAL") or None
    attached = adb.devices()
    ready = sorted(s for s, state in attached.items() if state == "device")
    hint = "plug one in with USB debugging on, `adb connect HOST:PORT`, or start one with `banana sim start`"
    if serial is None or serial == "all":
        if not ready:
            raise NoDevice(f"no device attached; {hint}")
        if serial is None and len(ready) > 1:
            raise NoDevice(f"{len(ready)} devices attached ({', '.join(ready)}); pick one with --serial "
                           "(or ANDROID_SERIAL), or use --serial all")
        return ready
    wanted = [s.strip() for s in serial.split(",") if s.strip()]
    for name in wanted:
        if attached.get(name) != "device" and is_network_serial(name):
            adb.connect(name)
            adb.wait_for(name, 5.0)
            attached = adb.devices()
        state = attached.get(name)
        if state != "device":
            where = f"it is {state}" if state else "it is not attached"
            raise NoDevice(f"device {name!r}: {where} (ready: {', '.join(ready) or 'none'}); {hint}")
    return list(dict.fromkeys(wanted))


def check_runnable(info: DeviceInfo, need_app: bool = True) -> None:
    """Raise WrongAbi / AppNotInstalled when the sample app cannot run on this device."""
    if not any(abi in APP_ABIS for abi in info.abilist or (info.abi,)):
        raise WrongAbi(f"{info.serial} ({info.model or 'unknown model'}) runs {info.abi or 'an unknown ABI'} "
                       f"(abilist {','.join(info.abilist) or '?'}); the sample app and LiteRT runtime need one of "
                       f"{', '.join(APP_ABIS)}")
    if need_app and not info.app_installed:
        raise AppNotInstalled(f"{PACKAGE} is not installed on {info.serial}; build and install the sample app "
                              "(android_app/, `adb install app-release.apk`) or pass --benchmark-model PATH to use "
                              "LiteRT's benchmark_model binary instead")

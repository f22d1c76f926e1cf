"""Thermals from whatever the phone has (issue 22, part 2): the thermal HAL's sensors, else the sysfs zones mapped
to skin/CPU/GPU/battery by name with pseudo-sensors kept out; the cool-down gate, the statistics and the report's
chart all read the same roles and say which source gave them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from device_fixtures import adb, adb_server, sims  # noqa: F401

from device_tests.cooldown import cool_down
from device_tests.parsers import Sensor
from device_tests.profile import ProfileSettings, profile
from device_tests.report import write_report
from device_tests.sim.quirks import Quirk
from device_tests.telemetry import read_sample, tick_commands
from device_tests.thermal_source import (
    Role,
    SourceKind,
    ThermalSource,
    Zone,
    choose_zones,
    is_pseudo,
    probe_source,
    read_cat,
    sample_role,
    zone_celsius,
    zone_role,
)

NO_HAL = frozenset({Quirk.NO_THERMAL_HAL})

# zone types seen on real phones (Qualcomm SM8x50 / SM7x50, older MSM, MediaTek, Exynos/Tensor, generic DT)
REAL_NAMES = {
    "skin-therm": Role.SKIN, "skin_therm": Role.SKIN, "skin-msm-therm": Role.SKIN,
    "cpu-0-0-usr": Role.CPU, "cpu-1-3-usr": Role.CPU, "cpuss-0": Role.CPU, "cpu0-thermal": Role.CPU,
    "cpu-thermal": Role.CPU, "mtktscpu": Role.CPU, "apc1-cpu0-usr": Role.CPU, "BIG": Role.CPU, "LITTLE": Role.CPU,
    "gpuss-0": Role.GPU, "gpu-thermal": Role.GPU, "gpu0-usr": Role.GPU, "G3D": Role.GPU,
    "battery": Role.BATTERY, "bms": Role.BATTERY, "batt_therm": Role.BATTERY, "mtktsbattery": Role.BATTERY,
    "xo-therm": None, "quiet-therm": None, "pa-therm0": None, "pm8350b-tz": None, "ddr": None, "nspss-0": None,
    "aoss-0": None, "modem-lte-sub6-pa1": None, "tsens_tz_sensor5": None, "usb": None,
}
PSEUDO_NAMES = ("vbat", "ibat", "soc", "vph_pwr", "pm8350b-bcl-lvl0", "virtual-skin", "cpu-virt-max", "gpu-virt-max")


def test_zone_names_map_to_roles() -> None:
    for name, role in REAL_NAMES.items():
        assert zone_role(name) is role, name
    for name in PSEUDO_NAMES:
        assert is_pseudo(name) and zone_role(name) is None, name
    assert not any(is_pseudo(n) for n in REAL_NAMES)


def test_zone_units_and_implausible_readings() -> None:
    assert zone_celsius("41250\n") == 41.25  # millidegrees, the kernel's unit
    assert zone_celsius("309") == 30.9  # tenths: old MSM tsens drivers
    assert zone_celsius("31") == 31.0  # whole degrees
    assert zone_celsius("-5000") == -5.0
    assert zone_celsius("4213000") is None and zone_celsius("") is None and zone_celsius("N/A") is None
    assert zone_celsius("4213") == pytest.approx(4.213)  # why vbat (mV) must be kept out by name, not by value


def test_choose_zones_keeps_roles_drops_pseudo_and_dead_zones() -> None:
    names = {0: "aoss-0", 1: "cpu-0-0-usr", 2: "cpu-virt-max", 3: "gpuss-0", 4: "skin-therm", 5: "xo-therm",
             6: "battery", 7: "vbat", 8: "soc", 9: "cpu-1-0-usr"}
    temps = {0: 30.0, 1: 45.0, 2: 47.0, 3: 40.0, 4: 33.0, 5: 36.0, 6: 29.0, 7: 4.2, 8: 87.0, 9: None}
    zones, excluded, unmapped = choose_zones(names, temps)
    assert [(z.name, z.role) for z in zones] == [("cpu-0-0-usr", Role.CPU), ("gpuss-0", Role.GPU),
                                                 ("skin-therm", Role.SKIN), ("battery", Role.BATTERY)]
    assert excluded == ["cpu-virt-max", "vbat", "soc"] and unmapped == ["aoss-0", "xo-therm"]  # zone 9 read nothing
    # no skin zone: the coolest-placed board thermistor stands in (quiet before xo)
    zones, _, unmapped = choose_zones({0: "xo-therm", 1: "quiet-therm", 2: "cpuss-0"}, {0: 40.0, 1: 35.0, 2: 50.0})
    assert [(z.name, z.role) for z in zones] == [("quiet-therm", Role.SKIN), ("cpuss-0", Role.CPU)]
    assert unmapped == ["xo-therm"]


def test_roles_from_hal_sensors_and_from_zones() -> None:
    hal = ThermalSource(SourceKind.HAL, hal_sensors=(("AP", Role.CPU), ("LRB", Role.SKIN)))
    sensors = [Sensor("AP", 0, 52.0, 1), Sensor("LRB", 3, 36.5, 0), Sensor("LRF", 3, 37.0, 0),
               Sensor("SUBBAT", 2, 0.0, 0), Sensor("BAT", 2, 31.0, 0), Sensor("PA", 5, 60.0, 0)]
    assert hal.roles(sensors, {}, 30.0) == {"skin": 37.0, "cpu": 52.0, "gpu": None, "battery": 31.0}
    zones = ThermalSource(SourceKind.ZONES, zones=(Zone(3, "skin-therm", Role.SKIN), Zone(5, "cpuss-0", Role.CPU)))
    zone_c = {"/sys/class/thermal/thermal_zone3/temp": 41.0, "/sys/class/thermal/thermal_zone5/temp": 60.0}
    assert zones.roles([], zone_c, 31.0) == {"skin": 41.0, "cpu": 60.0, "gpu": None, "battery": 31.0}
    assert zones.describe() == "sysfs zones (skin: skin-therm; CPU: cpuss-0; battery: battery service)"
    old = {"sensors": [{"name": "skin", "type": 3, "value_c": 33.0, "status": 0}], "battery_c": 30.0}
    assert sample_role(old, Role.SKIN) == 33.0 and sample_role(old, Role.BATTERY) == 30.0  # a RUN.json of before


def test_read_cat_leaves_out_unreadable_files() -> None:
    paths = ["/a/temp", "/b/temp", "/c/temp"]
    assert read_cat("1\n3\n", "cat: /b/temp: Invalid argument\n", paths) == {"/a/temp": "1", "/c/temp": "3"}
    assert read_cat("1\ncat: /b/temp: Invalid argument\n3\n", "", paths) == {"/a/temp": "1", "/c/temp": "3"}
    assert read_cat("1\n3\n", "", paths) == {}  # a line is missing and nothing says which: nothing is guessed


def test_one_round_trip_per_tick_reads_only_what_the_source_needs() -> None:
    zones = ThermalSource(SourceKind.ZONES, zones=(Zone(3, "skin-therm", Role.SKIN),),
                          battery_file="/sys/class/power_supply/battery/temp")
    commands, sections = tick_commands(zones, with_pss=False)
    assert sections == ["files", "thermal"]
    assert commands[0] == ["cat", "/sys/class/thermal/thermal_zone3/temp", "/sys/class/power_supply/battery/temp"]
    hal = ThermalSource(SourceKind.HAL, hal_sensors=(("skin", Role.SKIN),))
    assert tick_commands(hal, "p", with_pss=True)[1] == ["thermal", "battery", "meminfo"]


def test_sim_without_hal_reads_the_zones(adb, sims) -> None:  # noqa: ANN001, F811
    sim = sims("midrange", quirks=NO_HAL)
    device = adb.device(sim.serial)
    source = probe_source(device)
    assert source.kind is SourceKind.ZONES and source.hal_sensors == ()
    inputs = source.inputs()
    assert inputs["skin"] == ["skin-therm"] and inputs["battery"] == ["battery"]
    assert "cpu-1-1-usr" in inputs["cpu"] and inputs["gpu"] == ["gpuss-0", "gpuss-1"]
    assert {"vbat", "ibat", "soc", "cpu-virt-max", "pm7250b-bcl-lvl0"} <= set(source.excluded)
    assert source.battery_file == "/sys/class/power_supply/battery/temp"
    sample = read_sample(device, source, 0.0)
    assert sample.sensors == [] and sample.thermal_status == 0
    assert sample.roles["skin"] == pytest.approx(sample.zones["skin-therm"]) and sample.battery_c is not None
    assert sample.roles["cpu"] == max(v for k, v in sample.zones.items() if k.startswith("cpu"))
    hal = probe_source(adb.device(sims("midrange").serial))
    assert hal.kind is SourceKind.HAL and hal.zones == () and hal.inputs()["skin"] == ["skin"]


def _heat(adb, serial: str, bundle: Path, tmp: Path) -> None:  # noqa: ANN001, F811
    """Run the app long enough that the body (skin) runs ahead of the battery, which lags it."""
    settings = ProfileSettings(runs=150, warmup=0, steps=1, cooldown_c=None, telemetry_interval_s=None, threads=2)
    profile(bundle, tmp / "heat.json", serial, settings, adb=adb)


def test_gate_waits_on_the_skin_zone_without_a_hal(adb, sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("midrange", quirks=NO_HAL, thermal_speedup=40.0, start_temp_c=30.0)
    device = adb.device(sim.serial)
    source = probe_source(device)
    _heat(adb, sim.serial, tiny_bundle, tmp_path)
    hot = read_sample(device, source, 0.0, with_pss=False)
    skin, battery = hot.roles["skin"], hot.roles["battery"]
    assert skin > battery + 1.0, hot  # hot on the skin, cool on the battery
    threshold = (skin + battery) / 2  # measured: skin 33.2 C, battery 30.7 C after the heating
    gate = cool_down(device, threshold, timeout_s=60.0, poll_s=0.2, source=source)
    assert gate.source == "sysfs zones"
    assert gate.start_c > threshold and gate.waited_s > 0.0  # the battery alone would have passed at once
    assert gate.reached and gate.end_c <= threshold and "(sysfs zones)" in gate.message


def test_report_plots_the_skin_zone_and_names_the_source(adb, sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("midrange", quirks=NO_HAL, thermal_speedup=20.0)
    # launches for 3 s, so the 1 Hz sampler ticks several times however fast this host runs the tiny model
    settings = ProfileSettings(runs=20, warmup=1, steps=1, sustained_s=3.0, cooldown_c=45.0, threads=2)
    profile(tiny_bundle, tmp_path / "RUN.json", sim.serial, settings, adb=adb)
    d = json.loads((tmp_path / "RUN.json").read_text())["devices"][0]
    assert d["thermal_source"]["kind"] == "sysfs zones"
    assert d["cooldown"][0]["source"] == "sysfs zones" and d["cooldown"][0]["hottest"] in ("skin", "battery")
    skins = [t["roles"]["skin"] for t in d["telemetry"]]
    assert len(skins) >= 2 and all(s is not None for s in skins)
    assert d["stats"]["max_skin_c"] == max(skins) and skins[-1] > skins[0]  # the skin zone heated
    assert all(t["sensors"] == [] and "skin-therm" in t["zones"] for t in d["telemetry"])
    html = write_report([tmp_path / "RUN.json"], tmp_path / "report.html").read_text()
    assert "skin (°C, sysfs zones)" in html and "against temperature from the sysfs zones" in html
    assert "Temperatures from the sysfs zones (skin: skin-therm;" in html and "vbat" in html


def test_with_the_hal_the_sensors_are_used_as_before(adb, sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("midrange", thermal_speedup=100.0, start_temp_c=50.0)  # 2.8 s (real) above 40 C: room for a slow push
    settings = ProfileSettings(runs=5, warmup=0, steps=1, cooldown_c=40.0, cooldown_timeout_s=60.0, threads=2)
    d = profile(tiny_bundle, tmp_path / "RUN.json", sim.serial, settings, adb=adb)["devices"][0]
    assert d["thermal_source"]["kind"] == "thermal HAL" and d["thermal_source"]["zones"] == []
    gate = d["cooldown"][0]
    assert gate["source"] == "thermal HAL" and gate["reached"] and gate["start_c"] > 40.0 >= gate["end_c"]
    sample = d["telemetry"][0]
    skin = max(s["value_c"] for s in sample["sensors"] if s["type"] == 3)
    assert sample["roles"]["skin"] == skin and sample["zones"] == {}
    assert d["stats"]["max_skin_c"] == max(max(s["value_c"] for s in t["sensors"] if s["type"] == 3)
                                           for t in d["telemetry"])
    html = write_report([tmp_path / "RUN.json"], tmp_path / "report.html").read_text()
    assert "skin (°C, thermal HAL)" in html and "Temperatures from the thermal HAL (skin: skin;" in html

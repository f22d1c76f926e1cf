"""`banana profile` / `banana report` on simulated devices: two devices in parallel, sustained mode with a
throttle onset, the cool-down gate, and LiteRT's benchmark_model binary."""

from __future__ import annotations

import json
import statistics
import struct
from pathlib import Path

import pytest
from cli_helpers import run_cli
from device_fixtures import adb, adb_server, sims  # noqa: F401

from device_tests.contract import Delegate
from device_tests.errors import DeviceError
from device_tests.journal import journal_path, read_journal
from device_tests.profile import ProfileSettings, profile
from device_tests.records import RECORD_KEYS
from device_tests.report import write_report
from device_tests.run_file import run_from_journal

SIGNATURES = ["denoise", "text_encoder", "vae_decode"]


def _check_stats(block: dict, n: int) -> None:
    assert block["n"] == n
    assert 0 < block["min"] <= block["median"] <= block["p90"] <= block["max"]
    assert block["min"] <= block["trimmed_mean"] <= block["max"]


def test_two_devices_in_parallel_then_report(sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    mid, flag = sims("midrange"), sims("flagship")
    out = tmp_path / "RUN.json"
    result = run_cli("profile", "--bundle", tiny_bundle, "--serial", f"{mid.serial},{flag.serial}", "--runs", "5",
                     "--warmup", "1", "--steps", "2", "--delegate", "gpu", "--no-cooldown", "-o", out)
    assert result.code == 0, result.err
    assert f"{mid.serial}: 5 runs" in result.out and "[simulated]" in result.out
    run = json.loads(out.read_text())
    assert run["format"] == "banana-profile-run" and run["complete"] and run["simulated"]
    assert run["settings"]["steps"] == 2 and run["bundle"]["model"] == "tiny"
    by_serial = {d["serial"]: d for d in run["devices"]}
    assert set(by_serial) == {mid.serial, flag.serial}
    for d in by_serial.values():
        assert d["complete"] and d["error"] is None and d["simulated"]
        assert len(d["runs"]) == 5 and len(d["warmup"]) == 1
        assert all(len(r["denoise_ms"]) == 2 for r in d["runs"])
        assert all(r["e2e_ms"] >= r["text_ms"] + sum(r["denoise_ms"]) + r["decode_ms"] * 0.99 for r in d["runs"])
        _check_stats(d["stats"]["e2e_ms"], 5)
        _check_stats(d["stats"]["denoise_step_ms"], 10)
        launch = d["launches"][0]
        assert sorted(launch["load_ms"]) == SIGNATURES and launch["first_image_ms"] > 0
        assert launch["delegate"]["requested"] == "gpu" and launch["delegate"]["used"] == "cpu"
        assert launch["delegate"]["fallback_reason"] == "the simulated device has no gpu delegate; ran on CPU (XNNPACK)"
        assert d["push"]["verified"] and d["telemetry"]
        sample = d["telemetry"][0]
        assert sample["thermal_status"] == 0 and {s["type"] for s in sample["sensors"]} >= {0, 2, 3}
        assert sample["battery_c"] is not None and sample["zones"] == {}  # the HAL's sensors: no zone read per tick
        assert sample["roles"]["skin"] == max(s["value_c"] for s in sample["sensors"] if s["type"] == 3)
        assert set(d["time_in_state"]["delta_s"]) == {f"policy{c}" for c in ((0, 6) if d is by_serial[mid.serial]
                                                                             else (0, 4, 7))}
        metrics = {r["metric"]: r for r in d["records"]}
        for name in ("model_load_time(ms)", "first_image_latency(ms)", "avg_inference_latency(ms)",
                     "e2e_latency_median(ms)", "e2e_latency_p90(ms)", "denoise_step_latency_median(ms)"):
            assert set(metrics[name]) == set(RECORD_KEYS), name
        rec = metrics["e2e_latency_median(ms)"]
        assert rec["actualValue"] == pytest.approx(d["stats"]["e2e_ms"]["median"])
        assert rec["benchmarkModel"] == {"name": "tiny", "backend": "litert-cpu", "quantization": "fp32"}
        assert rec["deviceInfo"]["simulated"] and rec["deviceInfo"]["os"].startswith("Android ")
    # the midrange profile runs at half the flagship's speed (fastest runs: least disturbed by the shared CPU)
    fastest = {s: d["stats"]["e2e_ms"]["min"] for s, d in by_serial.items()}
    assert fastest[mid.serial] > 1.25 * fastest[flag.serial]
    # both devices were measured at the same time
    events = read_journal(journal_path(out))
    spans = {s: (min(e["wall"] for e in events if e["serial"] == s and e["kind"] == "device"),
                 max(e["wall"] for e in events if e["serial"] == s and e["kind"] == "end")) for s in by_serial}
    (a0, a1), (b0, b1) = spans.values()
    assert a0 < b1 and b0 < a1
    assert len(run["records"]) == sum(len(d["records"]) for d in run["devices"])
    # the journal alone rebuilds the same run (what `banana report` does for a harness that died)
    rebuilt = {d["serial"]: d for d in run_from_journal(journal_path(out))["devices"]}
    for serial, d in by_serial.items():
        for key in ("runs", "warmup", "telemetry", "stats", "records", "push", "complete"):
            assert rebuilt[serial][key] == d[key], key

    html_path = tmp_path / "report.html"
    result = run_cli("report", out, "-o", html_path)
    assert result.code == 0, result.err
    html = html_path.read_text()
    assert html.count("SIMULATED DEVICE") >= 3 and html.count('class="badge">SIMULATED') == 2
    assert mid.serial in html and flag.serial in html and "Devices side by side" in html
    assert html.count("<svg") >= 3 and "Per-component latency" in html and "Latency over time" in html


def test_sustained_run_finds_the_throttle_onset(adb, sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    # thermal time runs 60x faster: 20 s here are 20 minutes of the phone's thermal life
    sim = sims("midrange", thermal_speedup=60.0, start_temp_c=33.0)
    settings = ProfileSettings(runs=30, warmup=1, sustained_s=20.0, cooldown_c=31.0, cooldown_timeout_s=30.0,
                               threads=2)
    run = profile(tiny_bundle, tmp_path / "SUST.json", sim.serial, settings, adb=adb)
    d = run["devices"][0]
    assert d["complete"] and len(d["launches"]) >= 3
    assert d["cooldown"][0]["reached"] and d["cooldown"][0]["end_c"] <= 31.0  # measured from a cool start
    last_end = d["launches"][-1]["finished_s"]
    assert last_end >= 20.0 - 0.1  # launches continued until the duration was up
    onset = d["sustained"]["throttle_onset"]
    assert onset is not None, d["sustained"]
    assert onset["thermal_status"] >= 1 and onset["rise_pct"] > 10.0 and 0 < onset["t_s"] < 20.0
    windows = d["sustained"]["windows"]
    first, last = windows["first"]["median"], windows["last"]["median"]
    # windows are a fifth of the measured span (first run's start to last run's end), at most the planned 4 s
    assert windows["window_s"] == pytest.approx(min(4.0, d["sustained"]["measured_s"] / 5), abs=1e-3)
    assert 3.5 <= windows["window_s"] <= 4.0 and d["sustained"]["duration_s"] == 20.0
    assert windows["change_pct"] == pytest.approx(100 * (last - first) / first)
    # runs made while the phone was throttling (status >= LIGHT) are slower than the others
    statuses = [(t["t"], t["thermal_status"]) for t in d["telemetry"]]

    def status_at(when: float) -> int:
        return [s for t, s in statuses if t <= when][-1] if statuses[0][0] <= when else statuses[0][1]

    hot = [r["e2e_ms"] for r in d["runs"] if status_at(r["t"]) >= 1]
    cool = [r["e2e_ms"] for r in d["runs"] if status_at(r["t"]) == 0]
    assert hot and cool and statistics.median(hot) > 1.1 * statistics.median(cool)
    assert d["stats"]["max_thermal_status"] >= 1 and d["stats"]["max_skin_c"] >= 39.0
    assert d["stats"]["peak_pss_mb"] > 10.0
    skins = [max(s["value_c"] for s in t["sensors"] if s["type"] == 3) for t in d["telemetry"]]
    assert skins[-1] > skins[0]  # the phone heated up
    assert len(d["telemetry"]) >= 15  # 1 Hz for 20 s
    # throttled clocks: the big cluster spent time below its top frequency while busy
    big = d["time_in_state"]["delta_s"]["policy6"]
    assert big["1800000"] + big["1200000"] > 0
    metrics = {r["metric"]: r["actualValue"] for r in d["records"]}
    assert metrics["throttle_onset(s)"] == pytest.approx(onset["t_s"])
    html = write_report([tmp_path / "SUST.json"], tmp_path / "sust.html").read_text()
    assert "throttle onset" in html and "(+" in html


def test_cooldown_gate_waits_and_says_when_it_gives_up(adb, sims, tiny_bundle: Path,  # noqa: ANN001, F811
                                                        tmp_path: Path) -> None:
    sim = sims("flagship", thermal_speedup=100.0, start_temp_c=50.0)  # 2.9 s (real) above 40 C: room for a slow push
    base = ProfileSettings(runs=2, warmup=0, steps=1, cooldown_c=40.0, cooldown_timeout_s=60.0)
    d = profile(tiny_bundle, tmp_path / "a.json", sim.serial, base, adb=adb)["devices"][0]
    gate = d["cooldown"][0]
    assert gate["reached"] and gate["waited_s"] >= 1.0
    assert gate["start_c"] > 40.0 >= gate["end_c"]
    assert d["complete"] and d["notes"] == []
    cold = ProfileSettings(runs=2, warmup=0, steps=1, cooldown_c=10.0, cooldown_timeout_s=2.0)  # below ambient
    d = profile(tiny_bundle, tmp_path / "b.json", sim.serial, cold, adb=adb)["devices"][0]
    gate = d["cooldown"][0]
    assert not gate["reached"] and 2.0 <= gate["waited_s"] < 5.0  # the timeout + one sample read; measured 2.02 s
    assert d["complete"] and len(d["runs"]) == 2  # measured anyway...
    assert any("cool-down timed out" in note for note in d["notes"])  # ...and said so
    assert d["push"]["pushed"] == []  # second profile of the same bundle: nothing to push


def _elf(machine: int) -> bytes:
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack("<HHI", 2, machine, 1)
    return header + bytes(64 - len(header))


def test_benchmark_model_binary(adb, sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("flagship", app_installed=False)  # benchmark_model needs no app
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(_elf(183))  # aarch64
    settings = ProfileSettings(runs=5, warmup=2, cooldown_c=None, benchmark_model=binary, threads=2)
    d = profile(tiny_bundle, tmp_path / "bm.json", sim.serial, settings, adb=adb)["devices"][0]
    assert d["complete"], d["error"]
    assert [b["graph_name"] for b in d["benchmark_model"]] == SIGNATURES
    for b in d["benchmark_model"]:
        assert b["init_us"] > 0 and b["first_us"] > 0 and b["inference_avg_us"] > 0 and b["peak_memory_mb"] > 0
        assert b["output_format"] == "current" and b["delegate"] == "TfLiteXNNPackDelegate"
        assert 0 < b["delegated_nodes"] <= b["total_nodes"] and b["partitions"] >= 1  # XNNPACK's real coverage
        assert b["fully_delegated"] == (b["delegated_nodes"] == b["total_nodes"])
    metrics = {r["metric"] for r in d["records"]}
    assert "benchmark_model_denoise_inference_avg(ms)" in metrics
    binary.write_bytes(_elf(62))  # x86_64: not for this phone
    with pytest.raises(DeviceError, match="x86_64 binary"):
        profile(tiny_bundle, tmp_path / "bm2.json", sim.serial, settings, adb=adb)
    assert json.loads((tmp_path / "bm2.json").read_text())["devices"][0]["error"].startswith(
        str(binary))


def test_settings_are_checked_before_any_device_work(tiny_bundle: Path, tmp_path: Path) -> None:
    from banana_sdk.errors import ConfigError

    for bad in (dict(runs=0), dict(threads=0), dict(warmup=-1), dict(sustained_s=-5.0),
                dict(telemetry_interval_s=0.01), dict(benchmark_model=tmp_path / "nope")):
        with pytest.raises(ConfigError):
            profile(tiny_bundle, tmp_path / "x.json", "none:1", ProfileSettings(**bad))
    assert not (tmp_path / "x.json").exists()
    assert ProfileSettings(delegate=Delegate.NPU).to_dict()["delegate"] == "npu"

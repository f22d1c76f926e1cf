"""Device harness pieces without adb: wire format, the simulated shell and filesystem, the thermal model,
the runner contract, parsers, statistics and the sustained-run analysis."""

from __future__ import annotations

import errno
import json
import random
import shlex
import struct
from pathlib import Path

import pytest

from device_tests.contract import (
    Delegate,
    RunRequest,
    am_start_argv,
    parse_am_args,
    result_path,
    validate_result,
)
from device_tests.errors import ContractError, SimulatorError
from device_tests.parsers import (
    parse_battery_temp,
    parse_benchmark_model,
    parse_getprop,
    parse_meminfo_pss_kb,
    parse_thermal_zones,
    parse_thermalservice,
    parse_time_in_state,
)
from device_tests.quoting import command_line
from device_tests.sim import dumpsys
from device_tests.sim.device import SimDevice
from device_tests.sim.fs import FsError, SimFS, normalize
from device_tests.sim.launcher import sim_command
from device_tests.sim.options import SimOptions
from device_tests.sim.profiles import get_profile
from device_tests.sim.protocol import A_CNXN, A_WRTE, HEADER, Message, ProtocolError, unpack_header
from device_tests.sim.shell_service import packet, parse_service
from device_tests.sim.thermal import ThermalModel
from device_tests.sim.thermal_zones import zone_table
from device_tests.stats import percentile, summarize, trimmed_mean
from device_tests.sustained import compare_windows, throttle_onset

NASTY = ["", " ", "a b", "it's", 'say "hi"', "$(touch /data/local/tmp/pwned)", "`touch /data/local/tmp/pwned`",
         "a;touch /data/local/tmp/pwned", "x && touch /data/local/tmp/pwned", "line1\nline2", "tab\there",
         "$HOME", "${PATH}", "*", "/data/*", "back\\slash", "|cat", "> /data/local/tmp/pwned", "#comment",
         "ünïcödé ✓", "-n", "--es", "'\"'\"'", "a'b\"c;$(x)\n`y`"]


@pytest.fixture
def device(tmp_path) -> SimDevice:  # noqa: ANN001
    return SimDevice(SimOptions("midrange"), tmp_path / "data", serial="BSIMTEST")


def run(device: SimDevice, line: str) -> tuple[int, str, str]:
    out, err = bytearray(), bytearray()
    status = device.run_shell(line, out.extend, err.extend)
    return status, out.decode(), err.decode()


def argv_seen(device: SimDevice, args: list[str]) -> list[str]:
    """What a program receives when the harness quotes `args` (one per line through a marker program)."""
    seen: list[list[str]] = []
    device.programs["probe"] = lambda proc: seen.append(proc.argv[1:]) or 0
    status, _, err = run(device, command_line(["probe", *args]))
    assert status == 0, err
    return seen[0]


# ---- wire format -------------------------------------------------------------------------------------

def test_message_header_is_six_le_words_with_byte_sum_and_magic() -> None:
    raw = Message(A_WRTE, 7, 9, b"\x01\x02\xff").pack()
    words = struct.unpack("<6I", raw[:24])
    assert words == (A_WRTE, 7, 9, 3, 0x102, A_WRTE ^ 0xFFFFFFFF)
    assert raw[24:] == b"\x01\x02\xff"
    assert unpack_header(raw[:24]) == (A_WRTE, 7, 9, 3, 0x102)
    bad = HEADER.pack(A_CNXN, 0, 0, 0, 0, 0)
    with pytest.raises(ProtocolError):
        unpack_header(bad)


def test_shell_v2_packets_and_service_names() -> None:
    assert packet(3, b"\x05") == b"\x03\x01\x00\x00\x00\x05"
    assert parse_service("shell,v2,raw:getprop ro.x") == (True, "getprop ro.x")
    assert parse_service("shell:ls") == (False, "ls")
    assert parse_service("exec:cat /x") == (False, "cat /x")
    assert parse_service("sync:") is None
    assert parse_service("shellfoo") is None


# ---- quoting and the simulated shell -----------------------------------------------------------------

def test_quoted_arguments_arrive_literally(device: SimDevice) -> None:
    assert argv_seen(device, NASTY) == NASTY
    assert device.fs.stat("/data/local/tmp/pwned") is None


def test_quoting_fuzz_random_strings(device: SimDevice) -> None:
    rng = random.Random(5)
    alphabet = "ab \t\n'\"$`\\;&|<>(){}*?[]#~!%^=,.:-_/\u00e9\u2713"
    for _ in range(300):
        args = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(rng.randint(1, 4))]
        assert argv_seen(device, args) == args
    assert device.fs.stat("/data/local/tmp/pwned") is None


def test_unquoted_metacharacters_really_run(device: SimDevice) -> None:
    """The simulated sh is a shell: without quoting, injection happens (so the quoting tests mean something)."""
    status, out, _ = run(device, "echo $(touch /data/local/tmp/pwned; echo ran) ; echo two && false || echo three")
    assert status == 0
    assert out == "ran\ntwo\nthree\n"
    assert device.fs.stat("/data/local/tmp/pwned") is not None
    assert run(device, "echo 'a  b' \"$USER\" x\\ y")[1] == "a  b shell x y\n"
    assert run(device, "V=' p  q '; echo [$V] \"[$V]\"")[1] == "[ p q ] [ p  q ]\n"
    device.fs.write_bytes("/data/local/tmp/g1.txt", b"1")
    device.fs.write_bytes("/data/local/tmp/g2.txt", b"2")
    assert run(device, "echo /data/local/tmp/g*.txt '/data/local/tmp/g*.txt'")[1] == \
        "/data/local/tmp/g1.txt /data/local/tmp/g2.txt /data/local/tmp/g*.txt\n"
    assert run(device, "cat /data/local/tmp/g1.txt /data/local/tmp/g2.txt | cat")[1] == "12"
    assert run(device, "exit 7")[0] == 7
    assert run(device, "nosuchprogram")[0] == 127
    status, _, err = run(device, "echo 'unterminated")
    assert status == 2 and "unterminated" in err


def test_contract_round_trip_through_the_shell(device: SimDevice) -> None:
    for prompt in NASTY:
        req = RunRequest(bundle="/data/local/tmp/banana/abc", prompt=prompt, steps=4, size=64, seed=-(2**63),
                         delegate=Delegate.GPU, threads=2, warmup=0, runs=3, run_id="r1-0", peels="/p/a.peel:0.5")
        args = argv_seen(device, am_start_argv(req))
        assert args[:5] == ["am", "start", "-W", "-n", "com.banana.sdk.app/.BenchmarkActivity"]
        parsed = parse_am_args(args[2:])
        assert parsed.wait and parsed.component == "com.banana.sdk.app/.BenchmarkActivity"
        assert RunRequest.from_extras(parsed.extras) == req


def test_contract_rejects_bad_requests_and_extras() -> None:
    base = dict(bundle="/b", prompt="p", steps=4, size=64, seed=0, delegate=Delegate.CPU, threads=1, warmup=0,
                runs=1, run_id="ok")
    for field, value in (("run_id", "../x"), ("run_id", "a/b"), ("steps", 0), ("bundle", "rel"),
                         ("seed", 2**63), ("prompt", "a\0b"), ("runs", True)):
        with pytest.raises(ContractError):
            RunRequest(**{**base, field: value})
    with pytest.raises(ContractError, match="Unknown option"):
        parse_am_args(["--foo"])
    with pytest.raises(ContractError, match="invalid number"):
        parse_am_args(["--ei", "steps", "4x"])
    with pytest.raises(ContractError, match="out of range"):
        parse_am_args(["--ei", "steps", str(2**31)])
    with pytest.raises(ContractError, match="unknown delegate"):
        RunRequest.from_extras({**{k: str(v) if isinstance(v, str) else v for k, v in base.items()},
                                "delegate": "tpu"})
    with pytest.raises(ContractError, match="--ei"):
        RunRequest.from_extras({**base, "delegate": "cpu", "steps": "4"})
    assert result_path("r1") == "/sdcard/Android/data/com.banana.sdk.app/files/results/r1.json"


def _ok_result() -> dict:
    run_ = {"e2e_ms": 10.0, "text_ms": 1.0, "denoise_ms": [2.0, 2.0], "decode_ms": 3.0}
    return {"schema_version": 1, "run_id": "r", "status": "ok", "error": None,
            "delegate": {"requested": "gpu", "used": "cpu", "fallback_reason": "no gpu"},
            "load_ms": {"denoise": 5.0}, "first_image_ms": 20.0, "warmup": [], "runs": [run_],
            "image": {"path": "/x.png", "sha256": "a" * 64}, "thermal": {"headroom": 0.3, "status": 0}}


def test_result_validation() -> None:
    assert validate_result(_ok_result(), expect_run_id="r", expect_runs=1)["status"] == "ok"
    for mutate, message in (
        (lambda r: r.update(schema_version=3), "newer"),  # 1 (this result) and 2 (live mode) are read
        (lambda r: r.update(run_id="other"), "expected 'r'"),
        (lambda r: r["runs"][0].update(e2e_ms=-1), "runs\\[0\\].e2e_ms"),
        (lambda r: r["runs"][0].update(denoise_ms=[]), "denoise_ms"),
        (lambda r: r.update(runs=[]), "at least one"),
        (lambda r: r["thermal"].update(status=9), "thermal.status"),
        (lambda r: r["image"].update(sha256="zz"), "sha256"),
        (lambda r: r.update(status="ok", error="x"), "error null"),
    ):
        bad = json.loads(json.dumps(_ok_result()))
        mutate(bad)
        with pytest.raises(ContractError, match=message):
            validate_result(bad, expect_run_id="r")
    with pytest.raises(ContractError, match="expected 2"):
        validate_result(_ok_result(), expect_runs=2)
    error = {"schema_version": 1, "run_id": "r", "status": "error", "error": "bundle not found"}
    assert validate_result(error)["error"] == "bundle not found"


# ---- filesystem sandbox ------------------------------------------------------------------------------

def test_no_device_path_escapes_the_sandbox(tmp_path) -> None:  # noqa: ANN001
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    fs = SimFS(tmp_path / "root", capacity_bytes=10_000)
    assert normalize("/../../..") == "/" and normalize("a/../../b", "/data") == "/b"
    for path in ("/../secret.txt", "../../secret.txt", "/data/local/tmp/../../../../secret.txt"):
        assert fs.stat(path) is None
        with pytest.raises(FsError):
            fs.read(path)
    with pytest.raises(FsError) as info:
        fs.write_bytes("/../../x.txt", b"data")  # resolves to /x.txt: not writable by the shell user
    assert info.value.code == errno.EACCES
    (tmp_path / "root" / "data" / "local" / "tmp" / "link").symlink_to(secret)
    assert fs.stat("/data/local/tmp/link") is None
    assert "link" not in [n for n, _ in fs.listdir("/data/local/tmp")]
    with pytest.raises(FsError):
        fs.read("/data/local/tmp/link")
    assert secret.read_text() == "host secret"


def test_storage_full_leaves_nothing_half_written(tmp_path) -> None:  # noqa: ANN001
    fs = SimFS(tmp_path / "root", capacity_bytes=100_000)
    fs.write_bytes("/data/local/tmp/keep.bin", b"k" * 40_000)
    with pytest.raises(FsError) as info:
        fs.write("/data/local/tmp/big.bin", (b"x" * 10_000 for _ in range(10)))
    assert info.value.code == errno.ENOSPC
    assert [n for n, _ in fs.listdir("/data/local/tmp")] == ["keep.bin"]
    assert fs.used_bytes == 40_000 and fs.free_bytes == 60_000
    assert not [p for p in (tmp_path / "root").rglob("*.tmp")]


# ---- thermal model -----------------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_thermal_model_heats_throttles_and_cools() -> None:
    profile = get_profile("midrange")
    clock = FakeClock()
    model = ThermalModel(profile.thermal, profile.clusters, speedup=1.0, clock=clock)
    assert model.state().skin_c == pytest.approx(25.0) and model.state().status == 0
    model.set_busy(True)
    for _ in range(1200):  # 20 minutes of one busy core
        model.add_cpu_time(1.0)
        clock.now += 1.0
    hot = model.state()
    assert hot.status >= 1 and hot.freq_cap < 1.0
    assert hot.die_c > hot.skin_c > 39.0
    big = profile.clusters[-1]
    assert model.cluster_freq(big) < big.freqs_khz[-1]
    model.set_busy(False)
    clock.now += 3 * 3600
    cool = model.state()
    p = profile.thermal  # idle steady state: the idle power flows die -> body -> air
    assert cool.status == 0 and cool.freq_cap == 1.0
    assert cool.skin_c == pytest.approx(p.ambient_c + p.idle_power_w * p.body_to_air_k_per_w, abs=0.01)
    assert cool.die_c == pytest.approx(cool.skin_c + p.idle_power_w * p.die_to_body_k_per_w, abs=0.01)
    assert cool.battery_c == pytest.approx(cool.skin_c, abs=0.01)
    residency = parse_time_in_state(model.time_in_state_text(big.policy).decode())
    assert residency[big.freqs_khz[0]] >= 3 * 3600 * 100  # idle at the floor clock
    assert sum(residency.values()) == pytest.approx((1200 + 3 * 3600) * 100, rel=1e-6)


def test_thermal_speedup_compresses_time() -> None:
    profile = get_profile("midrange")
    a, b = FakeClock(), FakeClock()
    slow = ThermalModel(profile.thermal, profile.clusters, speedup=1.0, clock=a)
    fast = ThermalModel(profile.thermal, profile.clusters, speedup=30.0, clock=b)
    for _ in range(300):
        slow.add_cpu_time(1.0)
        a.now += 1.0
    for _ in range(300):  # the same work, each CPU second done in 1/30 s of real time
        fast.add_cpu_time(1.0 / 30)
        b.now += 1.0 / 30
    assert slow.state().skin_c > 30.0
    assert fast.state().skin_c == pytest.approx(slow.state().skin_c, abs=0.05)
    assert fast.state().die_c == pytest.approx(slow.state().die_c, abs=0.05)


def test_a_charging_phone_stays_warm_and_says_it_is_on_a_charger(tmp_path: Path) -> None:
    options = SimOptions("midrange", start_temp_c=48.0, charging_w=1.5)
    p = options.resolve().thermal
    assert p.charging_w == 1.5 and get_profile("midrange").thermal.charging_w == 0.0  # the profile is not changed
    clock = FakeClock()
    model = ThermalModel(p, get_profile("midrange").clusters, speedup=60.0, start_c=48.0, clock=clock)
    lowest = 48.0
    for _ in range(600):  # 10 minutes of real time, 10 hours of thermal time: idle but charging
        clock.now += 1.0
        lowest = min(lowest, model.state().skin_c)
    steady = p.ambient_c + (p.idle_power_w + 1.5) * p.body_to_air_k_per_w  # 42.1 C: hot (headroom 0.95)
    assert model.state().skin_c == pytest.approx(steady, abs=0.01) and lowest >= steady - 0.01
    assert model.state().headroom >= 0.9 and model.state().status == 2
    device = SimDevice(options, tmp_path / "data", serial="BSIMCHG")
    text = dumpsys.battery(device)
    assert "AC powered: true" in text and "USB powered: false" in text
    assert "AC powered: false" in dumpsys.battery(SimDevice(SimOptions("midrange"), tmp_path / "d2", serial="B2"))
    with pytest.raises(SimulatorError, match="charging heat"):
        SimOptions("midrange", charging_w=-1.0).resolve()
    cmd = sim_command(options)  # the simulator process gets it; a phone on USB gets no flag
    assert cmd[cmd.index("--charging-w") + 1] == "1.5" and "--charging-w" not in sim_command(SimOptions())


# ---- parsers on the simulator's output and on real formats ---------------------------------------------

def test_parsers_read_the_simulators_dumpsys(device: SimDevice) -> None:
    props = parse_getprop(run(device, "getprop")[1])
    assert props["ro.product.cpu.abi"] == "arm64-v8a" and props["ro.banana.simulated"] == "1"
    thermal = parse_thermalservice(dumpsys.thermalservice(device))
    assert thermal.status == 0
    assert {s.type for s in thermal.sensors} == {0, 1, 2, 3, 9}
    skin = next(s for s in thermal.sensors if s.type == 3)
    assert skin.value_c == pytest.approx(25.0, abs=0.1)
    assert parse_battery_temp(dumpsys.battery(device)) == pytest.approx(25.0, abs=0.1)
    assert parse_meminfo_pss_kb(dumpsys.meminfo(device, "com.banana.sdk.app")) is None  # not running
    names = [name for name, _ in zone_table(device)]
    indices = [names.index("cpu-0-0-usr"), names.index("cpu-1-0-usr")]
    zones = [f"/sys/class/thermal/thermal_zone{k}/{leaf}" for k in indices for leaf in ("type", "temp")]
    out = run(device, command_line(["cat", *zones]))[1]
    zones_c = parse_thermal_zones(out)
    assert sorted(zones_c) == ["cpu-0-0-usr", "cpu-1-0-usr"]  # millidegrees read back as degrees
    assert zones_c["cpu-0-0-usr"] == pytest.approx(25.0, abs=0.5)
    assert zones_c["cpu-1-0-usr"] - zones_c["cpu-0-0-usr"] == pytest.approx(1.5, abs=0.01)


def test_parsers_on_real_formats() -> None:
    text = ("IsStatusOverride: false\nThermal Status: 2\nCached temperatures:\n"
            "\tTemperature{mValue=30.0, mType=3, mName=skin, mStatus=0}\nHAL Ready: true\n"
            "Current temperatures from HAL:\n\tTemperature{mValue=57.9, mType=0, mName=CPU, mStatus=0}\n"
            "\tTemperature{mValue=41.25, mType=3, mName=VIRTUAL-SKIN, mStatus=2}\n"
            "\tTemperature{mValue=NaN, mType=9, mName=NPU, mStatus=0}\n"
            "Current cooling devices from HAL:\n\tCoolingDevice{mValue=0, mType=2, mName=cpu0}\n")
    parsed = parse_thermalservice(text)
    assert parsed.status == 2
    assert [(s.name, s.type, s.value_c, s.status) for s in parsed.sensors] == [
        ("CPU", 0, 57.9, 0), ("VIRTUAL-SKIN", 3, 41.25, 2)]
    assert parse_battery_temp("Current Battery Service state:\n  level: 80\n  temperature: 312\n") == 31.2
    assert parse_meminfo_pss_kb("No process found for: com.x\n") is None
    assert parse_meminfo_pss_kb("  TOTAL PSS:   123456            TOTAL RSS:   200000") == 123456
    assert parse_thermal_zones("cpu-0-0\n45100\nbattery\n31\ntsens\n309\nvbat\n4213000\n") == {
        "cpu-0-0": 45.1, "battery": 31.0, "tsens": 30.9}  # tenths as old MSM tsens prints them; 4213 C dropped
    assert parse_getprop("[ro.product.model]: [Pixel 7]\n[x]: []\n") == {"ro.product.model": "Pixel 7", "x": ""}
    bm = parse_benchmark_model(
        "INFO: Inference timings in us: Init: 92318, First inference: 235158, Warmup (avg): 211669, "
        "Inference (avg): 145528\nINFO: Memory footprint delta from the start of the tool (MB): init=54.2852 "
        "overall=73.4102\nINFO: Overall peak memory footprint (MB) via periodic monitoring: 93.2383\n")
    assert (bm.init_us, bm.first_us, bm.warmup_avg_us, bm.inference_avg_us) == (92318, 235158, 211669, 145528)
    assert (bm.peak_memory_mb, bm.memory_delta_mb) == (93.2383, 73.4102)
    assert parse_benchmark_model("Benchmarking failed.") is None


# ---- statistics and sustained analysis -----------------------------------------------------------------

def test_summary_statistics() -> None:
    values = [float(v) for v in range(1, 21)]  # 1..20
    s = summarize(values)
    assert (s["n"], s["min"], s["max"], s["median"]) == (20, 1.0, 20.0, 10.5)
    assert s["p90"] == pytest.approx(18.1)
    assert s["trimmed_mean"] == pytest.approx(10.5)  # drops 1,2 and 19,20
    assert trimmed_mean([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 100.0]) == 1.0
    assert percentile([5.0], 90) == 5.0
    assert summarize([]) is None


def test_throttle_onset_needs_latency_rise_and_thermal_status() -> None:
    runs = [{"t": 0.5 * k, "e2e_ms": 100.0 if k < 30 else 130.0} for k in range(60)]
    cool = [{"t": float(t), "thermal_status": 0} for t in range(31)]
    assert throttle_onset(runs, cool, window_s=5.0) is None  # slower but not hot: not throttling
    hot = [{"t": float(t), "thermal_status": 0 if t < 14 else 1} for t in range(31)]
    onset = throttle_onset(runs, hot, window_s=5.0, rise_pct=10.0)
    assert onset["t_s"] == pytest.approx(15.0) and onset["run_index"] == 30
    assert onset["baseline_ms"] == 100.0 and onset["rise_pct"] == pytest.approx(30.0)
    assert throttle_onset(runs, hot, window_s=5.0, rise_pct=40.0) is None
    spikes = [{"t": 0.5 * k, "e2e_ms": 300.0 if k % 7 == 6 else 100.0} for k in range(60)]
    assert throttle_onset(spikes, hot, window_s=5.0) is None  # single slow runs do not count
    windows = compare_windows(runs, 5.0)
    assert windows["first"]["median"] == 100.0 and windows["last"]["median"] == 130.0
    assert windows["change_pct"] == pytest.approx(30.0)


def test_shlex_quote_is_what_we_send() -> None:
    assert command_line(["echo", "a b", "it's"]) == "echo 'a b' 'it'\"'\"'s'"
    assert shlex.split(command_line(NASTY[1:])) == NASTY[1:]


def test_journal_appends_and_survives_a_torn_last_line(tmp_path) -> None:  # noqa: ANN001
    from device_tests.journal import Journal, read_journal

    journal = Journal(tmp_path / "run.journal.jsonl")
    journal.write("start", bundle={"model": "tiny"})
    journal.write("telemetry", "s1", sample={"t": 1.0, "value": float("nan")})
    journal.close()
    with open(tmp_path / "run.journal.jsonl", "a") as handle:
        handle.write('{"kind": "telemetry", "ser')  # the writer died mid-line
    events = read_journal(tmp_path / "run.journal.jsonl")
    assert [e["kind"] for e in events] == ["start", "telemetry"]
    assert events[1]["serial"] == "s1" and events[1]["sample"] == {"t": 1.0, "value": None}

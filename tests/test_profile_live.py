"""`banana profile --live` on simulated phones: the runner contract's live mode (DESIGN §6), the simulated app's
LiveSession + ThermalGovernor, the harness's parts, summary, records and report; the governor on and off on a hot
phone, prompts refused on the host, a device lost mid-session and Ctrl-C. Thermal time runs 60x: 6 s here are six
thermal minutes of the phone."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli
from device_fixtures import adb, adb_server, sims  # noqa: F401

from banana_sdk.errors import ConfigError, PromptError
from banana_sdk.runtime.governor import GovernorConfig
from device_tests.contract import PACKAGE, Delegate, RunRequest, am_start_argv, check_live, parse_am_args
from device_tests.errors import ContractError, DeviceError
from device_tests.journal import journal_path, read_journal
from device_tests.live_stats import LIGHT, fps_bins, time_to_first_frame
from device_tests.profile import ProfileSettings, profile
from device_tests.run_file import load_run, run_from_journal

PROMPTS = ["a red circle", "a red circle top left", "a red circle top left and a blue square", "pip center",
           "pip center and zed top left", "two yellow triangles"]
SPEEDUP = 60.0
HOT_CHARGER_W = 1.5  # charging heat of the hot phones: midrange settles at 42.1 C (headroom 0.95)


def _prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    return path


def _settings(seconds: float, **kw: object) -> ProfileSettings:
    return ProfileSettings(live_s=seconds, cooldown_c=None, threads=2, prompts=tuple(PROMPTS), **kw)


def _events(run_json: Path) -> list[dict]:
    path = journal_path(run_json)
    return read_journal(path) if path.exists() else []


def _when(predicate, timeout_s: float = 60.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# ---- host side: contract, analysis, refusals (no device) ----------------------------------------------------------

def test_live_extras_round_trip_and_are_checked() -> None:
    req = RunRequest(bundle="/data/b", prompt="pip", steps=1, size=64, seed=0, delegate=Delegate.AUTO, threads=2,
                     warmup=0, runs=1, run_id="l1", mode="live", duration_s=5, target_fps=30, prompts="/data/p.txt",
                     edit_ms=33, governor=1)
    argv = am_start_argv(req)
    assert ["--es", "mode", "live"] == argv[argv.index("mode") - 1:argv.index("mode") + 2]
    assert RunRequest.from_extras(parse_am_args(argv[2:]).extras) == req
    base = dict(parse_am_args(argv[2:]).extras)
    for bad, message in ((dict(governor=2), "governor"), (dict(target_fps=0), "target_fps"),
                         (dict(prompts="rel.txt"), "prompts"), (dict(mode="stream"), "mode")):
        with pytest.raises(ContractError, match=message):
            RunRequest.from_extras({**base, **bad})
    with pytest.raises(ContractError, match="needs the extras"):
        RunRequest.from_extras({k: v for k, v in base.items() if k != "edit_ms"})
    generate = {k: v for k, v in base.items() if k not in ("mode", "duration_s", "target_fps", "prompts", "edit_ms")}
    with pytest.raises(ContractError, match="go with mode 'live' only"):
        RunRequest.from_extras(generate)


def test_fps_bins_and_time_to_first_frame() -> None:
    frames = [{"t_s": 0.25, "start_s": 0.1, "outcome": "shown"}, {"t_s": 0.5, "start_s": 0.3, "outcome": "cancelled"},
              {"t_s": 1.2, "start_s": 0.9, "outcome": "shown"}, {"t_s": 1.4, "start_s": 1.0, "outcome": "stale"},
              {"t_s": 2.5, "start_s": 1.5, "outcome": "shown"}]
    thermal = [{"t_s": 0.0, "level": 0}, {"t_s": 1.5, "level": 1}]
    assert fps_bins(frames, thermal, 3) == [{"t_s": 0.0, "fps": 1, "level": 0}, {"t_s": 1.0, "fps": 1, "level": 1},
                                            {"t_s": 2.0, "fps": 1, "level": 1}]
    edits = [{"t_s": 0.0, "status": "accepted"}, {"t_s": 0.2, "status": "held"}, {"t_s": 0.95, "status": "unchanged"},
             {"t_s": 1.2, "status": "accepted"}, {"t_s": 2.0, "status": "accepted"}]
    # edit 0 -> the frame started at 0.1 (shown 0.25); edit 1 -> the first shown frame started after 0.2 (1.2)
    assert time_to_first_frame(edits, frames) == [250.0, 1000.0, None, 1300.0, None]


def test_bad_prompts_are_refused_on_the_host_before_any_adb_call(tiny_bundle: Path, tmp_path: Path) -> None:
    long_line = " ".join(["circle"] * 200)
    for content, fragment in ((f"a red circle\n{long_line}\n", "prompt 2"), ("\n  \n", "has no prompts"),
                              (b"\xff\xfe", "not UTF-8")):
        path = tmp_path / "bad.txt"
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        # no simulator runs and the serial does not exist: an adb call would fail with a device error instead
        result = run_cli("profile", "--bundle", tiny_bundle, "--serial", "emulator-5999", "--live", "5s",
                         "--prompts", path, "-o", tmp_path / "r.json", in_process=True)
        assert_one_line_error(result, fragment)
        assert not (tmp_path / "r.json").exists()
    class NoAdb:  # the library call with an adb that must not be touched
        def __getattr__(self, name: str) -> None:
            raise AssertionError(f"adb used before the host checks: {name}")

    with pytest.raises(PromptError, match="prompt 2"):
        profile(tiny_bundle, tmp_path / "r.json", None, ProfileSettings(live_s=5.0, prompts=("pip", long_line)),
                adb=NoAdb())  # type: ignore[arg-type]
    for seconds, bad in ((5.0, dict(target_fps=0)), (5.0, dict(target_fps=500)), (5.0, dict(edit_ms=0)),
                         (0.5, {}), (5.0, dict(sustained_s=10.0)), (5.0, dict(size=128))):
        with pytest.raises(ConfigError):
            profile(tiny_bundle, tmp_path / "r.json", "emulator-5999", _settings(seconds, **bad))
    result = run_cli("profile", "--bundle", tiny_bundle, "--serial", "emulator-5999", "--no-governor", "-o",
                     tmp_path / "r.json", in_process=True)
    assert_one_line_error(result, "go with --live")


# ---- on simulated phones -------------------------------------------------------------------------------------------

def test_live_run_summary_records_and_report(sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    # CRITICAL skin on a fast charger (1.5 W: it settles at 42.1 C, headroom 0.95), so the phone is still hot when
    # the stream starts however long the push took on this host: the governor must act
    sim = sims("midrange", thermal_speedup=SPEEDUP, start_temp_c=48.0, charging_w=HOT_CHARGER_W)
    out = tmp_path / "LIVE.json"
    result = run_cli("profile", "--bundle", tiny_bundle, "--serial", sim.serial, "--live", "6s", "--target-fps", "30",
                     "--prompts", _prompts(tmp_path), "--no-cooldown", "--threads", "2", "-o", out, in_process=True)
    assert result.code == 0, result.err
    assert f"{sim.serial}: live 6 s" in result.out and "governor decision" in result.out
    run = json.loads(out.read_text())
    assert run["schema_version"] == 2 and run["complete"] and run["settings"]["live_s"] == 6.0
    d = run["devices"][0]
    live, s = d["live"], d["live_summary"]
    check_live({k: v for k, v in live.items() if k != "offset_s"})
    assert live["prompts"] == PROMPTS and live["time_scale"] == SPEEDUP and live["edit_ms"] == 33
    assert [b["t_s"] for b in live["fps"]] == [float(k) for k in range(6)]  # the bins cover the duration
    assert s["shown"] > 30 and s["frames"] >= s["shown"]
    assert 0 < s["frame_ms"]["p50"] <= s["frame_ms"]["p90"] <= s["frame_ms"]["p99"]
    assert s["fps"]["median"] > 5 and s["ttff_ms"]["p50"] > 0 and s["over_budget"]["of"] == s["shown"]
    assert {f["prompt"] for f in live["frames"]} <= set(range(len(PROMPTS)))
    assert all(f["frame_ms"] >= f["encode_ms"] + f["denoise_ms"] for f in live["frames"] if f["outcome"] == "shown")
    # hot start (the clock starts at the first tick the governor saw as hot): no step down before it, the first one
    # within hold_ms (thermal time, 60x) plus half a second of it (a frame in flight on a loaded host delays a
    # tick), for its reason
    cfg = GovernorConfig()
    hot = [t for t in live["thermal"] if t["forecast"] >= cfg.down_at or t["status"] >= cfg.severe_status]
    downs = [x for x in live["decisions"] if x["to"] > x["from"]]
    assert hot and downs, (live["thermal"][:5], live["decisions"])
    assert hot[0]["t_s"] <= downs[0]["t_s"] <= hot[0]["t_s"] + cfg.hold_ms / 1e3 / SPEEDUP + 0.5
    assert downs[0]["reason"] in ("hot", "severe") and (downs[0]["headroom"] >= cfg.down_at or downs[0]["status"] >= 3)
    onset = next(t for t in live["thermal"] if t["status"] >= LIGHT)  # the throttle onset is the first such tick
    assert s["throttle_onset"]["t_s"] == onset["t_s"] and s["steps_down"] >= 1
    assert [lv["fps"] for lv in live["levels"]] == [30.0, 28.5]  # tiny: no preview decoder, already 1 step
    metrics = {r["metric"]: r for r in d["records"]}
    assert metrics["live_fps_median(fps)"]["targetValue"] == 30
    assert metrics["live_frame_time_p99(ms)"]["actualValue"] == pytest.approx(s["frame_ms"]["p99"])
    assert metrics["live_governor_decisions(count)"]["actualValue"] == len(live["decisions"])
    # the journal rebuilds the same live run (the final result replaces the parts pulled while it ran)
    events = _events(out)
    assert sum(e["kind"] == "live_part" for e in events) >= 3
    rebuilt = run_from_journal(journal_path(out))["devices"][0]
    assert rebuilt["live_summary"] == s
    html_path = tmp_path / "live.html"
    result = run_cli("report", out, "-o", html_path, in_process=True)
    assert result.code == 0, result.err
    html = html_path.read_text()
    assert "Frame rate against temperature over time" in html and "<h3>Governor decisions</h3>" in html
    assert "live fps median (target)" in html and "SIMULATED" in html and "L0→L1 " in html


def test_governor_off_on_a_hot_phone_makes_no_decisions(adb, sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("midrange", thermal_speedup=SPEEDUP, start_temp_c=48.0,
               charging_w=HOT_CHARGER_W)  # as hot as the governor-on run above
    run = profile(tiny_bundle, tmp_path / "OFF.json", sim.serial, _settings(4.0, governor=False), adb=adb)
    live, s = run["devices"][0]["live"], run["devices"][0]["live_summary"]
    assert live["governor"] is False and live["decisions"] == [] and s["decisions"] == 0
    assert s["shown"] > 20 and all(f["level"] == 0 for f in live["frames"])
    assert s["max_status"] >= 1 and s["throttle_onset"] is not None and s["throttle_onset"]["t_s"] < 1.0


def test_device_lost_mid_live_keeps_the_frames_so_far(adb, sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("midrange", thermal_speedup=SPEEDUP)
    out = tmp_path / "LOST.json"

    def kill_after_parts() -> None:
        if _when(lambda: sum(e["kind"] == "live_part" for e in _events(out)) >= 2):
            sim.kill()

    killer = threading.Thread(target=kill_after_parts)
    killer.start()
    with pytest.raises(DeviceError, match="did not finish"):
        profile(tiny_bundle, out, sim.serial, _settings(30.0), adb=adb)
    killer.join()
    run = load_run(out)
    d = run["devices"][0]
    assert not run["complete"] and not d["complete"] and d["error"]
    assert d["live"]["partial"] and d["live_summary"]["shown"] > 0 and d["live_summary"]["ran_s"] >= 1
    assert d["live"]["frames"] and d["live"]["thermal"]
    html = tmp_path / "lost.html"
    assert run_cli("report", out, "-o", html, in_process=True).code == 0
    assert "partial" in html.read_text()


def test_ctrl_c_stops_the_app_and_writes_the_run(adb, sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("flagship", thermal_speedup=SPEEDUP)
    out = tmp_path / "INT.json"
    main = threading.main_thread().ident
    assert main == threading.get_ident()

    sent: list[float] = []

    def interrupt_after_a_part() -> None:
        if _when(lambda: any(e["kind"] == "live_part" for e in _events(out)), timeout_s=170.0):
            sent.append(time.monotonic())
            signal.pthread_kill(main, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_after_a_part)
    # Python's own Ctrl-C handler, as in a terminal: a shell starts a background job (`make test &`) with SIGINT
    # ignored, and Python then keeps SIG_IGN, so the signal would never reach the profile
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupter.start()
        # a session far longer than the first part takes even on a loaded host, so Ctrl-C always lands inside it
        result = run_cli("profile", "--bundle", tiny_bundle, "--serial", sim.serial, "--live", "180s",
                         "--no-cooldown", "-o", out, in_process=True)
        interrupter.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sent, "no live part was journaled"
    assert result.code == 130 and f"interrupted: the apps were stopped; what was measured is in {out}" in result.err
    assert time.monotonic() - sent[0] < 30  # stopped promptly after the Ctrl-C
    d = json.loads(out.read_text())["devices"][0]
    assert not d["complete"] and "interrupted" in d["error"] and d["live"]["frames"]
    # the app was stopped: the phone is free for the next run
    assert _when(lambda: adb.device(sim.serial).shell(["pidof", PACKAGE], check=False).returncode != 0, 5.0)

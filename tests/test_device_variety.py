"""Phones that are not the reference simulator (issue 22): adbd without shell_v2, an old benchmark_model, GNU
coreutils, getprop / pm / am that fail, a slow link and little storage; honest sustained windows; a killed run's
journal; a simulator stopped with SIGTERM. Quirky devices go through the real adb server."""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import ROOT, assert_one_line_error, run_cli
from device_fixtures import adb, adb_server, sims  # noqa: F401

from banana_sdk.fileio import atomic_write_json, sha256_file
from device_tests.errors import DeviceCommandError, StorageFull
from device_tests.journal import Journal, journal_path
from device_tests.legacy_shell import LegacyShellError, unwrap, wrap
from device_tests.live_stats import summarize_live
from device_tests.parsers import parse_benchmark_model, parse_df_available_kb, parse_sha256sum
from device_tests.push import push_bundle, remote_hashes
from device_tests.run_record import DeviceRun
from device_tests.sim.options import free_port, port_free
from device_tests.sim.quirks import Quirk
from device_tests.sustained import compare_windows, throttle_onset

DIGEST = "a" * 64


# ---- no shell_v2: the legacy `shell:` service, exit status from a sentinel ------------------------------------

def test_legacy_shell_output_is_split_from_its_sentinel() -> None:
    sentinel = "BANANA-EXIT-0123456789abcdef0123456789abcdef:"
    assert wrap("ls '/x y'", sentinel) == f"ls '/x y'; echo {sentinel}$?"
    out = unwrap(b"hello\nBANANA-EXIT-fake:0\n" + sentinel.encode() + b"42\n", sentinel)
    assert (out.returncode, out.text) == (42, b"hello\nBANANA-EXIT-fake:0\n")  # only the real sentinel counts
    pty = unwrap(b"a\r\nb\r\n" + sentinel.encode() + b"0\r\n", sentinel)  # old adbd: a PTY turned \n into \r\n
    assert (pty.returncode, pty.text) == (0, b"a\nb\n")
    with pytest.raises(LegacyShellError, match="without reporting an exit status"):
        unwrap(b"cut off mid-comm", sentinel)


def test_device_without_shell_v2_lists_pushes_and_reports_exit_status(adb, sims, tiny_bundle: Path) -> None:  # noqa: ANN001, F811
    sim = sims("midrange", quirks=frozenset({Quirk.NO_SHELL_V2}))
    device = adb.device(sim.serial)
    assert not device.shell_v2
    result = device.shell(["sh", "-c", "echo out; echo err 1>&2; echo BANANA-EXIT-fake:0; exit 3"], check=False)
    assert result.returncode == 3 and result.stderr == ""
    assert result.stdout == "out\nerr\nBANANA-EXIT-fake:0\n"  # stderr merged into stdout, in order
    with pytest.raises(DeviceCommandError, match=rf"`false` failed on {sim.serial} \(exit 1\)"):
        device.shell(["false"])
    assert device.shell(["echo", "a b", "it's"]).stdout == "a b it's\n"  # quoting as with shell_v2
    listed = run_cli("devices", in_process=True)
    assert listed.code == 0, listed.err
    line = next(ln for ln in listed.out.splitlines() if ln.startswith(sim.serial))
    assert all(x in line.split() for x in ("Midrange", "BS6100", "arm64-v8a", "33", "6.0G")), line
    first = push_bundle(device, tiny_bundle)
    assert first.verified and first.skipped == [] and first.pushed[-1] == "manifest.json"
    second = push_bundle(device, tiny_bundle)
    assert second.verified and second.pushed == [] and len(second.skipped) == len(first.pushed)


# ---- benchmark_model: the current format with delegate coverage, and TFLite 1.x's ---------------------------

CURRENT = """INFO: STARTING!
INFO: Graph: [/data/local/tmp/m.tflite]
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 59 out of 62 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 2 partitions for \
the whole graph.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be partially executed by the delegate w/ 2 \
delegate kernels.
INFO: Initialized session in 18.738ms.
INFO: count=6 first=140706 curr=74599 min=74599 max=140706 avg=85791.2 std=24559

INFO: Inference timings in us: Init: 18738, First inference: 140706, Warmup (avg): 85791.2, Inference (avg): 74481.6
INFO: Memory footprint delta from the start of the tool (MB): init=14.4414 overall=14.8164
INFO: Overall peak memory footprint (MB) via periodic monitoring: 93.2383
"""
OLD = """STARTING!
Num runs: [50]
Graph: [/data/local/tmp/mobilenet_v1_1.0_224_quant.tflite]
Loaded model /data/local/tmp/mobilenet_v1_1.0_224_quant.tflite
resolved reporter
Initialized session in 4.452ms
Running benchmark for 1 iterations
count=1 curr=146161

Running benchmark for 50 iterations
count=50 first=137789 curr=137254 min=137079 max=143416 avg=137722 std=896

Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722
"""


def test_benchmark_model_formats_parse_with_delegation() -> None:
    now = parse_benchmark_model(CURRENT)
    assert (now.output_format, now.init_us, now.first_us, now.warmup_avg_us, now.inference_avg_us) == (
        "current", 18738, 140706, 85791.2, 74481.6)
    assert (now.peak_memory_mb, now.memory_delta_mb) == (93.2383, 14.8164)
    assert (now.delegate, now.delegated_nodes, now.total_nodes, now.partitions, now.fully_delegated) == (
        "TfLiteXNNPackDelegate", 59, 62, 2, False)
    old = parse_benchmark_model(OLD)
    assert (old.output_format, old.init_us, old.first_us, old.warmup_avg_us, old.inference_avg_us) == (
        "old", 4452, 146161, 146161, 137722)
    assert (old.peak_memory_mb, old.delegate, old.delegated_nodes, old.partitions) == (None, None, None, None)
    tf114 = parse_benchmark_model("count=6 first=91810 curr=85097\n\nAverage inference timings in us: Warmup: "
                                  "86184.3, Init: 1892, Inference: 115062\n")
    assert (tf114.first_us, tf114.warmup_avg_us, tf114.inference_avg_us) == (91810, 86184.3, 115062)
    two = parse_benchmark_model(
        "VERBOSE: Replacing 5 out of 64 node(s) with delegate (TfLiteNnapiDelegate) node, yielding 5 partitions for "
        "the whole graph.\nVERBOSE: Replacing 59 out of 62 node(s) with delegate (TfLiteXNNPackDelegate) node, "
        "yielding 5 partitions for subgraph 0 (main).\n" + CURRENT.split("INFO: Initialized session")[1])
    assert (two.delegate, two.delegated_nodes, two.total_nodes, two.partitions) == (
        "TfLiteNnapiDelegate+TfLiteXNNPackDelegate", 64, 64, 10)
    full = parse_benchmark_model("INFO: Explicitly applied GPU delegate, and the model graph will be completely "
                                 "executed by the delegate.\n" + CURRENT.split("INFO: Initialized session")[1])
    assert (full.delegate, full.fully_delegated, full.delegated_nodes) == ("GPU", True, None)
    none = parse_benchmark_model("INFO: Though NNAPI delegate is explicitly applied, the model graph will not be "
                                 "executed by the delegate.\n" + CURRENT.split("INFO: Initialized session")[1])
    assert (none.delegate, none.fully_delegated, none.delegated_nodes, none.partitions) == ("NNAPI", False, 0, 0)


def _elf_aarch64(path: Path) -> Path:
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + (2).to_bytes(2, "little") + (183).to_bytes(2, "little")
    path.write_bytes(header + bytes(64 - len(header)))
    return path


def test_profile_benchmark_model_reads_an_old_build(sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("flagship", app_installed=False, quirks=frozenset({Quirk.OLD_BENCHMARK_MODEL}))
    out = tmp_path / "BM.json"
    result = run_cli("profile", "--bundle", tiny_bundle, "--serial", sim.serial, "--benchmark-model",
                     _elf_aarch64(tmp_path / "benchmark_model"), "--runs", "3", "--warmup", "1", "--no-cooldown",
                     "-o", out, in_process=True)
    assert result.code == 0, result.err
    device = json.loads(out.read_text())["devices"][0]
    assert device["complete"] and len(device["benchmark_model"]) == 3
    for graph in device["benchmark_model"]:
        assert graph["output_format"] == "old" and graph["peak_memory_mb"] is None and graph["delegate"] is None
        assert graph["init_us"] > 0 and graph["inference_avg_us"] > 0
        assert graph["first_us"] == pytest.approx(graph["warmup_avg_us"], abs=1.0)  # one warm-up run: the same run
    assert "benchmark_model_denoise_inference_avg(ms)" in {r["metric"] for r in device["records"]}


# ---- GNU coreutils: df and sha256sum in their GNU formats ------------------------------------------------------

def test_df_and_sha256sum_parse_toybox_and_gnu() -> None:
    toybox = ("Filesystem      1K-blocks     Used Available Use% Mounted on\n"
              "/dev/block/dm-46  1048576   524288    524288  50% /data\n")
    gnu_wrapped = ("Filesystem     1K-blocks    Used Available Use% Mounted on\n"
                   "/dev/block/bootdevice/by-name/userdata\n"
                   "                 1048576  786432    262144  75% /data\n")
    human = "Filesystem      Size  Used Avail Use% Mounted on\n/dev/root        10G  3.0G     7 30% /\n"
    assert [parse_df_available_kb(t) for t in (toybox, gnu_wrapped, human)] == [524288, 262144, 7]
    assert parse_df_available_kb("df: /nope: No such file or directory\n") is None
    assert parse_sha256sum(f"{DIGEST}  /data/x\n") == DIGEST
    assert parse_sha256sum(f"\\{DIGEST}  /data/a\\nb\\\\c\n") == DIGEST  # GNU: escaped name, marked line
    assert parse_sha256sum(f"{DIGEST} */data/x\n") == DIGEST  # binary mode marker
    assert parse_sha256sum("sha256sum: /data/x: No such file or directory\n") is None
    assert parse_sha256sum(f"{DIGEST[:63]}  x\n") is None


def test_gnu_coreutils_device_pushes_odd_names_and_checks_storage(adb, sims, tiny_bundle: Path,  # noqa: ANN001, F811
                                                                  tmp_path: Path) -> None:
    gnu = frozenset({Quirk.GNU_COREUTILS})
    device = adb.device(sims("midrange", quirks=gnu).serial)
    odd = "two\nlines"  # a newline: GNU sha256sum escapes it (the manifest refuses backslashes in names)
    bundle = tmp_path / "odd"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / odd).write_bytes(b"payload")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"][odd] = {"sha256": sha256_file(bundle / odd), "bytes": 7}
    atomic_write_json(bundle / "manifest.json", manifest)
    first = push_bundle(device, bundle)
    assert odd in first.pushed and first.verified
    assert device.shell(["sha256sum", f"{first.remote_dir}/{odd}"]).stdout.startswith("\\")  # GNU's marked line
    assert push_bundle(device, bundle).pushed == []  # the escaped name's hash is read back: nothing to resend
    slash = f"{first.remote_dir}/back\\slash"
    with device.sync() as sync:
        sync.push(bundle / odd, slash)
    assert remote_hashes(device, [slash, f"{first.remote_dir}/absent"]) == {
        slash: sha256_file(bundle / odd), f"{first.remote_dir}/absent": None}
    assert re.search(r" [A-Z][a-z]{2} [ \d]\d \d\d:\d\d manifest\.json$", device.shell(  # GNU dates: `Dec  6 13:12`
        ["ls", "-l", first.remote_dir]).stdout, re.MULTILINE)
    assert "PID TTY" in device.shell(["ps", "-A"]).stdout
    small = adb.device(sims("midrange", quirks=gnu, storage_mb=0.5).serial)
    with pytest.raises(StorageFull, match=r"has 0\.\d MiB free"):
        push_bundle(small, tiny_bundle)  # the wrapped GNU df line is read: refused before anything is written
    with small.sync() as sync:
        assert not sync.stat("/data/local/tmp/banana").exists


# ---- getprop / pm / am that fail ---------------------------------------------------------------------------

def test_failing_getprop_pm_and_am_are_one_line_errors(sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    cases = [(Quirk.NO_GETPROP, ("`getprop` failed on", "exit 127", "getprop: inaccessible or not found",
                                 "this build has no getprop")),
             (Quirk.FAILING_GETPROP, ("`getprop` failed on", "exit 1:", "Connection refused", "reboot it")),
             (Quirk.FAILING_PM, ("`pm list packages com.banana.sdk.app` failed on", "exit 20",
                                 "Can't find service: package", "sys.boot_completed"))]
    for quirk, fragments in cases:
        sim = sims("midrange", quirks=frozenset({quirk}))
        result = run_cli("profile", "--bundle", tiny_bundle, "--serial", sim.serial, "--no-cooldown",
                         "-o", tmp_path / f"{quirk.value}.json", in_process=True)
        assert_one_line_error(result, sim.serial, *fragments, alone=True)
        assert "unknown ABI" not in result.err
        sim.stop()
    sim = sims("midrange", quirks=frozenset({Quirk.FAILING_AM}))
    result = run_cli("profile", "--bundle", tiny_bundle, "--serial", sim.serial, "--runs", "1", "--warmup", "0",
                     "--no-cooldown", "-o", tmp_path / "am.json", in_process=True)
    assert_one_line_error(result, f"`am start` failed on {sim.serial} (exit 127", "am: inaccessible or not found",
                          "--benchmark-model", alone=True)
    assert "exited without writing a result" not in result.err


# ---- a slow link (little storage: test_device_faults.py::test_storage_full_is_refused_cleanly) ----------------

def test_slow_link_push_completes_verified_at_the_link_speed(adb, sims, tiny_bundle: Path) -> None:  # noqa: ANN001, F811
    sim = sims("midrange", write_mb_per_s=2.0)
    start = time.monotonic()
    report = push_bundle(adb.device(sim.serial), tiny_bundle)
    wall = time.monotonic() - start
    payload_mb = report.bytes_pushed / 1e6
    assert report.verified and report.bytes_pushed == sum(f.stat().st_size for f in tiny_bundle.iterdir())
    assert report.seconds >= payload_mb / 2.0 * 0.9  # never faster than the link
    assert 1.0 <= report.mb_per_s <= 2.2 and report.seconds <= wall  # the measured speed is the link's


# ---- sustained and live windows: compared only when they do not overlap --------------------------------------

def _runs(n: int, every_s: float, ms: float, t0: float = 0.0) -> list[dict]:
    return [{"t": t0 + every_s * k, "e2e_ms": ms, "denoise_ms": [ms], "text_ms": 0.0, "decode_ms": 0.0}
            for k in range(n)]


def test_sustained_windows_come_from_the_measured_duration() -> None:
    cut = _runs(5, 0.135, 135.0)  # a 10-minute run unplugged after five runs (0.675 s measured)
    assert compare_windows(cut, 60.0) is None  # windows of 1 s overlap: not measured, not "+0%"
    summary = DeviceRun("s", runs=cut, sustained_s=600.0).summary({}, {})
    assert summary["sustained"]["windows"] is None
    assert "sustained_latency_change(%)" not in {r["metric"] for r in summary["records"]}
    short = _runs(100, 1.0, 100.0) + _runs(100, 1.0, 150.0, t0=100.0)  # 199.15 s of a planned 600 s
    windows = compare_windows(short, 60.0)
    assert windows["window_s"] == pytest.approx(199.15 / 5)  # a fifth of what was measured, not the planned minute
    assert windows["measured_s"] == pytest.approx(199.15)
    assert (windows["first"]["n"], windows["last"]["n"]) == (40, 40)
    assert (windows["first"]["median"], windows["last"]["median"], windows["change_pct"]) == (100.0, 150.0, 50.0)
    hot = [{"t": float(t), "thermal_status": 1} for t in range(201)]
    assert throttle_onset(short, hot, 60.0)["baseline_ms"] == 100.0
    assert compare_windows(_runs(10, 0.19, 100.0), 60.0) is None  # 1.81 s: two 1 s windows would overlap
    assert compare_windows(_runs(11, 0.2, 100.0), 60.0)["first"]["n"] == 5  # 2.1 s: windows of 1 s, apart


def test_live_first_and_last_windows_do_not_overlap() -> None:
    def live(seconds: int) -> dict:
        frames = [{"t_s": k / 10, "start_s": k / 10, "outcome": "shown", "frame_ms": 50.0}
                  for k in range(10 * seconds)]
        return {"duration_s": 60, "target_fps": 30, "time_scale": 1.0, "partial": True, "frames": frames,
                "thermal": [{"t_s": float(seconds), "status": 0, "level": 0}], "edits": [], "decisions": []}

    cut = summarize_live(live(1))["fps"]  # a 60 s session lost after 1 s
    assert cut["first"] is None and cut["last"] is None and cut["last_over_first"] is None
    ok = summarize_live(live(10))["fps"]
    assert (ok["window_s"], ok["first"], ok["last"], ok["last_over_first"]) == (2.0, 10.0, 10.0, 1.0)


# ---- a killed run: RUN.json missing, its journal there -----------------------------------------------------

def test_report_of_a_killed_run_points_at_its_journal(tmp_path: Path) -> None:
    run_json = tmp_path / "RUN.json"
    journal = Journal(journal_path(run_json))
    journal.write("start", bundle={"model": "tiny"}, settings={}, serials=["s1"], command=["banana"])
    journal.close()
    result = run_cli("report", run_json, "-o", tmp_path / "r.html", in_process=True)
    assert_one_line_error(result, f"{run_json} was not written (the run was killed?)",
                          f"its journal is {journal_path(run_json)}", f"banana report {journal_path(run_json)}",
                          alone=True)
    journal_path(run_json).unlink()
    assert_one_line_error(run_cli("report", run_json, "-o", tmp_path / "r.html", in_process=True),
                          "does not exist", alone=True)


# ---- `banana sim start` stopped with SIGTERM removes its device folder --------------------------------------

def test_sim_start_stopped_with_sigterm_removes_its_data_dir(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "sim", "start", "--port", str(port),
                             "--lifetime", "2m"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=60), "the simulator did not start"
        assert b"listening on" in proc.stdout.readline()
        assert len(list(tmp_path.glob("banana-sim-*"))) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert b"simulator stopped" in proc.stdout.read()
        assert list(tmp_path.glob("banana-sim-*")) == []  # the temporary device folder is gone
        assert port_free(port)  # and the simulator with it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

"""`banana profile --trace`: the simulated phone's `perfetto` writes a real trace, the harness pulls it beside
RUN.json, summarises it offline (stage times agree with the app's own timings) and the report links it; a phone
without perfetto is refused before anything runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_helpers import run_cli
from device_fixtures import adb, adb_server, sims  # noqa: F401
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace
from perfetto.trace_builder.proto_builder import TraceProtoBuilder

from device_tests.sim.quirks import Quirk
from device_tests.trace_config import TraceSpec
from device_tests.trace_device import check_perfetto, start_trace, stop_trace, trace_file
from device_tests.trace_report import trace_section
from device_tests.trace_summary import app_slices, read_trace, stage_times, summarize_trace


def test_sim_perfetto_writes_a_real_trace(adb, sims, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("flagship")
    device = adb.device(sim.serial)
    check_perfetto(device)
    active = start_trace(device, TraceSpec(duration_ms=60_000, battery_poll_ms=100))
    time.sleep(1.5)
    assert device.shell(["kill", "-0", str(active.pid)], check=False).returncode == 0  # still recording
    host = tmp_path / "t.pftrace"
    size = stop_trace(device, active, host)
    assert size == host.stat().st_size > 0
    assert device.shell(["kill", "-0", str(active.pid)], check=False).returncode == 1  # exited after writing
    trace = Trace.FromString(host.read_bytes())  # the real message, parsed by the perfetto package
    kinds = {p.WhichOneof("data") for p in trace.packet}
    assert {"clock_snapshot", "trace_config", "ftrace_events", "battery", "power_rails"} <= kinds
    config = next(p.trace_config for p in trace.packet if p.HasField("trace_config"))
    assert [s.config.name for s in config.data_sources] == ["linux.ftrace", "android.power", "linux.process_stats"]
    freq_cpus = {e.cpu_frequency.cpu_id for p in trace.packet if p.HasField("ftrace_events")
                 for e in p.ftrace_events.event if e.HasField("cpu_frequency")}
    assert freq_cpus == set(range(8))  # flagship: 4 + 3 + 1 CPUs, each clock change per CPU
    summary = summarize_trace(host)
    assert sorted(c for cl in summary["cpu_frequency"]["clusters"] for c in cl["cpus"]) == list(range(8))
    assert {"cpu0-therm", "skin-therm", "battery-therm"} <= set(summary["thermal"])
    assert summary["battery"]["samples"] >= 5 and summary["battery"]["charge_counter_uah"]["delta"] <= 0
    assert set(summary["power_rails"]) == {"VDD_CPU", "VDD_MEM", "VDD_SOC"}
    assert summary["stages"]["text_encode"]["count"] == 0  # nothing ran: no app sections
    # the client's refusals: one line, non-zero
    bad = device.shell(["perfetto", "--txt", "-c", "/data/local/tmp/none.pbtxt", "-o", "/data/misc/perfetto-traces/x"],
                       check=False)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1


def test_profile_trace_pulls_summarises_and_links(sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("midrange")
    out = tmp_path / "RUN.json"
    runs, steps = 3, 2
    result = run_cli("profile", "--bundle", tiny_bundle, "--serial", sim.serial, "--runs", runs, "--warmup", 1,
                     "--steps", steps, "--no-cooldown", "--trace", "-o", out)
    assert result.code == 0, result.err
    pulled = trace_file(out, sim.serial)
    assert pulled.name == f"RUN.trace-{sim.serial.replace(':', '_')}.pftrace" and pulled.is_file()
    assert f"Perfetto trace {pulled}" in result.out and "ui.perfetto.dev" in result.out
    run = json.loads(out.read_text())
    assert run["settings"]["trace"] is True
    (d,) = run["devices"]
    trace = d["trace"]
    assert trace["path"] == pulled.name and trace["bytes"] == pulled.stat().st_size
    assert trace["device_path"].startswith("/data/misc/perfetto-traces/banana-")
    stages = trace["summary"]["stages"]
    # one section per stage of every timed run (the warm-up run's are left out)
    assert stages["runs"]["count"] == runs and stages["warmup_runs"] == 1
    assert stages["text_encode"]["count"] == runs and stages["decode"]["count"] == runs
    assert stages["denoise_step"]["count"] == runs * steps
    assert {k: v["count"] for k, v in stages["denoise_steps"].items()} == {"1": runs, "2": runs}
    # the sections time what the app's result times: medians agree within a tolerance
    stats = d["stats"]
    for key, stat in (("text_encode", "text_ms"), ("denoise_step", "denoise_step_ms"), ("decode", "decode_ms"),
                      ("runs", "e2e_ms")):
        assert stages[key]["median_ms"] == pytest.approx(stats[stat]["median"], rel=0.15, abs=3.0), key
    freq = trace["summary"]["cpu_frequency"]
    assert sorted(sorted(c["cpus"]) for c in freq["clusters"]) == [[0, 1, 2, 3, 4, 5], [6, 7]]
    assert all(float(c["mean_mhz"]) > 0 for c in freq["clusters"])
    assert trace["summary"]["battery"]["samples"] > 0 and trace["summary"]["thermal"]
    # the app's markers belong to the app's process in the trace (named for ui.perfetto.dev)
    parsed = read_trace(pulled)
    names = {p.cmdline[0] for pkt in parsed.packet if pkt.HasField("process_tree") for p in pkt.process_tree.processes}
    assert names == {"com.banana.sdk.app"}
    html = trace_section(d)
    assert f'href="{pulled.name}"' in html and "ui.perfetto.dev" in html and "denoise step 2" in html
    assert "cpu0-therm" in html and "VDD_CPU" in html


def test_no_perfetto_is_refused_before_any_run(sims, tiny_bundle: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    sim = sims("midrange", quirks=frozenset({Quirk.NO_PERFETTO}))
    out = tmp_path / "RUN.json"
    result = run_cli("profile", "--bundle", tiny_bundle, "--serial", sim.serial, "--runs", 1, "--no-cooldown",
                     "--trace", "-o", out)
    assert result.code != 0 and "Traceback" not in result.err
    assert f"perfetto is not on {sim.serial} (Android < 9?): run without --trace" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not out.exists()  # refused before the journal, the push and any timed run


def test_summary_reads_sdk_and_async_sections() -> None:
    """track_event slices (interned names) and async atrace markers count like B/E markers."""
    builder = TraceProtoBuilder()
    intern = builder.add_packet()
    intern.trusted_packet_sequence_id, intern.sequence_flags = 7, 1
    intern.interned_data.event_names.add(iid=1, name="banana:decode")
    for ts, kind, name in ((1_000_000, 1, "banana:run 1"), (2_000_000, 1, None), (5_000_000, 2, None),
                           (9_000_000, 2, None)):
        packet = builder.add_packet()
        packet.timestamp, packet.trusted_packet_sequence_id = ts, 7
        packet.track_event.type, packet.track_event.track_uuid = kind, 42
        if name:
            packet.track_event.name = name
        elif kind == 1:
            packet.track_event.name_iid = 1
    bundle = builder.add_packet().ftrace_events
    for ts, buf in ((2_500_000, "S|9|banana:text encode|3\n"), (4_500_000, "F|9|banana:text encode|3\n")):
        event = bundle.event.add(timestamp=ts, pid=9)
        event.print.buf = buf
    stages = stage_times(app_slices(Trace.FromString(builder.serialize())))
    assert stages["runs"]["count"] == 1 and stages["runs"]["median_ms"] == pytest.approx(8.0)
    assert stages["decode"]["median_ms"] == pytest.approx(3.0) and stages["text_encode"]["total_ms"] == 2.0


def test_kotlin_sdk_writes_the_section_names_the_summary_reads() -> None:
    """The Android SDK's TraceSections (android.os.Trace) spell the names trace_config.py parses."""
    from device_tests import trace_config as tc

    kotlin = (Path(__file__).parents[1] / "android_app/banana-core/src/main/kotlin/com/banana/sdk/core/Tracer.kt"
              ).read_text(encoding="utf-8")
    for python, kotlin_literal in ((tc.TEXT_SECTION, tc.TEXT_SECTION), (tc.DECODE_SECTION, tc.DECODE_SECTION),
                                   (tc.denoise_section(7), "banana:denoise step $step"),
                                   (tc.run_section(2), "banana:run $index"),
                                   (tc.run_section(2, warmup=True), "banana:warmup $index")):
        assert f'"{kotlin_literal}"' in kotlin, kotlin_literal
        assert python.startswith(tc.SECTION_PREFIX)
    assert tc.DENOISE_RE.fullmatch(tc.denoise_section(7)) and tc.RUN_RE.fullmatch(tc.run_section(3))

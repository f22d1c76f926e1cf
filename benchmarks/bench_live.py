"""Live mode on simulated phones (issue 20 part 6): `banana profile --live` with the demo INT4 bundle at 1 step.

SIMULATED: the phone is device_tests/sim (real LiteRT inference on this host, slowed to the profile's speed; a
lumped thermal model). The app runs the SDK's LiveSession and ThermalGovernor (device_tests/sim/live_app.py).

  short      per profile (midrange, flagship), a fresh phone at ambient, thermal time at 1x: `--live SHORT` with the
             edits coming once per frame at 30 fps (a user typing faster than frames: the stream never waits) and
             once a second (prompt changes): fps p50 (frames shown per second), frame time p50 / p99, frames over the
             33.3 ms budget, time to the first frame after an edit p50 / p90;
  host       live fps on this host, no phone: the SDK's LiveSession on the bundle, full and preview decoder;
  sustained  per profile, a fresh phone at ambient, `--live` for MINUTES thermal minutes at `--thermal-speedup`
             (60 s real for 10 minutes at 10x), edits once per frame, with and without the governor: fps in thermal
             minute 1 and in the last one, their ratio (target >= 0.9 with the governor), the governor's
             decisions, the throttle onset and the skin temperature.

    python benchmarks/bench_live.py                          # everything (~8 min on 2 shared cores)
    python benchmarks/bench_live.py --no-sustained --no-append
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, record  # noqa: E402

DEFAULT_BUNDLE = ROOT / "out" / "bench" / "live" / "demo-int4-preview"


def ensure_bundle(path: Path) -> Path:
    """The demo INT4 bundle with its preview decoder (`banana convert ... --preview`), converted once."""
    if (path / "manifest.json").exists():
        return path
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "cli.py"), "convert", "--model", str(ROOT / "banana_sdk/weights/demo"),
                    "--quant", "int4", "--preview", "--out", str(path)], check=True, cwd=ROOT)
    print(f"converted {path} in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def live_run(bundle: Path, out: Path, profile_name: str, speedup: float, seconds: float, governor: bool,
             edit_ms: int | None, threads: int, target_fps: int) -> dict[str, Any]:
    """One `--live` run on a fresh simulated phone from ambient; returns RUN.json's device (with its wall time)."""
    from device_tests.adb import Adb
    from device_tests.adb_server import IsolatedAdbServer
    from device_tests.profile import ProfileSettings, profile
    from device_tests.sim.launcher import start_simulator
    from device_tests.sim.options import SimOptions

    out.parent.mkdir(parents=True, exist_ok=True)
    with IsolatedAdbServer() as server:
        old = os.environ.get("ANDROID_ADB_SERVER_PORT")
        os.environ["ANDROID_ADB_SERVER_PORT"] = str(server.port)
        try:
            with start_simulator(SimOptions(profile_name, thermal_speedup=speedup),
                                 lifetime_s=seconds + 600) as sim:
                adb = Adb(server.port)
                adb.connect(sim.serial)
                assert adb.wait_for(sim.serial, 10.0), f"{sim.serial} did not come online"
                settings = ProfileSettings(live_s=seconds, target_fps=target_fps, edit_ms=edit_ms, governor=governor,
                                           threads=threads, cooldown_c=None, timeout_s=300.0)
                t0 = time.perf_counter()
                run = profile(bundle, out, sim.serial, settings, adb=adb)
                wall = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
            else:
                os.environ["ANDROID_ADB_SERVER_PORT"] = old
    device = run["devices"][0]
    device["wall_s"] = wall
    s = device["live_summary"]
    print(f"{profile_name} {seconds:g}s x{speedup:g} governor={governor} edit_ms={edit_ms}: {s['shown']} shown, "
          f"fps median {s['fps']['median']}, last/first {s['fps']['last_over_first']}, {s['decisions']} decisions, "
          f"wall {wall:.0f} s", flush=True)
    return device


def minute(device: dict[str, Any], speedup: float, m: int) -> dict[str, float | None]:
    """Frames shown per second and median skin temperature in thermal minute `m` (1-based)."""
    live = device["live"]
    lo, hi = (m - 1) * 60.0 / speedup, m * 60.0 / speedup
    bins = [b["fps"] for b in live["fps"] if lo <= b["t_s"] < hi]
    skin = [t["skin_c"] for t in live["thermal"] if lo <= t["t_s"] < hi and t.get("skin_c") is not None]
    return {"fps": sum(bins) / len(bins) if bins else None, "skin_c": statistics.median(skin) if skin else None}


def governor_text() -> str:
    """The governor's default thresholds and holds, as the `about` text quotes them."""
    from banana_sdk.runtime.governor import GovernorConfig

    c = GovernorConfig()
    return (f"hot at a forecast >= {c.down_at:g}, cool <= {c.up_at:g}, hold {c.hold_ms / 1e3:g} s, settle "
            f"{c.settle_ms / 1e3:g} s after a step down, cool {c.cool_ms / 1e3:g} s")


def sustained_note(devices: dict[tuple[str, bool], dict[str, Any]], speedup: float, last: int) -> str:
    """What the governor did in each sustained run, and what it traded (from the runs' records)."""
    from banana_sdk.runtime.governor import GovernorConfig

    c = GovernorConfig()
    status_names = ("NONE", "LIGHT", "MODERATE", "SEVERE", "CRITICAL", "EMERGENCY", "SHUTDOWN")
    lines, ratios = [], []
    for (prof, governor), dev in devices.items():
        if not governor:
            continue
        live, s = dev["live"], dev["live_summary"]
        off = devices.get((prof, False))
        when = [x["t_ms"] / 60000.0 for x in live["decisions"]]
        heads = [x["headroom"] for x in live["decisions"] if x["headroom"] is not None]
        text = (f"{prof}: {len(when)} decision(s)" + (f" at thermal minute {when[0]:.2f}-{when[-1]:.2f} (headroom "
                f"forecast {min(heads):.2f}-{max(heads):.2f})" if when and heads else "") +
                f", max status {status_names[s['max_status'] or 0]}, minute-{last} skin "
                f"{_f(minute(dev, speedup, last)['skin_c'])} °C")
        a, b = minute(dev, speedup, 1)["fps"], minute(dev, speedup, last)["fps"]
        if a and b:
            ratios.append(f"{prof} {b / a:.3f}")
        if off is not None:
            so = off["live_summary"]
            text += (f"; without the governor max status {status_names[so['max_status'] or 0]}, minute-{last} skin "
                     f"{_f(minute(off, speedup, last)['skin_c'])} °C, fps {_f(minute(off, speedup, last)['fps'])} "
                     f"vs {_f(minute(dev, speedup, last)['fps'])} with it")
        lines.append(text + ".")
    verdict = f" Last/first-minute fps with the governor: {', '.join(ratios)} (target >= 0.9)." if ratios else ""
    return ("What the governor did: " + " ".join(lines) + verdict + " The ladder (docs/DESIGN.md §9.2) spends one "
            "5 % frame-rate step (x0.95 of the target, a cap that costs a phone below it nothing), then the preview "
            f"decoder at that rate: once the 10 s headroom forecast reaches {c.down_at:g} (held {c.hold_ms / 1e3:g} "
            f"s) it steps down, then waits {c.settle_ms / 1e3:g} s for the cooler level to show in the forecast "
            f"before the next step; it steps up at a forecast <= {c.up_at:g} held {c.cool_ms / 1e3:g} s. The "
            "preview decoder removes most of a frame's work (the full decoder is 4.0 of the frame's 4.7 GFLOP), so "
            "a phone that cannot reach the target with the full decoder (the midrange) runs faster on the preview "
            "level than in its first minute. At the last level the phone's own throttling takes over (this bundle "
            "has 1 step and one size). Without the governor the phone throttles its clock (the status's frequency "
            "cap) instead.")


def host_rows(bundle: Path, seconds: float, threads: int) -> list[list[str]]:
    """Live fps on this host (no phone, no pacing): a LiteRT LiveSession on the bundle at 1 step with the full and
    the preview decoder, fed a new prompt every 2 ms (an edit always waits), for `seconds` each."""
    from banana_sdk.runtime.litert import LiteRTPipeline
    from banana_sdk.runtime.live import Decoder, LiveConfig, LiveSession
    from device_tests.live import DEMO_PROMPTS

    rows = []
    for decoder in (Decoder.FULL, Decoder.PREVIEW):
        pipe = LiteRTPipeline.load(bundle, threads=threads)
        with LiveSession(pipe, LiveConfig(steps=1, decoder=decoder, fps_window=10_000)) as session:
            session.submit(DEMO_PROMPTS[0])
            session.wait_idle(30.0)  # warm: first calls, the encoder cache holds every prompt after one pass
            for prompt in DEMO_PROMPTS[1:]:
                session.submit(prompt)
                session.wait_idle(30.0)
            shown0 = session.stats().counters["shown"]
            frames: dict[int, Any] = {}
            k, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                k += 1
                session.submit(DEMO_PROMPTS[k % len(DEMO_PROMPTS)])
                latest = session.latest()
                if latest is not None and latest.shown_at >= t0:
                    frames[latest.index] = latest
                time.sleep(0.002)
            elapsed = time.perf_counter() - t0
            shown = session.stats().counters["shown"] - shown0
        work = sorted(f.encode_ms + f.denoise_ms + f.decode_ms for f in frames.values())
        decode = sorted(f.decode_ms for f in frames.values())
        latency = sorted(f.latency_ms for f in frames.values())

        def median(xs: list[float]) -> str:
            return _f(statistics.median(xs)) if xs else "–"

        rows.append([decoder.value, _f(shown / elapsed), median(work), median(decode), median(latency),
                     str(shown)])
        print(f"host live {decoder.value}: {shown / elapsed:.1f} fps", flush=True)
    return rows


def _f(x: float | None, fmt: str = ".1f") -> str:
    return "–" if x is None else format(x, fmt)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="demo INT4 bundle with --preview "
                    "(converted there if missing)")
    ap.add_argument("--profiles", nargs="+", default=["midrange", "flagship"])
    ap.add_argument("--short", type=float, default=20.0, help="seconds of each short run (thermal time 1x)")
    ap.add_argument("--minutes", type=float, default=10.0, help="thermal minutes of each sustained run")
    ap.add_argument("--thermal-speedup", type=float, default=10.0, help="thermal seconds per real second")
    ap.add_argument("--sustained-profiles", nargs="+", default=None, help="profiles of the sustained runs "
                    "(default: --profiles)")
    ap.add_argument("--target-fps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-short", action="store_true")
    ap.add_argument("--no-sustained", action="store_true")
    ap.add_argument("--no-host", action="store_true", help="skip the live fps on this host (no phone)")
    ap.add_argument("--host-seconds", type=float, default=10.0, help="seconds of each host live run")
    ap.add_argument("--work", type=Path, default=ROOT / "out" / "bench" / "live")
    ap.add_argument("--no-append", action="store_true", help="print only; do not record the results")
    ap.add_argument("--note", default="", help="a paragraph added to the run's notes (what else was measured)")
    args = ap.parse_args(argv)
    bundle = ensure_bundle(args.bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    tables, notes = [], []
    started = time.perf_counter()
    budget = 1000.0 / args.target_fps
    if not args.no_host:
        tables.append(Table(
            name="host", title="Live fps on this host (LiteRT, no phone)", replace_all=True,
            header=["decoder", "fps", "frame work ms p50", "decode ms p50", "edit to frame ms p50", "frames shown"],
            rows=host_rows(bundle, args.host_seconds, args.threads),
            about=f"`LiveSession` (banana_sdk/runtime/live.py) on the demo INT4 bundle with its preview decoder, "
                  f"1 step, {args.threads} threads per graph, decode overlapping the next denoise, on this host's CPU, "
                  f"fed a new prompt from the demo list every 2 ms for {args.host_seconds:g} s (an edit always "
                  "waits; text encodings cached after a warm-up pass): fps = frames shown per second; frame work = "
                  "encode + denoise + decode of a shown frame; edit to frame = from the `submit` to the frame shown."))
    if not args.no_short:
        rows = []
        for prof in args.profiles:
            for label, edit_ms in (("once per frame", None), ("once a second", 1000)):
                dev = live_run(bundle, args.work / f"short-{prof}-{edit_ms}.json", prof, 1.0, args.short, True,
                               edit_ms, args.threads, args.target_fps)
                s = dev["live_summary"]
                fr, tt = s["frame_ms"] or {}, s["ttff_ms"] or {}
                rows.append([prof, label, _f(s["fps"]["median"]), _f(fr.get("p50")), _f(fr.get("p99")),
                             _f(s["over_budget"]["pct"], ".0f"), _f(tt.get("p50"), ".0f"), _f(tt.get("p90"), ".0f"),
                             f"{s['outcomes']['shown']} / {s['outcomes']['cancelled']} / {s['outcomes']['stale']}",
                             str(s["decisions"])])
        tables.append(Table(
            name="short", title="Frame rate, frame time and time to the first frame after an edit (SIMULATED)", key=2,
            replace_all=True,
            header=["phone", "edits", "fps p50", "frame ms p50", "frame ms p99", f"% over {budget:.1f} ms",
                    "first frame after an edit p50 ms", "p90 ms", "frames shown / cancelled / stale",
                    "governor decisions"], rows=rows,
            about=f"`banana profile --live {args.short:g}s --target-fps {args.target_fps}` on a fresh simulated phone "
                  f"at ambient (thermal time 1x: no throttling in {args.short:g} s), the demo INT4 bundle with its "
                  f"preview decoder (`{manifest['model']['name']}`, {manifest['image']['size']} px), 1 step, "
                  f"{args.threads} threads per graph, governor on. Edits: the built-in list "
                  "(device_tests/live.py DEMO_PROMPTS, 16 lines, cycled), once per frame at the target "
                  f"(`--edit-ms` {round(budget)}: the stream always has an edit waiting) or once a second. fps = "
                  "frames shown per second of the app's clock (median over the run's seconds); frame time = encode "
                  "+ denoise + decode of a shown frame (what ADPF is told; the decode overlaps the next frame's "
                  "denoise, so fps can exceed 1000 / frame time); first frame after an edit = from the edit to the "
                  "first frame shown that started after it (device_tests/live_stats.py)."))
    if not args.no_sustained:
        rows, levels_text, devices = [], "–", {}
        seconds = args.minutes * 60.0 / args.thermal_speedup
        last = int(args.minutes)
        for prof in args.sustained_profiles or args.profiles:
            for governor in (True, False):
                dev = live_run(bundle, args.work / f"sustained-{prof}-{'gov' if governor else 'nogov'}.json", prof,
                               args.thermal_speedup, seconds, governor, None, args.threads, args.target_fps)
                devices[(prof, governor)] = dev
                s, live = dev["live_summary"], dev["live"]
                a, b = minute(dev, args.thermal_speedup, 1), minute(dev, args.thermal_speedup, last)
                ratio = b["fps"] / a["fps"] if a["fps"] and b["fps"] else None
                onset = s["throttle_onset"]
                onset_min = onset["t_s"] * args.thermal_speedup / 60.0 if onset else None
                fr = s["frame_ms"] or {}
                levels = live["levels"]
                levels_text = ", ".join(f"L{k} {lv['fps']:g} fps {lv['decoder']}" for k, lv in enumerate(levels))
                final = levels[s["final_level"]] if s["final_level"] < len(levels) else None
                level_text = (f"L{s['final_level']} ({final['fps']:g} fps, {final['decoder']})" if final else "–")
                rows.append([prof, "on" if governor else "off", _f(a["fps"]), _f(b["fps"]), _f(ratio, ".3f"),
                             f"{s['steps_down']} / {s['steps_up']}", level_text, _f(onset_min, ".1f"),
                             _f(a["skin_c"]), _f(b["skin_c"]), str(s["max_status"]), _f(fr.get("p99")),
                             f"{dev['wall_s']:.0f}"])
        tables.append(Table(
            name="sustained", title=f"{args.minutes:g}-minute live session, governor on and off (SIMULATED)", key=2,
            replace_all=True,
            header=["phone", "governor", "fps minute 1", f"fps minute {last}", "ratio", "decisions down / up",
                    "level at the end", "throttle onset (min)", "skin °C minute 1", f"skin °C minute {last}",
                    "max thermal status", "frame ms p99", "wall s"], rows=rows,
            about=f"`banana profile --live {seconds:g}s` on a fresh simulated phone from ambient (25 °C) started with "
                  f"`--thermal-speedup {args.thermal_speedup:g}`: {args.minutes:g} thermal minutes in "
                  f"{seconds:g} s of the app's clock (frames are paced and timed in real time; heat and the "
                  f"governor's clock run {args.thermal_speedup:g}x: {governor_text()}, one tick a thermal second "
                  f"with a 10 s headroom forecast), edits once per frame at {args.target_fps} fps, the demo INT4 "
                  f"bundle with its preview decoder, 1 step (governor levels: {levels_text}). fps minute m = frames "
                  "shown per second over thermal "
                  "minute m. Throttle onset: first governor tick at thermal status LIGHT or above. wall s = the "
                  "whole `profile` call (push, load, session, pull)."))
        notes.append(sustained_note(devices, args.thermal_speedup, last))
    if args.note:
        notes.append(args.note)
    notes.append(f"Total wall time of this run: {time.perf_counter() - started:.0f} s.")
    # the note is in the notes: the command that reproduces the figures shows it as '…'
    argv = [Path(sys.executable).name, *("…" if a == args.note and args.note else a for a in sys.argv)]
    record("live", tables, notes="\n\n".join(notes), append=not args.no_append,
           command=" ".join(shlex.quote(a) for a in argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

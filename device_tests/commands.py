"""`banana devices | push | profile | report | sim start`: parse arguments, call the library, print."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import click

from banana_sdk.errors import ConfigError
from device_tests.contract import Delegate


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def devices(as_json: bool) -> None:
    """List attached devices: model, SoC, ABI, API level, RAM, sample app installed."""
    from device_tests.adb import Adb
    from device_tests.devices import list_devices

    found = list_devices(Adb())
    if as_json:
        click.echo(json.dumps([d.to_dict() for d in found], indent=2))
        return
    if not found:
        click.echo("no devices attached (USB debugging, `adb connect HOST:PORT`, or `banana sim start`)")
        return
    click.echo(f"{'SERIAL':<22} {'STATE':<9} {'MODEL':<24} {'SOC':<18} {'ABI':<12} {'API':>3} {'RAM':>7}  APP  SIM")
    for d in found:
        ram = f"{d.ram_mb / 1024:.1f}G" if d.ram_mb else "?"
        click.echo(f"{d.serial:<22} {d.state:<9} {d.model[:24]:<24} {d.soc[:18]:<18} {d.abi:<12} "
                   f"{d.sdk or '?':>3} {ram:>7}  {'yes' if d.app_installed else 'no ':<4} "
                   f"{'yes' if d.simulated else 'no'}")


@click.command()
@click.option("--bundle", type=click.Path(path_type=Path), required=True, help="Bundle directory.")
@click.option("--serial", help="Device serial, comma list, or `all` (default: ANDROID_SERIAL or the only one).")
def push(bundle: Path, serial: str | None) -> None:
    """Push a bundle to /data/local/tmp/banana/<hash>/ (unchanged files skipped, all verified)."""
    from device_tests.adb import Adb
    from device_tests.devices import resolve_serials
    from device_tests.push import bundle_files, push_bundle

    bundle_files(bundle)
    adb = Adb()
    for s in resolve_serials(adb, serial):
        r = push_bundle(adb.device(s), bundle)
        click.echo(f"{s}: {len(r.pushed)} pushed ({r.bytes_pushed / 1e6:.2f} MB, {r.mb_per_s:.1f} MB/s), "
                   f"{len(r.skipped)} unchanged -> {r.remote_dir} (verified)")


@click.command()
@click.option("--bundle", type=click.Path(path_type=Path), required=True, help="Bundle directory.")
@click.option("--serial", help="Device serial, comma list, or `all` (in parallel).")
@click.option("--prompt", default=None, help="Prompt (default: the demo prompt).")
@click.option("--steps", type=int, default=None, help="Denoising steps (default: the bundle's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--runs", type=int, default=5, show_default=True, help="Timed runs (per launch when sustained).")
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed runs first.")
@click.option("--threads", type=int, default=4, show_default=True, help="CPU threads on the device.")
@click.option("--delegate", type=click.Choice([d.value for d in Delegate]), default="auto", show_default=True)
@click.option("--sustained", default=None, help="Run continuously this long (e.g. 10m) and find the throttle onset.")
@click.option("--cooldown", "cooldown_c", type=float, default=38.0, show_default=True,
              help="Wait until skin/battery <= this many C before measuring.")
@click.option("--no-cooldown", is_flag=True, help="Skip the cool-down gate.")
@click.option("--cooldown-timeout", type=float, default=300.0, show_default=True, help="Seconds.")
@click.option("--no-telemetry", is_flag=True, help="No 1 Hz thermal/memory sampling (overhead baseline).")
@click.option("--throttle-rise", type=float, default=10.0, show_default=True, help="Percent latency rise = throttling.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds per launch.")
@click.option("--reconnect-timeout", type=float, default=20.0, show_default=True,
              help="Seconds a device may be away (unplugged, adb restarting) before its run is given up.")
@click.option("--benchmark-model", type=click.Path(path_type=Path), default=None,
              help="Use LiteRT's benchmark_model binary (per graph) instead of the sample app.")
@click.option("--peel", "peel_specs", multiple=True,
              help="A peel (PATH[:WEIGHT]) pushed beside the bundle and applied by the app; repeatable (stacked).")
@click.option("--subject", "subject_names", multiple=True,
              help="A subject (`banana subject add`) named in the prompt, pushed beside the bundle; repeatable (<= 5).")
@click.option("--subjects-dir", type=click.Path(path_type=Path), default=None,
              help="Subject store (default: $BANANA_SUBJECTS or ~/.banana/subjects).")
@click.option("--size", type=int, default=None,
              help="Image side (default: the bundle's); above it through the bundle's tile signature, e.g. 4096.")
@click.option("--live", "live", default=None,
              help="One live session this long (e.g. 60s, 10m): edits paced to --target-fps, the thermal governor.")
@click.option("--target-fps", type=int, default=30, show_default=True,
              help="Live: the frame rate asked for; frames over 1000/N ms are over budget.")
@click.option("--prompts", "prompts_file", type=click.Path(path_type=Path), default=None,
              help="Live: a UTF-8 file, one prompt per line, edited in order (default: a built-in list).")
@click.option("--edit-ms", type=int, default=None, help="Live: ms between edits (default: 1000 / --target-fps).")
@click.option("--no-governor", is_flag=True, help="Live: no thermal governor (full quality throughout).")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="Run file (RUN.json).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@click.option("--trace", is_flag=True,
              help="Record a Perfetto trace on the device during the runs, pulled to RUN.trace-SERIAL.pftrace.")
def profile(bundle: Path, serial: str | None, prompt: str | None, steps: int | None, seed: int, runs: int,
            warmup: int, threads: int, delegate: str, sustained: str | None, cooldown_c: float, no_cooldown: bool,
            cooldown_timeout: float, no_telemetry: bool, throttle_rise: float, timeout: float,
            reconnect_timeout: float, benchmark_model: Path | None, peel_specs: tuple[str, ...],
            subject_names: tuple[str, ...], subjects_dir: Path | None, size: int | None, live: str | None,
            target_fps: int, prompts_file: Path | None, edit_ms: int | None, no_governor: bool, out: Path,
            force: bool, trace: bool) -> None:
    """Push BUNDLE and measure it on devices: latency, memory, thermals; writes RUN.json (+ journal)."""
    from banana_sdk.peels.commands import parse_weighted
    from banana_sdk.subjects.store import SubjectStore
    from device_tests import profile as prof
    from device_tests.adb import Adb
    from device_tests.live import read_prompts

    if live is None and (prompts_file is not None or edit_ms is not None or no_governor):
        raise ConfigError("--prompts, --edit-ms and --no-governor go with --live DURATION")
    settings = prof.ProfileSettings(
        prompt=prompt if prompt is not None else prof.DEFAULT_PROMPT, steps=steps, seed=seed,
        delegate=Delegate(delegate), threads=threads, warmup=warmup, runs=runs,
        sustained_s=prof.parse_duration(sustained) if sustained else None,
        cooldown_c=None if no_cooldown else cooldown_c, cooldown_timeout_s=cooldown_timeout,
        telemetry_interval_s=None if no_telemetry else 1.0, throttle_rise_pct=throttle_rise, timeout_s=timeout,
        benchmark_model=benchmark_model, peels=tuple(parse_weighted(spec) for spec in peel_specs),
        subjects=SubjectStore(subjects_dir).files(subject_names) if subject_names else (), size=size,
        live_s=prof.parse_duration(live) if live else None, target_fps=target_fps,
        prompts=read_prompts(prompts_file) if prompts_file is not None else (),
        prompts_file=str(prompts_file) if prompts_file is not None else None, edit_ms=edit_ms,
        governor=not no_governor, trace=trace)
    if not 0 <= reconnect_timeout < float("inf"):
        raise ConfigError(f"--reconnect-timeout must be a finite number >= 0, got {reconnect_timeout}")
    try:
        result = prof.profile(bundle, out, serial, settings, Adb(reconnect_s=reconnect_timeout),
                              command=["banana", *sys.argv[1:]], overwrite=force)
    except KeyboardInterrupt as exc:  # every app was stopped and what was measured written (unless it came before)
        if "what was measured is in" in str(exc):
            click.echo(f"interrupted: the apps were stopped; what was measured is in {out}", err=True)
        raise
    for d in result["devices"]:
        if d.get("live_summary"):
            click.echo(_live_line(d) + (" [simulated]" if d["simulated"] else ""))
            continue
        e2e = d["stats"]["e2e_ms"]
        line = f"{d['serial']}: {len(d['runs'])} runs"
        if e2e:
            line += f", e2e median {e2e['median']:.1f} ms (p90 {e2e['p90']:.1f})"
        onset = (d.get("sustained") or {}).get("throttle_onset")
        if d.get("sustained"):
            line += f", throttle onset {onset['t_s']:.0f} s" if onset else ", no throttling detected"
        click.echo(line + (" [simulated]" if d["simulated"] else ""))
    for d in result["devices"]:
        if d.get("trace"):
            from device_tests.trace_report import trace_line

            click.echo(trace_line(d, out))
    click.echo(f"wrote {out}")


def _live_line(d: dict) -> str:
    s = d["live_summary"]
    line = f"{d['serial']}: live {s['ran_s']} s, {s['shown']} frames shown"
    if s["fps"]["median"] is not None:
        line += f", {s['fps']['median']:.1f} fps median (target {s['target_fps']:g})"
    if s["frame_ms"]:
        line += (f", frame p50 {s['frame_ms']['p50']:.1f} / p99 {s['frame_ms']['p99']:.1f} ms"
                 f" ({s['over_budget']['pct']:.0f}% over {s['budget_ms']:.1f} ms)")
    if s["ttff_ms"]:
        line += f", first frame after an edit p50 {s['ttff_ms']['p50']:.0f} ms"
    ratio = s["fps"]["last_over_first"]
    if ratio is not None:
        line += f", last/first window fps {ratio:.2f}"
    return line + f", {s['decisions']} governor decision(s)" + ("" if s["governor"] else " (governor off)")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True, help="HTML file to write.")
def report(runs: tuple[Path, ...], out: Path) -> None:
    """Render RUN.json files (or the journal of a run that died) into one HTML report."""
    from device_tests.report import write_report

    click.echo(f"wrote {write_report(list(runs), out)}")


@click.group()
def sim() -> None:
    """The simulated Android device (a real adb endpoint on loopback)."""


@sim.command("start")
@click.option("--profile", "profile_name", default="midrange", show_default=True, help="midrange or flagship.")
@click.option("--port", type=int, default=None, help="adb port (default: a free emulator port 5555-5585).")
@click.option("--lifetime", default="1h", show_default=True, help="Stop by itself after this long.")
@click.option("--no-app", is_flag=True, help="Simulate a phone without the sample app.")
@click.option("--abi", default=None, help="Primary ABI to report (e.g. armeabi-v7a for a wrong-ABI phone).")
@click.option("--storage-mb", type=float, default=None, help="Free storage on /data.")
@click.option("--thermal-speedup", type=float, default=1.0, show_default=True,
              help="Thermal seconds per real second (heat up in seconds, not minutes).")
@click.option("--start-temp", type=float, default=None, help="Initial temperature in C (default: ambient).")
@click.option("--write-mbps", type=float, default=None, help="Limit push speed to this many MB/s (a slow link).")
@click.option("--charging-w", type=float, default=0.0, show_default=True,
              help="Heat of charging the battery in W (a phone on a fast charger stays warm: try 1.5).")
@click.option("--quirk", "quirks", multiple=True, metavar="NAME",
              help="Behave like another device class (repeatable): no-shell-v2, old-benchmark-model, no-thermal-hal, "
                   "gnu-coreutils, no-getprop, failing-getprop, failing-pm, failing-am, no-perfetto.")
def sim_start(profile_name: str, port: int | None, lifetime: str, no_app: bool, abi: str | None,
              storage_mb: float | None, thermal_speedup: float, start_temp: float | None,
              write_mbps: float | None, charging_w: float, quirks: tuple[str, ...]) -> None:
    """Run a simulated device in the foreground until Ctrl-C or its lifetime ends (as a child process)."""
    from device_tests.adb_server import server_port
    from device_tests.orphan_guard import guarded
    from device_tests.profile import parse_duration
    from device_tests.sim.launcher import ROOT, sim_command, sim_env
    from device_tests.sim.options import EMULATOR_PORTS, SimOptions, free_port
    from device_tests.sim.quirks import parse_quirks

    options = SimOptions(profile_name, not no_app, abi, storage_mb, thermal_speedup, start_temp, write_mbps,
                         parse_quirks(quirks), charging_w)
    options.resolve()  # an unknown profile or ABI (listing the choices) or a negative charging heat fails here
    chosen = port if port is not None else free_port(emulator=True)
    cmd = sim_command(options, chosen, parse_duration(lifetime), server_port())
    # guarded: the simulator dies with us even on SIGKILL; SIGTERM to us stops it like Ctrl-C (it then removes
    # its temporary data dir)
    process = subprocess.Popen(guarded(cmd), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=sim_env(),
                               cwd=ROOT, text=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for line in process.stdout:
            if line.startswith("READY "):
                info = json.loads(line[len("READY "):])
                how = ("the adb server finds it by itself" if info["port"] in EMULATOR_PORTS
                       else f"run `adb connect 127.0.0.1:{info['port']}`")
                click.echo(f"simulated {profile_name} device {info['serial']} listening on 127.0.0.1:{info['port']} "
                           f"({how}); Ctrl-C to stop")
            else:
                click.echo(line, nl=False)
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(10)
        click.echo("simulator stopped")
        return
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code != 0:
        sys.exit(code)  # the simulator printed its one-line error


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM to `banana sim start`: stop the simulator the way Ctrl-C does."""
    raise KeyboardInterrupt


COMMANDS = (devices, push, profile, report, sim)

"""Device harness figures on a simulated device through the real adb server:

  * harness overhead: median end-to-end latency the app measures with 1 Hz telemetry sampling on vs off
    (ratio > 1 = sampling slows the model down), the cost of one telemetry sample (wall time, and the CPU time it
    takes the simulated phone's process, the adb server and the harness), and the profile wall time;
  * push throughput: the harness's push (64 KiB sync chunks; hashing and verification counted separately)
    against plain `adb push` of the same directory.

    python benchmarks/bench_harness.py                 # tiny bundle + 64 MB payload, 5 rounds
    python benchmarks/bench_harness.py --bundle out/demo/bundle --push-mb 256 --rounds 5
    python benchmarks/bench_harness.py --only overhead --rounds 10       # the overhead table alone

Rounds alternate the order of the two modes so drift of the shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, record  # noqa: E402


def build_payload(bundle: Path, extra_mb: int, workdir: Path) -> Path:
    """A copy of `bundle` plus a random `payload.bin` of `extra_mb` MB listed in its manifest."""
    from banana_sdk.fileio import atomic_write_json, sha256_file

    out = workdir / "payload-bundle"
    shutil.copytree(bundle, out)
    with open(out / "payload.bin", "wb") as handle:
        for _ in range(extra_mb):
            handle.write(os.urandom(1_000_000))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["payload.bin"] = {"sha256": sha256_file(out / "payload.bin"), "bytes": extra_mb * 1_000_000}
    atomic_write_json(out / "manifest.json", manifest)
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample_cost(device, pids: dict[str, int], with_pss: bool, n: int = 50) -> dict[str, float]:  # noqa: ANN001
    """Per telemetry tick: median wall ms, and CPU ms of each process in `pids` plus this one (`harness`)."""
    from device_tests.telemetry import read_sample
    from device_tests.thermal_source import probe_source

    source = probe_source(device)
    read_sample(device, source, 0.0, with_pss=with_pss)  # warm
    before = {name: cpu_s(pid) for name, pid in pids.items()}
    mine = time.process_time()
    walls = []
    for _ in range(n):
        t0 = time.perf_counter()
        read_sample(device, source, 0.0, with_pss=with_pss)
        walls.append((time.perf_counter() - t0) * 1e3)
    out = {name: (cpu_s(pid) - before[name]) * 1e3 / n for name, pid in pids.items()}
    out["harness"] = (time.process_time() - mine) * 1e3 / n
    out["wall"] = statistics.median(walls)
    return out


def overhead(adb, serial: str, bundle: Path, rounds: int, runs: int, workdir: Path,  # noqa: ANN001
             pids: dict[str, int]) -> tuple[Table, str]:
    from device_tests.profile import ProfileSettings, profile

    samples: dict[str, list[float]] = {"off": [], "on": []}
    paired: list[float] = []  # per round: p90 on / p90 off
    walls: dict[str, list[float]] = {"off": [], "on": []}
    ticks = 0
    for k in range(rounds):
        per_round: dict[str, list[float]] = {}
        for mode in (("off", "on") if k % 2 == 0 else ("on", "off")):
            settings = ProfileSettings(runs=runs, warmup=2, cooldown_c=None, threads=2,
                                       telemetry_interval_s=1.0 if mode == "on" else None)
            start = time.perf_counter()
            run = profile(bundle, workdir / f"overhead-{k}-{mode}.json", serial, settings, adb=adb)
            walls[mode].append(time.perf_counter() - start)
            device = run["devices"][0]
            samples[mode] += [r["e2e_ms"] for r in device["runs"]]
            ticks += len(device["telemetry"]) if mode == "on" else 0
            per_round[mode] = [r["e2e_ms"] for r in device["runs"]]
        paired.append(_p90(per_round["on"]) / _p90(per_round["off"]))
    device = adb.device(serial)
    tick, pss_tick = sample_cost(device, pids, False), sample_cost(device, pids, True)
    off, on = statistics.median(samples["off"]), statistics.median(samples["on"])
    rows = [["median end-to-end latency (ms)", f"{off:.2f}", f"{on:.2f}", f"{on / off:.3f}"],
            ["p90 end-to-end latency (ms)", f"{_p90(samples['off']):.2f}", f"{_p90(samples['on']):.2f}",
             f"{_p90(samples['on']) / _p90(samples['off']):.3f}"],
            ["profile wall time per run file (s)", f"{statistics.median(walls['off']):.2f}",
             f"{statistics.median(walls['on']):.2f}",
             f"{statistics.median(walls['on']) / statistics.median(walls['off']):.3f}"]]
    return (Table("overhead", ["metric", "sampling off", "sampling on (1 Hz)", "ratio on/off"], rows,
                  title="Overhead of telemetry sampling"),
            f"{len(samples['on'])} timed runs per mode over {rounds} rounds, {ticks} telemetry samples; p90 on/off "
            f"per round (on and off of the same round): median {statistics.median(paired):.3f}, range "
            f"{min(paired):.3f}-{max(paired):.3f}. One telemetry tick (one shell round trip: the thermal source's "
            f"files and `dumpsys thermalservice`; `dumpsys meminfo` every 5th tick): wall {tick['wall']:.1f} ms; "
            f"CPU ms, simulated phone (the process that runs the inference) / adb server / harness: "
            f"{tick['sim']:.2f} / {tick['adb']:.2f} / {tick['harness']:.2f}, with the PSS read "
            f"{pss_tick['sim']:.2f} / {pss_tick['adb']:.2f} / {pss_tick['harness']:.2f}.")


def _p90(values: list[float]) -> float:
    from device_tests.stats import percentile

    return percentile(values, 90)


def push_throughput(adb, serial: str, payload: Path, rounds: int) -> tuple[Table, str]:  # noqa: ANN001
    from device_tests.adb_server import adb_binary
    from device_tests.push import bundle_files, push_bundle

    device = adb.device(serial)
    total = sum(f.size for f in bundle_files(payload)[1])
    harness, harness_total, plain, skip = [], [], [], []
    for k in range(rounds):
        for mode in (("harness", "adb") if k % 2 == 0 else ("adb", "harness")):
            device.shell(["rm", "-rf", "/data/local/tmp/banana", "/data/local/tmp/plain"])
            if mode == "harness":
                start = time.perf_counter()
                report = push_bundle(device, payload)
                harness_total.append(time.perf_counter() - start)
                harness.append(report.seconds)
                start = time.perf_counter()
                again = push_bundle(device, payload)
                skip.append(time.perf_counter() - start)
                assert not again.pushed
            else:
                start = time.perf_counter()
                subprocess.run([adb_binary(), "-s", serial, "push", str(payload), "/data/local/tmp/plain"],
                               check=True, capture_output=True, timeout=600)
                plain.append(time.perf_counter() - start)
    mb = total / 1e6

    def rate(times: list[float]) -> str:
        return f"{mb / statistics.median(times):.1f}"

    rows = [["harness push, transfer only (64 KiB sync chunks)", rate(harness), f"{statistics.median(harness):.3f}"],
            ["harness push incl. sha256 on both sides + verify", rate(harness_total),
             f"{statistics.median(harness_total):.3f}"],
            ["plain `adb push DIR`", rate(plain), f"{statistics.median(plain):.3f}"],
            ["harness push again (all files unchanged, skipped)", "–", f"{statistics.median(skip):.3f}"]]
    return (Table("push", ["method", "MB/s", "seconds"], rows, title="Push throughput vs plain `adb push`"),
            f"{mb:.1f} MB ({len(bundle_files(payload)[1])} files) per push, median of {rounds} rounds; "
            f"transfer-only / plain adb push = {statistics.median(plain) / statistics.median(harness):.2f}x.")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=None, help="bundle to use (default: convert the tiny preset)")
    ap.add_argument("--profile", default="midrange", help="simulator profile")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=300, help="timed runs per profile (sampling must span many)")
    ap.add_argument("--push-mb", type=int, default=64, help="payload added to the bundle for the push figures")
    ap.add_argument("--only", choices=("overhead", "push"), default=None, help="measure one table (the other keeps "
                    "its stored rows)")
    args = ap.parse_args()

    from device_tests.adb import Adb
    from device_tests.adb_server import IsolatedAdbServer
    from device_tests.sim.launcher import start_simulator
    from device_tests.sim.options import SimOptions

    with tempfile.TemporaryDirectory(prefix="bench-harness-") as tmp:
        workdir = Path(tmp)
        bundle = args.bundle
        if bundle is None:
            from converters.convert import convert

            bundle = convert(workdir / "tiny", preset="tiny", quant="fp32")
        payload = build_payload(bundle, args.push_mb, workdir) if args.only != "overhead" else None
        with IsolatedAdbServer() as server:
            os.environ["ANDROID_ADB_SERVER_PORT"] = str(server.port)
            with start_simulator(SimOptions(args.profile, storage_mb=4 * args.push_mb + 512), lifetime_s=1800) as sim:
                adb = Adb(server.port)
                adb.connect(sim.serial)
                pids = {"sim": sim.process.pid, "adb": server.process.pid}
                parts = []
                if args.only != "push":
                    parts.append(overhead(adb, sim.serial, bundle, args.rounds, args.runs, workdir, pids))
                if payload is not None:
                    parts.append(push_throughput(adb, sim.serial, payload, args.rounds))
    note = (f"Simulated `{args.profile}` device (real LiteRT inference on this host, simulated phone speed), "
            "through the Debian adb 29.0.6 server on loopback.")
    record("harness", [table for table, _ in parts], notes="\n\n".join([note, *(text for _, text in parts)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

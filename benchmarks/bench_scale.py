"""Harness scale: many simulated phones profiled at once from one host, and a long soak on one phone.

    python benchmarks/bench_scale.py                         # 8 phones x 20 runs, then a 30-minute soak
    python benchmarks/bench_scale.py --phones 8 --runs 20 --soak-min 0    # the fleet table alone
    python benchmarks/bench_scale.py --phones 0 --soak-min 30             # the soak table alone

Fleet: N simulated phones (profiles alternating midrange / flagship, each its own process with real LiteRT
inference) behind one real adb server; one `banana profile --serial S1,...,SN` call (the library's `profile`, one
thread per phone) with telemetry at 1 Hz. Lost results = runs asked for - timed runs in RUN.json; every device
must end complete. The phones share this host's 2 cores, so their latencies are slower than alone: the table says
how much (median of the fleet / median of one phone alone, measured first in the same run).

Soak: one phone, back-to-back profile launches (10 timed runs each, telemetry on) for the given minutes, in this
process; the harness's RSS (this process) and the adb server's RSS are sampled after every launch. The slope is
a least-squares line over the second half of the soak (after allocator and import warm-up), in MiB per hour.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, record  # noqa: E402


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of a process in MiB (from /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def slope_per_hour(times_s: list[float], values: list[float]) -> float:
    """Least-squares slope of values over time, in units per hour (0 for fewer than 2 points)."""
    if len(times_s) < 2:
        return 0.0
    mt, mv = statistics.fmean(times_s), statistics.fmean(values)
    var = sum((t - mt) ** 2 for t in times_s)
    return 0.0 if var == 0 else 3600.0 * sum((t - mt) * (v - mv) for t, v in zip(times_s, values, strict=True)) / var


def device_runs(run: dict) -> dict[str, list[float]]:
    """{serial: end-to-end ms of each timed run} of a RUN.json."""
    return {d["serial"]: [r["e2e_ms"] for r in d["runs"]] for d in run["devices"]}


def fleet(adb, sims: list, bundle: Path, runs: int, workdir: Path) -> tuple[Table, str]:  # noqa: ANN001
    from device_tests.profile import ProfileSettings, profile

    settings = ProfileSettings(runs=runs, cooldown_c=None, threads=1)
    alone = profile(bundle, workdir / "alone.json", sims[0].serial, settings, adb=adb)
    alone_ms = statistics.median(device_runs(alone)[sims[0].serial])
    serials = ",".join(s.serial for s in sims)
    start = time.perf_counter()
    run = profile(bundle, workdir / "fleet.json", serials, settings, adb=adb)
    wall = time.perf_counter() - start
    got = device_runs(run)
    asked = runs * len(sims)
    timed = sum(len(v) for v in got.values())
    complete = sum(bool(d["complete"]) for d in run["devices"])
    samples = sum(len(d.get("telemetry", [])) for d in run["devices"])
    fleet_ms = statistics.median([ms for v in got.values() for ms in v])
    same = [s.serial for s in sims if s.options.profile == sims[0].options.profile]  # the alone phone's kind
    same_ms = statistics.median([ms for s in same for ms in got.get(s, [])] or [float("nan")])
    rows = [[f"{len(sims)} phones at once", f"{complete}/{len(sims)}", f"{timed}/{asked}", asked - timed,
             f"{wall:.1f}", f"{fleet_ms:.1f}", f"{same_ms / alone_ms:.2f}", samples]]
    table = Table("fleet", ["profile call", "devices complete", "timed runs", "lost", "wall s",
                            "median e2e ms", f"{sims[0].options.profile}: fleet / alone", "telemetry samples"], rows,
                  title="Many phones from one host", replace_all=True)
    kinds = ", ".join(sorted({s.options.profile for s in sims}))
    note = (f"Fleet: {len(sims)} simulated phones ({kinds}, alternating) "
            f"on one adb server, one `profile` call, {runs} timed runs each, telemetry at 1 Hz, no cool-down gate, "
            f"1 CPU thread per app. One phone alone first: median {alone_ms:.1f} ms.")
    return table, note


def soak(adb, serial: str, bundle: Path, minutes: float, workdir: Path, adb_pid: int) -> tuple[Table, str]:  # noqa: ANN001
    from device_tests.profile import ProfileSettings, profile

    settings = ProfileSettings(runs=10, cooldown_c=None, threads=1)
    start = time.monotonic()
    t, harness, server, launches, timed, lost = [], [], [], 0, 0, 0
    while time.monotonic() - start < minutes * 60:
        run = profile(bundle, workdir / "soak.json", serial, settings, adb=adb)
        got = len(run["devices"][0]["runs"])
        launches, timed, lost = launches + 1, timed + got, lost + settings.runs - got
        t.append(time.monotonic() - start)
        harness.append(rss_mib())
        server.append(rss_mib(adb_pid))
    half = len(t) // 2
    rows = [["harness (this process)", f"{harness[0]:.1f}", f"{harness[-1]:.1f}",
             f"{slope_per_hour(t[half:], harness[half:]):+.2f}", f"{slope_per_hour(t, harness):+.2f}"],
            ["adb server", f"{server[0]:.1f}", f"{server[-1]:.1f}",
             f"{slope_per_hour(t[half:], server[half:]):+.2f}", f"{slope_per_hour(t, server):+.2f}"]]
    table = Table("soak", ["process", "RSS after launch 1 (MiB)", "RSS at the end (MiB)",
                           "slope, 2nd half (MiB/h)", "slope, all (MiB/h)"], rows,
                  title=f"Soak: {minutes:g} minutes on one phone", replace_all=True)
    note = (f"Soak: {minutes:g} min, {launches} profile launches of 10 timed runs ({timed} timed runs, {lost} lost), "
            f"telemetry at 1 Hz, RSS sampled after each launch; slope = least-squares line.")
    return table, note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=None, help="bundle to profile (default: convert the tiny preset)")
    ap.add_argument("--phones", type=int, default=8, help="simulated phones profiled at once (0: no fleet table)")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per phone in the fleet")
    ap.add_argument("--soak-min", type=float, default=30.0, help="soak minutes on one phone (0: no soak table)")
    ap.add_argument("--no-append", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()

    from device_tests.adb import Adb
    from device_tests.adb_server import IsolatedAdbServer
    from device_tests.sim.launcher import start_simulator
    from device_tests.sim.options import SimOptions

    parts = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = Path(tmp)
        bundle = args.bundle
        if bundle is None:
            from converters.convert import convert

            bundle = convert(workdir / "tiny", preset="tiny", quant="fp32")
        with IsolatedAdbServer() as server:
            os.environ["ANDROID_ADB_SERVER_PORT"] = str(server.port)
            adb = Adb(server.port)
            lifetime = 600 + 60 * args.soak_min
            if args.phones:
                profiles = ("midrange", "flagship")
                sims = [start_simulator(SimOptions(profiles[i % 2]), lifetime_s=lifetime) for i in range(args.phones)]
                try:
                    for sim in sims:
                        adb.connect(sim.serial)
                        adb.wait_for(sim.serial, 10.0)
                    parts.append(fleet(adb, sims, bundle, args.runs, workdir))
                finally:
                    for sim in sims:
                        sim.stop()
            if args.soak_min > 0:
                with start_simulator(SimOptions("midrange"), lifetime_s=lifetime) as sim:
                    adb.connect(sim.serial)
                    adb.wait_for(sim.serial, 10.0)
                    parts.append(soak(adb, sim.serial, bundle, args.soak_min, workdir, server.process.pid))
    note = ("Simulated phones (real LiteRT inference on this host), the Debian adb server on loopback; "
            "the harness is the library's `profile` in this process.")
    record("scale", [table for table, _ in parts], notes="\n\n".join([note, *(text for _, text in parts)]),
           append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())

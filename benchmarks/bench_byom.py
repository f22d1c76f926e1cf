"""BYOM figures: diffusers pipelines (random weights, built locally) through `banana convert --diffusers`.

    python benchmarks/bench_byom.py                                   # tiny-sd and mobile-dit, fp32 + int4
    python benchmarks/bench_byom.py --pipelines tiny-sd --quants int4

Per pipeline and quant: conversion wall time, CPU time and peak RSS of its own `banana convert` subprocess,
bundle size and the int4/fp32 ratio, PSNR / cosine per signature (LiteRT vs the model's own diffusers
forward), LiteRT end-to-end generation time at the bundle's default steps, and GPU pre-flight coverage
(ops the GPU accelerator takes / ops, per signature) from the manifest's `delegate_plan`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, median_ms, record  # noqa: E402


def convert_measured(folder: Path, quant: str, out: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS GiB) of one `banana convert --diffusers` subprocess."""
    cmd = [sys.executable, str(ROOT / "cli.py"), "convert", "--diffusers", str(folder), "--quant", quant,
           "--out", str(out), "--force"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"conversion failed: {' '.join(cmd)}\n{output.decode()[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20


def generation_ms(bundle: Path, runs: int, threads: int) -> float:
    from banana_sdk.runtime.litert import LiteRTPipeline

    lite = LiteRTPipeline.load(bundle, threads=threads)
    lite.run("a photo of a red banana on a blue table", seed=0)  # warm-up
    return median_ms([lite.run("a photo of a red banana on a blue table", seed=i).e2e_ms for i in range(runs)])


def coverage(manifest: dict) -> str:
    """GPU (ML Drift) ops delegated / total per signature, from the manifest's delegate plan."""
    plans = manifest.get("delegate_plan") or {}
    if not plans:
        return "no delegate plan"
    return "; ".join(f"{n} {p['gpu']['delegated']}/{p['gpu']['total']}" for n, p in plans.items())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipelines", default="tiny-sd,mobile-dit")
    parser.add_argument("--quants", default="fp32,int4")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from banana_sdk.bundle.reader import load_manifest
    from converters.byom.fixtures import PRESETS, build_pipeline

    rows = []
    for preset in args.pipelines.split(","):
        work = Path(tempfile.mkdtemp(prefix="bench-byom-"))
        try:
            folder = build_pipeline(work / preset, preset)
            spec = PRESETS[preset]
            sizes = {}
            for quant in args.quants.split(","):
                out = work / f"bundle-{quant}"
                wall, cpu, rss = convert_measured(folder, quant, out)
                manifest = load_manifest(out)
                sizes[quant] = sum(f["bytes"] for f in manifest["files"].values())
                ratio = f"{sizes[quant] / sizes['fp32']:.3f}" if "fp32" in sizes else "-"
                gate = "; ".join(f"{n} {g['psnr_db']:.1f} dB / {g['cosine']:.5f}" for n, g in manifest["gate"].items())
                e2e = generation_ms(out, args.runs, args.threads)
                steps = manifest["sampler"]["default_steps"]
                rows.append([f"{preset} ({spec.kind}, {spec.image_size}px, {manifest['sampler']['kind']})", quant,
                             f"{sizes[quant] / 2**20:,.2f} MiB", ratio, f"{wall:.1f} s", f"{cpu:.1f} s",
                             f"{rss:.2f} GiB", gate, f"{e2e:.0f} ms ({steps} steps)", coverage(manifest)])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    header = ["pipeline", "quant", "bundle", "vs fp32", "convert wall", "convert CPU", "peak RSS",
              "PSNR / cosine vs diffusers forward", f"LiteRT e2e ({args.threads} threads, median)",
              "GPU pre-flight coverage"]
    record("byom", [Table("pipelines", header, rows, key=2, about="Diffusers pipelines with random weights, "
                          "built locally (`converters/byom/fixtures.py`), converted by `banana convert --diffusers`.")])


if __name__ == "__main__":
    main()

"""Converter figures: bundle size and accuracy per quant, LiteRT vs PyTorch latency, conversion cost.

    python benchmarks/bench_convert.py                      # demo at every quant (+ latency)
    python benchmarks/bench_convert.py --presets mobile --quants fp32,int4 --no-latency
    python benchmarks/bench_convert.py --presets nano-banana-2 --quants int4 --no-latency

Each conversion runs in its own `banana convert` subprocess so its peak RSS (ru_maxrss) is its own.
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


def convert_measured(source: list[str], quant: str, out: Path, block: int) -> tuple[float, float]:
    """(wall seconds, peak RSS GiB) of one `banana convert` subprocess."""
    cmd = [sys.executable, str(ROOT / "cli.py"), "convert", *source, "--quant", quant, "--block-size", str(block),
           "--out", str(out), "--force"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"conversion failed: {' '.join(cmd)}\n{output.decode()[-2000:]}")
    return wall, usage.ru_maxrss / 2**20


def latency(bundles: dict[str, Path], source: list[str], steps: int, runs: int, threads: int) -> dict[str, float]:
    """Median end-to-end ms per backend, all measured in this one process, interleaved round by round."""
    import torch

    from banana_sdk.pipeline import Pipeline
    from banana_sdk.runtime.litert import LiteRTPipeline

    torch.set_num_threads(threads)
    pipe = Pipeline.from_preset(source[1]) if source[0] == "--preset" else Pipeline.from_pretrained(source[1])
    runners = {"torch fp32 eager": lambda: pipe.run("a red circle top left", steps=steps, seed=0)}
    for quant, bundle in bundles.items():
        lite = LiteRTPipeline.load(bundle, threads=threads)
        runners[f"LiteRT {quant}"] = lambda lite=lite: lite.run("a red circle top left", steps=steps, seed=0)
    samples: dict[str, list[float]] = {k: [] for k in runners}
    for fn in runners.values():
        fn()  # warm-up
    for _ in range(runs):
        for name, fn in runners.items():
            samples[name].append(fn().e2e_ms)
    return {k: median_ms(v) for k, v in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", default="demo")
    parser.add_argument("--model", default=None, help="Checkpoint dir instead of a preset (trained weights).")
    parser.add_argument("--quants", default="fp32,fp16,int8,int4")
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    sources = [["--model", args.model]] if args.model else [["--preset", p] for p in args.presets.split(",")]
    from banana_sdk.bundle.reader import load_manifest

    for source in sources:
        work = Path(tempfile.mkdtemp(prefix="bench-convert-"))
        bundles, rows = {}, []
        try:
            for quant in args.quants.split(","):
                out = work / quant
                wall, rss = convert_measured(source, quant, out, args.block_size)
                manifest = load_manifest(out)
                size = sum(f["bytes"] for f in manifest["files"].values())
                bundles[quant] = out
                gate = manifest["gate"]
                rows.append([quant, size, wall, rss, gate])
            fp32 = next((r[1] for r in rows if r[0] == "fp32"), None)
            name = source[1] if source[0] == "--preset" else f"checkpoint {source[1]}"
            model = f"{name} (block {args.block_size})"
            body_rows = []
            for quant, size, wall, rss, gate in rows:
                ratio = f"{size / fp32:.3f}" if fp32 else "-"
                accuracy = "; ".join(f"{n} {g['psnr_db']:.1f} dB / {g['cosine']:.5f}" for n, g in gate.items())
                body_rows.append([model, quant, f"{size / 2**20:,.2f} MiB", ratio, f"{wall:.1f} s", f"{rss:.2f} GiB",
                                  accuracy])
            tables = [Table("bundles", ["model", "quant", "bundle", "vs fp32", "convert wall", "convert peak RSS",
                                        "PSNR / cosine vs torch fp32 per signature"], body_rows, key=2,
                            title="Bundle size, conversion cost and accuracy per quant")]
            notes = ""
            if not args.no_latency:
                lat = latency(bundles, source, args.steps, args.runs, args.threads)
                base = lat["torch fp32 eager"]
                tables.append(Table(
                    "latency", ["model", "backend", "steps", "end-to-end ms (median)", "speed-up vs torch"],
                    [[model, k, args.steps, f"{v:.1f}", f"{base / v:.2f}x"] for k, v in lat.items()], key=2,
                    title="End-to-end latency on this host, LiteRT vs PyTorch"))
                notes = (f"Latency: median of {args.runs} runs per backend, interleaved round by round, LiteRT and "
                         f"torch both on {args.threads} threads.")
            record("conversion", tables, notes=notes)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

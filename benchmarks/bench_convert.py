"""Converter figures: bundle size and accuracy per quant, conversion cost.

    python benchmarks/bench_convert.py                      # demo at every quant
    python benchmarks/bench_convert.py --presets mobile --quants fp32,int4
    python benchmarks/bench_convert.py --presets nano-banana-2 --quants int4

Each conversion runs in its own `banana convert` subprocess so its peak RSS (ru_maxrss) is its own. Speed is
measured by `benchmarks/bench_peers.py` (LiteRT vs ONNX Runtime vs ExecuTorch vs PyTorch, per component and end to
end), which replaced this script's latency table.
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

from benchmarks.report import Table, record  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", default="demo")
    parser.add_argument("--model", default=None, help="Checkpoint dir instead of a preset (trained weights).")
    parser.add_argument("--quants", default="fp32,fp16,int8,int4")
    parser.add_argument("--block-size", type=int, default=32)
    # the latency table moved to bench_peers.py; its flags are still accepted so earlier runs' reproduce lines work
    for flag in ("--steps", "--runs", "--threads"):
        parser.add_argument(flag, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-latency", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sources = [["--model", args.model]] if args.model else [["--preset", p] for p in args.presets.split(",")]
    from banana_sdk.bundle.reader import load_manifest

    for source in sources:
        work = Path(tempfile.mkdtemp(prefix="bench-convert-"))
        rows = []
        try:
            for quant in args.quants.split(","):
                out = work / quant
                wall, rss = convert_measured(source, quant, out, args.block_size)
                manifest = load_manifest(out)
                size = sum(f["bytes"] for f in manifest["files"].values())
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
            record("conversion", tables)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""4K figures: peak RSS tiled vs untiled on LiteRT, seam error, time per 4K image, upscaler PSNR vs bicubic.

    python benchmarks/bench_upscale.py                                 # shipped upscaler, 128 px base
    python benchmarks/bench_upscale.py --bundle bundles/demo-int4      # + prompt -> 4096 px on the bundle

Every RSS figure comes from its own subprocess (`--worker`); the high-water mark is reset (Linux clear_refs)
after imports and model load, so "peak during run" is the process's resident peak while it upscales
(including the already resident runtime, shown as "RSS at start"):
  tiled    the whole chain 128 -> 256 -> 1024 -> 4096 through the fixed 80 px `upscale_tile` signature
           (plus the final uint8 conversion), from a ShapeWorld render (or the bundle's own base image);
  untiled  one pass through a signature converted for the whole input (what a phone would need without
           tiles); the largest that stays under 2 GB is the one that "fits".
Seam error: the 256 -> 1024 pass tiled vs untiled (both LiteRT, same weights and recipe), mean |difference|
on the output pixels where tile windows overlap (in 1/255 units); interior pixels for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, record  # noqa: E402

RSS_TARGET_GB = 2.0  # the budget for a 4096 px image
BASE = 128  # demo base size
UNTILED_INPUTS = (128, 256, 512, 1024)  # untiled single-pass input sides (outputs 512 .. 4096)


def rss_gb() -> float:
    """Peak RSS of this process so far, GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _status_gb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 2**20  # kB -> GiB
    except OSError:
        pass
    return None


def start_peak() -> float:
    """Reset the RSS high-water mark (Linux clear_refs 5) and return the RSS now, GiB: the run's own peak is
    then VmHWM, not the import-time peak of torch/LiteRT that ru_maxrss would report."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_gb("VmRSS") or rss_gb()


def run_peak() -> float:
    return _status_gb("VmHWM") or rss_gb()


def export(model, side: int, path: Path, quant: str) -> Path:  # noqa: ANN001
    """The upscaler as a one-signature .tflite for (1, side, side, 3) input, fp32 or the int4 recipe."""
    from banana_sdk.upscale.signatures import UPSCALE_TILE, UpscaleTileSignature
    from converters.export import export_signature
    from converters.recipes import parse_quant, quantize_model

    inputs = {"image": np.zeros((1, side, side, 3), np.float32)}
    export_signature(UpscaleTileSignature(model), UPSCALE_TILE, inputs, path)
    if quant != "fp32":
        path.write_bytes(quantize_model(path.read_bytes(), parse_quant(quant), 32))
    return path


def worker(args: argparse.Namespace) -> None:
    """Runs in a subprocess: one measured job, prints one JSON line."""
    from PIL import Image

    from banana_sdk.runtime.tiles import LiteRTTileRunner
    from banana_sdk.upscale.chain import float_to_pil_inplace, pil_to_float, upscale_image
    from banana_sdk.upscale.config import TileConfig

    if args.worker == "e2e":
        from banana_sdk.runtime.litert import LiteRTPipeline
        from banana_sdk.upscale import generate_4k

        pipe = LiteRTPipeline.load(args.bundle, threads=args.threads)
        prompt = "pip top left and a small red circle center and zed bottom right"
        generate_4k(pipe, prompt, 2 * pipe.size, seed=args.seed, threads=args.threads)  # warm-up, loads tiles
        before = start_peak()
        result = generate_4k(pipe, prompt, 4096, seed=args.seed, threads=args.threads)
        print(json.dumps({"rss_gb": run_peak(), "rss_before_gb": before, "ms": result.e2e_ms,
                          "base_ms": result.base.e2e_ms, "pass_ms": result.pass_ms,
                          "recipe": pipe.manifest["quantization"]["recipe"]}))
        return
    image = pil_to_float(Image.open(args.image))
    if args.worker == "tiled":
        runner = LiteRTTileRunner(Path(args.model), TileConfig(args.tile, args.overlap, args.margin), 4, args.threads)
        before = start_peak()
        start = time.perf_counter()
        out = np.asarray(float_to_pil_inplace(upscale_image(image, args.target, runner)))
    else:
        from ai_edge_litert.interpreter import Interpreter

        run = Interpreter(model_path=args.model, num_threads=args.threads).get_signature_runner("upscale_tile")
        before = start_peak()
        start = time.perf_counter()
        out = np.asarray(float_to_pil_inplace(np.array(run(image=image[None])["upscaled"])[0]))
    ms = (time.perf_counter() - start) * 1e3
    print(json.dumps({"rss_gb": run_peak(), "rss_before_gb": before, "ms": ms, "shape": list(out.shape)}))


def measured(*argv: str) -> dict | None:
    """Run this script as a worker subprocess; None if it died (e.g. out of memory)."""
    proc = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        print(proc.stderr[-1500:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def seam_error(model, base: np.ndarray, work: Path, quant: str, tiles, threads: int) -> dict[str, float]:  # noqa: ANN001
    """Tiled vs untiled LiteRT on the 256 -> 1024 pass, in 1/255 units."""
    from ai_edge_litert.interpreter import Interpreter

    from banana_sdk.runtime.tiles import LiteRTTileRunner
    from banana_sdk.upscale.chain import box_down2
    from banana_sdk.upscale.tiling import overlap_mask, tiled_apply

    tile_model = export(model, tiles.tile, work / f"tile-{quant}.tflite", quant)
    runner = LiteRTTileRunner(tile_model, tiles, 4, threads)
    mid = box_down2(tiled_apply(base, runner, tiles, 4))  # the chain's 256 px image
    tiled = tiled_apply(mid, runner, tiles, 4)
    whole = export(model, mid.shape[0], work / f"whole-{quant}.tflite", quant)
    untiled = np.array(Interpreter(model_path=str(whole), num_threads=threads)
                       .get_signature_runner("upscale_tile")(image=mid[None])["upscaled"])[0]
    diff = np.abs(tiled - untiled) * 127.5  # [-1, 1] -> 0..255 units
    band = overlap_mask(mid.shape[0], tiles, 4)
    seam = band[:, None] | band[None, :]
    return {"seam_mean": float(diff[seam].mean()), "seam_max": float(diff[seam].max()),
            "interior_mean": float(diff[~seam].mean())}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upscaler", default=None, help="Upscaler dir (default: the shipped one).")
    parser.add_argument("--bundle", default=None, help="Bundle with tiles: also time prompt -> 4096 end to end.")
    parser.add_argument("--quants", default="fp32,int4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--psnr-scenes", type=int, default=24)
    parser.add_argument("--no-append", action="store_true", help="Print only; BENCHMARKS.md untouched.")
    parser.add_argument("--worker", choices=["tiled", "untiled", "e2e"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    for name, kind in (("--model", str), ("--image", str), ("--target", int), ("--tile", int), ("--overlap", int),
                       ("--margin", int)):
        parser.add_argument(name, type=kind, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    from PIL import Image

    from banana_sdk.data.render import render_scene
    from banana_sdk.data.world import DEMO_WORLD, sample_scene
    from banana_sdk.upscale import DEFAULT_WEIGHTS, default_tiles, load_upscaler
    from banana_sdk.upscale.chain import pil_to_float
    from banana_sdk.upscale.train import evaluate_upscaler

    model = load_upscaler(args.upscaler or DEFAULT_WEIGHTS)
    tiles = default_tiles(BASE)
    work = Path(tempfile.mkdtemp(prefix="bench-upscale-"))
    try:
        base_png = work / "base.png"
        Image.fromarray(render_scene(sample_scene(DEMO_WORLD, 1_000_321, 3), BASE)).save(base_png)
        tile_args = ["--tile", str(tiles.tile), "--overlap", str(tiles.overlap), "--margin", str(tiles.margin)]
        rows = []
        for quant in args.quants.split(","):
            tile_model = export(model, tiles.tile, work / f"tile-{quant}.tflite", quant)
            runs = [measured("--worker", "tiled", "--model", str(tile_model), "--image", str(base_png), "--target",
                             "4096", *tile_args, "--threads", str(args.threads)) for _ in range(2)]
            best = min((r for r in runs if r), key=lambda r: r["ms"])
            rows.append([f"tiled {tiles.tile} px tiles, {quant}", "128 -> 4096", f"{best['rss_gb']:.2f}",
                         f"{best['rss_before_gb']:.2f}", f"{best['ms'] / 1e3:.1f}",
                         "yes" if best["rss_gb"] <= RSS_TARGET_GB else "no"])
        for side in UNTILED_INPUTS:
            png = work / f"in-{side}.png"
            Image.open(base_png).resize((side, side), Image.Resampling.BICUBIC).save(png)
            whole = export(model, side, work / f"untiled-{side}.tflite", "fp32")
            r = measured("--worker", "untiled", "--model", str(whole), "--image", str(png), "--threads",
                         str(args.threads))
            rows.append(["untiled one pass, fp32", f"{side} -> {4 * side}",
                         f"{r['rss_gb']:.2f}" if r else "died", f"{r['rss_before_gb']:.2f}" if r else "-",
                         f"{r['ms'] / 1e3:.1f}" if r else "-",
                         "yes" if r and r["rss_gb"] <= RSS_TARGET_GB else "no"])
            whole.unlink()
        memory = Table("memory", ["run", "pixels", "peak RSS during run GB", "RSS at start GB (runtime, torch)",
                                  "time s", f"peak <= {RSS_TARGET_GB} GB"], rows, key=2,
                       title="Peak memory and time: the tiled chain vs one untiled pass")
        base = pil_to_float(Image.open(base_png))
        seams = [[q, *(f"{v:.4f}" for v in seam_error(model, base, work, q, tiles, args.threads).values())]
                 for q in args.quants.split(",")]
        seam = Table("seams", ["recipe", "seam mean |diff| (1/255)", "seam max", "interior mean"], seams,
                     title="Seams: the 256 -> 1024 pass tiled vs untiled")
        psnr = evaluate_upscaler(model, scenes=args.psnr_scenes, in_size=BASE)
        soft = evaluate_upscaler(model, scenes=args.psnr_scenes, in_size=BASE, blur=0.7)
        quality = Table("quality", ["input (128 px, held-out ShapeWorld)", "upscaler dB", "bicubic dB",
                                    "bilinear dB"], [
            ["4x box-filtered render", psnr["upscaler"], psnr["bicubic"], psnr["bilinear"]],
            ["same, blurred sigma 0.7 (VAE-like)", soft["upscaler"], soft["bicubic"], soft["bilinear"]]],
            title="Upscaler PSNR vs the real render")
        tables = [memory, seam, quality]
        notes = (f"Tiles: {tiles.tile} px input, overlap {tiles.overlap}, margin {tiles.margin} (stride "
                 f"{tiles.stride}); chain 128 -> (4x, box 2x down) 256 -> 1024 -> 4096; "
                 f"{args.threads} threads, XNNPACK.")
        if args.bundle:
            tables.append(end_to_end(Path(args.bundle), args.threads))
            model = json.loads((Path(args.bundle) / "manifest.json").read_text())["model"]
            if str(model.get("source", "")).startswith("preset:"):
                notes += ("\n\nPrompt -> 4096 px on a random-weight preset bundle, made by `banana convert --preset "
                          "demo --quant int4` + `converters.tiles.add_tiles`: timing and memory only, the images "
                          "are noise.")
        record("upscale", tables, notes=notes, append=not args.no_append)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def end_to_end(bundle: Path, threads: int) -> Table:
    """Prompt -> 4096 px on a bundle with tile signatures, each run in its own worker (best of 2)."""
    runs = [measured("--worker", "e2e", "--bundle", str(bundle), "--threads", str(threads), "--seed", str(s))
            for s in range(2)]
    best = min((r for r in runs if r), key=lambda r: r["ms"])
    return Table("end-to-end", ["bundle", "base image ms", "passes ms", "prompt -> 4096 px s",
                                "peak RSS during run GB", "RSS at start GB"],
                 [[f"{bundle.name} ({best['recipe']})", f"{best['base_ms']:.0f}",
                   " + ".join(f"{m:.0f}" for m in best["pass_ms"]), f"{best['ms'] / 1e3:.1f}",
                   f"{best['rss_gb']:.2f}", f"{best['rss_before_gb']:.2f}"]], title="Prompt -> 4096 px on a bundle")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()

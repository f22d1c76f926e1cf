"""The preview decoder (issue 20): FLOPs, host ms per decode on LiteRT, ShapeEval of the same latents decoded both ways.

    python benchmarks/bench_preview.py                                  # demo weights + shipped preview, 200 prompts
    python benchmarks/bench_preview.py --steps 1 --samples 100 --no-append

FLOPs are counted as `banana info` counts them (torch FlopCounterMode on the meta device: convolutions and matmuls;
norms, activations and resizes are not counted) at the model's size. Host ms: median of `--runs` calls of each
signature on the ai-edge-litert Interpreter (XNNPACK, `--threads`), in bundles converted with `--preview` at fp32,
int8 and int4 (`banana convert --model M --quant Q --preview P`). ShapeEval: the int4 bundle generates `--samples`
held-out prompts (eval seed `--seed`, noise seed `seed * 1_000_003 + i`, as `banana eval`) at each step count, and
the one latent of each generation is decoded by `vae_decode` and by `preview_decode`; both images are scored, and
the preview's PSNR is taken against the full decoder's image (uint8, the app's conversion).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, record  # noqa: E402

RECIPES = ("fp32", "int8", "int4")


def flop_rows(model_dir: Path, preview_dir: Path) -> tuple[list[list[object]], float, str]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from banana_sdk.checkpoint import read_checkpoint_config
    from banana_sdk.info import model_info
    from banana_sdk.models.preview import PreviewDecoder, read_preview_config

    config, _ = read_checkpoint_config(model_dir)
    info = model_info(config)
    cfg, _, _ = read_preview_config(preview_dir)
    lat = config.image_size // config.downsample
    with torch.device("meta"):
        preview = PreviewDecoder(cfg)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            preview(torch.zeros(1, config.vae.latent_channels, lat, lat))
    flops = int(counter.get_total_flops())
    with torch.device("meta"):
        from banana_sdk.models.model import build_component

        decoder_params = sum(p.numel() for p in build_component(config, "vae", "meta").decoder.parameters())
    preview_params = sum(p.numel() for p in preview.parameters())
    ratio = info.decode_flops / flops
    rows = [["vae_decode", f"{info.decode_flops / 1e9:.3f}", f"{decoder_params / 1e6:.3f}", "1.00"],
            ["preview_decode", f"{flops / 1e9:.3f}", f"{preview_params / 1e6:.3f}", f"{1 / ratio:.3f}"]]
    return rows, ratio, f"{config.name}, {config.image_size} px"


def convert_bundles(model_dir: Path, preview_dir: Path, root: Path, recipes: tuple[str, ...]) -> dict[str, Path]:
    """One bundle per recipe with the preview signature (re-runs skip what is current)."""
    from converters.convert import convert

    out = {}
    for q in recipes:
        out[q] = convert(root / f"demo-{q}-preview", model_dir=model_dir, quant=q, preview=preview_dir)
    return out


def time_decoders(bundle: Path, threads: int, runs: int) -> dict[str, float]:
    from banana_sdk.runtime.litert import LiteRTPipeline
    from banana_sdk.sampling.noise import gaussian

    pipe = LiteRTPipeline.load(bundle, threads=threads)
    shape = tuple(pipe.typed.signature("vae_decode").input("latent").shape)
    latent = gaussian(5, 0, shape)
    out = {}
    for name, fn in (("vae_decode", pipe.decode), ("preview_decode", pipe.decode_preview)):
        for _ in range(3):
            fn(latent)
        samples = []
        for _ in range(runs):
            start = time.perf_counter()
            fn(latent)
            samples.append((time.perf_counter() - start) * 1e3)
        out[name] = float(np.median(samples))
    return out


def gpu_coverage(bundle: Path) -> str:
    """`banana preflight BUNDLE --delegate gpu` for preview_decode: 'delegated/total ops, partitions'."""
    from converters.preflight.run import PreflightRequest, preflight_bundle

    report = preflight_bundle(bundle, PreflightRequest.parse("gpu"))
    sig = next(s for s in report.signatures if s.signature == "preview_decode")
    return f"{sig.delegated}/{sig.total}, {sig.partitions} partition" + ("s" if sig.partitions != 1 else "")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def shapeeval_rows(bundle: Path, steps: int, samples: int, seed: int, threads: int) -> list[list[object]]:
    from banana_sdk.eval.evaluate import eval_world, evaluate_images
    from banana_sdk.imageio import to_uint8
    from banana_sdk.runtime.litert import LiteRTPipeline

    pipe = LiteRTPipeline.load(bundle, threads=threads)
    world = eval_world(pipe.config, seed)
    full, preview, full_ms, preview_ms = [], [], [], []
    for i in range(samples):
        gen = pipe.run(world.scene(i).caption, steps=steps, seed=seed * 1_000_003 + i)
        full.append(np.asarray(gen.image.convert("RGB")))
        full_ms.append(gen.decode_ms)
        start = time.perf_counter()
        image = pipe.decode_preview(gen.latent)
        preview_ms.append((time.perf_counter() - start) * 1e3)
        preview.append(to_uint8(image[0]))
    rows = []
    for label, images, ms in (("vae_decode", full, full_ms), ("preview_decode", preview, preview_ms)):
        report = evaluate_images(world, lambda i, _p, im=images: im[i], samples)
        per = report["per_attribute"]
        close = np.mean([psnr(p, f) for p, f in zip(preview, full, strict=True)]) if label != "vae_decode" else None
        rows.append([steps, label, f"{100 * report['attribute_accuracy']:.1f}", f"{100 * report['fully_correct']:.1f}",
                     *("–" if per[a] is None else f"{100 * per[a]:.1f}"
                       for a in ("shape", "colour", "position", "count", "identity")),
                     f"{report['frechet_distance']:.3f}", "–" if close is None else f"{close:.1f}",
                     f"{np.median(ms):.1f}"])
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "banana_sdk/weights/demo")
    ap.add_argument("--preview", type=Path, default=ROOT / "banana_sdk/weights/preview")
    ap.add_argument("--bundles", type=Path, default=ROOT / "out/bench/preview", help="where the bundles are written")
    ap.add_argument("--samples", type=int, default=200, help="held-out prompts per step count")
    ap.add_argument("--steps", default="1,2,4", help="LCM steps of the int4 student, comma-separated")
    ap.add_argument("--seed", type=int, default=0, help="eval seed (prompts and noise)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30, help="timed decodes per signature and recipe")
    ap.add_argument("--no-append", action="store_true", help="print only; record no results (BENCHMARKS.md untouched)")
    args = ap.parse_args()
    steps = tuple(int(s) for s in args.steps.split(","))

    flops, ratio, model_label = flop_rows(args.model, args.preview)
    bundles = convert_bundles(args.model, args.preview, args.bundles, RECIPES)
    from banana_sdk.bundle.reader import load_manifest

    timing = []
    for q, bundle in bundles.items():
        ms = time_decoders(bundle, args.threads, args.runs)
        manifest = load_manifest(bundle)
        size = {n: manifest["files"][f"{n}.tflite"]["bytes"] / 2**10 for n in ("vae_decode", "preview_decode")}
        gate = manifest["gate"]["preview_decode"]
        gpu = gpu_coverage(bundle)
        timing.append([q, f"{ms['vae_decode']:.2f}", f"{ms['preview_decode']:.2f}",
                       f"{ms['vae_decode'] / ms['preview_decode']:.2f}x", f"{size['vae_decode']:.0f}",
                       f"{size['preview_decode']:.0f}", f"{gate['psnr_db']:.1f}", gpu])
        print(timing[-1], flush=True)
    quality = []
    for n in steps:
        quality += shapeeval_rows(bundles["int4"], n, args.samples, args.seed, args.threads)

    tables = [
        Table("flops", ["decoder", "GFLOP per image", "params (M)", "FLOPs vs vae_decode"], flops, replace_all=True,
              title=f"FLOPs ({model_label})",
              about=f"Counted like `banana info` (FlopCounterMode). The preview decoder needs {ratio:.2f}x fewer "
                    "FLOPs than the VAE decoder (target: >= 5x)."),
        Table("host-ms", ["recipe", "vae_decode ms", "preview_decode ms", "speed-up", "vae_decode KiB",
                          "preview_decode KiB", "preview gate dB", "preview on GPU (pre-flight)"], timing,
              replace_all=True,
              title="Host decode time on LiteRT",
              about=f"Median of {args.runs} calls per signature, ai-edge-litert Interpreter, {args.threads} threads; "
                    "file sizes as written; gate = the converter's PSNR of preview_decode vs PyTorch fp32; GPU = "
                    "`banana preflight B --delegate gpu` (LiteRT GPU accelerator): ops delegated, partitions."),
        Table("shapeeval", ["steps", "decoder", "attribute acc %", "fully correct %", "shape %", "colour %",
                            "position %", "count %", "identity %", "Fréchet", "PSNR vs full dB", "decode ms"],
              quality, key=2,
              title="ShapeEval: the same latents, full vs preview decoder",
              about=f"The INT4 bundle generates {args.samples} held-out prompts (eval seed {args.seed}) per step "
                    "count; each latent is decoded by both signatures (target: preview within 2 points of the full "
                    "decoder's attribute accuracy = mean of shape, colour, position, count; identity = characters "
                    "recognised, not in that mean)."),
    ]
    notes = (f"Model `{args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}`, preview "
             f"`{args.preview.relative_to(ROOT) if args.preview.is_relative_to(ROOT) else args.preview}`; bundles "
             f"converted with `banana convert --model M --quant Q --preview P` (fp32, int8, int4).")
    record("preview", tables, notes=notes, append=not args.no_append)


if __name__ == "__main__":
    main()

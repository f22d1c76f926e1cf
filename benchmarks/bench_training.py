"""ShapeEval figures of the trained demo recipe: real data, VAE ceiling, teacher, student, INT4 PTQ vs DQAT.

    python benchmarks/bench_training.py --vae out/train/vae --teacher out/train/teacher \\
        --student out/train/distill --qat out/train/qat --samples 200

Every generated row scores the same held-out prompts with the same noise seeds (paired), batch 1 on this
host. INT4 rows run the converted LiteRT bundles (`--quant int4`): PTQ converts the fp32 student as is,
DQAT converts the quantization-aware weights. Training wall times come from each run's checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banana_sdk.checkpoint import load_checkpoint  # noqa: E402
from banana_sdk.data.dataset import image_to_tensor  # noqa: E402
from banana_sdk.eval.evaluate import eval_world, evaluate_images, evaluate_pipeline, evaluate_real  # noqa: E402
from banana_sdk.imageio import to_uint8  # noqa: E402
from banana_sdk.pipeline import Pipeline  # noqa: E402
from benchmarks.report import Table, record  # noqa: E402


def vae_ceiling(vae_dir: Path, samples: int, seed: int) -> dict:
    """ShapeEval of VAE reconstructions of real scenes: the best any diffusion model on it can score."""
    model, _ = load_checkpoint(vae_dir)
    world = eval_world(model.config, seed)

    def reconstruct(i: int, _prompt: str) -> np.ndarray:
        with torch.no_grad():
            x = image_to_tensor(world.image(i))[None]
            return to_uint8(model.vae.decode(model.vae.encode(x))[0].permute(1, 2, 0).numpy())

    start = time.perf_counter()
    report = evaluate_images(world, reconstruct, samples)
    report["latency_ms"] = {"e2e_mean": round((time.perf_counter() - start) / samples * 1e3, 2)}
    return report


def bundle(out: Path, model_dir: Path, block_size: int) -> Path:
    from converters.convert import convert

    return convert(out, model_dir=model_dir, quant="int4", block_size=block_size, force=True)


def row(name: str, report: dict) -> list[object]:
    per = report["per_attribute"]
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}"  # noqa: E731
    latency = report.get("latency_ms", {}).get("e2e_mean")
    return [name, pct(report["attribute_accuracy"]), pct(per["shape"]), pct(per["colour"]), pct(per["position"]),
            pct(per["count"]), pct(per["size"]), pct(report["identity"]), pct(report["fully_correct"]),
            f"{report['frechet_distance']:.3f}", "–" if latency is None else f"{latency:.0f}"]


def training_times(qat_dir: Path) -> list[list[object]]:
    _, extra = load_checkpoint(qat_dir)
    rows = []
    for entry in extra.get("recipe", []):
        loop = entry["loop"]
        rows.append([entry["stage"], entry["step"], loop["batch_size"], entry["world_size"],
                     f"{entry['elapsed_s'] / 60:.1f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--qat", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--real-samples", type=int, default=1000)
    parser.add_argument("--teacher-steps", type=int, default=40)
    parser.add_argument("--teacher-guidance", type=float, default=None, help="Default: the teacher's own.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--bundles", type=Path, default=ROOT / "out" / "bench_training")
    parser.add_argument("--no-litert", action="store_true", help="Skip the converted INT4 rows.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n, seed = args.samples, args.seed
    rows, raw = [], {}

    def add(name: str, report: dict) -> None:
        raw[name] = report
        rows.append(row(name, report))
        print(f"{name}: {report['attribute_accuracy']} ({report.get('eval_s', '')} s)", flush=True)

    size = load_checkpoint(args.vae)[0].config.image_size
    add(f"real ShapeWorld ({args.real_samples} images)", evaluate_real(args.real_samples, seed, size))
    add("VAE reconstructions (ceiling)", vae_ceiling(args.vae, n, seed))
    teacher = Pipeline.from_pretrained(args.teacher)
    guidance = args.teacher_guidance or teacher.config.sampler.guidance_scale
    add(f"teacher, Euler {args.teacher_steps} steps, CFG {guidance:g}",
        evaluate_pipeline(teacher, n, seed, steps=args.teacher_steps, guidance_scale=guidance))
    student = Pipeline.from_pretrained(args.student)
    for steps in (8, 4, 2, 1):
        add(f"student fp32 (PyTorch), LCM {steps}", evaluate_pipeline(student, n, seed, steps=steps))
    dqat = Pipeline.from_pretrained(args.qat)
    add("DQAT weights fp32 (PyTorch), LCM 4", evaluate_pipeline(dqat, n, seed, steps=4))
    if not args.no_litert:
        from banana_sdk.runtime.litert import LiteRTPipeline

        for name, source in (("PTQ", args.student), ("DQAT", args.qat)):
            path = bundle(args.bundles / f"{name.lower()}-int4", source, args.block_size)
            pipe = LiteRTPipeline.load(path, threads=1)
            for steps in (4, 2):
                add(f"student INT4 {name} (LiteRT bundle), LCM {steps}", evaluate_pipeline(pipe, n, seed, steps=steps))
    header = ["row", "attribute acc %", "shape", "colour", "position", "count", "size", "identity",
              "fully correct %", "Fréchet dist.", "host ms/image"]
    about = ("attribute acc = mean of shape, colour, position and count accuracy; fully correct = every attribute of "
             "every object and the count right. Fréchet distance between evaluator features of the row's images "
             "and the real renders of the same scenes (real row: vs another real sample).")
    record("training", [
        Table("shapeeval", header, rows, replace_all=True, about=about,
              title="ShapeEval: teacher, LCD student, INT4 PTQ vs DQAT"),
        Table("stages", ["stage", "steps", "batch", "processes", "wall min"], training_times(args.qat),
              replace_all=True, title="Training (from the checkpoints' recipe records)"),
    ], notes=f"ShapeEval on {n} held-out prompts (eval seed {seed}; the same prompts and noise seeds in every "
             "generated row), batch 1, 1 CPU thread.")


if __name__ == "__main__":
    main()

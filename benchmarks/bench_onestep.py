"""One-step quality (issue 20 part 1): held-out ShapeEval at 1, 2 and 4 LCM steps, old vs new student.

    python benchmarks/bench_onestep.py --old out/demo-old --refined out/train/refine --new banana_sdk/weights/demo

Rows, on the same held-out prompts and noise seeds (eval seed `--seed`, never used in training or tuning;
paired), batch 1 on this host:
  old student   the previous demo weights (DQAT of the LCD student): PyTorch fp32 and INT4 LiteRT (DQAT);
  refined fp32  the `refine` stage's student before DQAT: PyTorch fp32, and INT4 LiteRT by plain PTQ;
  new student   the shipped weights (DQAT of the refined student): PyTorch fp32 and INT4 LiteRT (DQAT).
INT4 rows convert the checkpoint with `banana convert --quant int4` (cached under --bundles).

    python benchmarks/bench_onestep.py --quick out/train/refineD --seed 3     # tuning: batched PyTorch, no record

`--quick` scores checkpoints the fast way used while tuning (LCM samples generated 50 at a time in PyTorch, noise
from a torch generator, eval seed 3 by default: not the reporting seed), printing one line per step count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banana_sdk.eval.evaluate import evaluate_pipeline  # noqa: E402
from banana_sdk.pipeline import Pipeline  # noqa: E402
from benchmarks.report import Table, record  # noqa: E402

STEPS = (1, 2, 4)


def bundle(out: Path, model_dir: Path) -> Path:
    from converters.convert import convert

    return convert(out, model_dir=model_dir, quant="int4", force=True)


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


@torch.no_grad()
def quick_eval(model_dir: Path, samples: int, seed: int, steps: int) -> dict:
    """Batched PyTorch ShapeEval of a checkpoint at `steps` LCM steps (the tuning loop's measure)."""
    import numpy as np

    from banana_sdk.checkpoint import load_checkpoint
    from banana_sdk.eval.evaluate import eval_world, score_image
    from banana_sdk.eval.score import Tally
    from banana_sdk.training.preview import sample_latents

    model, _ = load_checkpoint(model_dir)
    model.eval()
    captions = [s.caption for s in (eval_world(model.config, seed).scene(k) for k in range(samples))]
    tally = Tally()
    for i in range(0, samples, 50):
        chunk = captions[i:i + 50]
        latents = sample_latents(model, chunk, [steps] * len(chunk), 1234 + i, torch.device("cpu"))
        images = model.vae.decode(latents).clamp(-1, 1)
        u8 = torch.floor((images + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for image, caption in zip(u8, chunk, strict=True):
            tally.add(score_image(np.ascontiguousarray(image), caption))
    return tally.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, help="The previous demo weights.")
    parser.add_argument("--refined", type=Path, help="The refine stage's run (fp32, before DQAT).")
    parser.add_argument("--quick", type=Path, nargs="+", help="Checkpoints to score the quick way (no record).")
    parser.add_argument("--new", type=Path, default=ROOT / "banana_sdk" / "weights" / "demo")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bundles", type=Path, default=ROOT / "out" / "bench_onestep")
    parser.add_argument("--no-append", action="store_true", help="Print only; leave BENCHMARKS.md alone.")
    args = parser.parse_args()
    if args.quick:
        torch.set_num_threads(2)
        seed = 3 if args.seed == 0 and "--seed" not in sys.argv else args.seed
        for model_dir in args.quick:
            for s in STEPS:
                r = quick_eval(model_dir, args.samples, seed, s)
                print(f"{model_dir} LCM {s}: attribute {pct(r['attribute_accuracy'])} % fully correct "
                      f"{pct(r['fully_correct'])} % ({r['per_attribute']})", flush=True)
        return
    if args.old is None or args.refined is None:
        parser.error("give --old and --refined (or --quick CHECKPOINT...)")
    torch.set_num_threads(1)
    n, seed = args.samples, args.seed
    rows, fours = [], {}
    sources = [("old student", args.old, "DQAT"), ("refined student", args.refined, "PTQ"),
               ("new student (shipped)", args.new, "DQAT")]
    for name, path, quant in sources:
        from banana_sdk.runtime.litert import LiteRTPipeline

        runtimes = [("PyTorch fp32", Pipeline.from_pretrained(path)),
                    (f"LiteRT INT4 {quant}", LiteRTPipeline.load(bundle(args.bundles / name.split()[0], path),
                                                                 threads=1))]
        for runtime, pipe in runtimes:
            results = {s: evaluate_pipeline(pipe, n, seed, steps=s) for s in STEPS}
            fours[(name, runtime)] = results[4]
            for s in STEPS:
                r = results[s]
                gap_attr = 100 * (r["attribute_accuracy"] - results[4]["attribute_accuracy"])
                gap_full = 100 * (r["fully_correct"] - results[4]["fully_correct"])
                per = r["per_attribute"]
                rows.append([name, runtime, s, pct(r["attribute_accuracy"]), pct(per["shape"]), pct(per["colour"]),
                             pct(per["size"]), pct(r["identity"]), pct(r["fully_correct"]),
                             "–" if s == 4 else f"{gap_attr:+.1f} / {gap_full:+.1f}",
                             f"{r['latency_ms']['e2e_mean']:.0f}"])
                print(" | ".join(str(c) for c in rows[-1]), flush=True)
    header = ["student", "runtime", "steps", "attribute acc %", "shape", "colour", "size", "identity",
              "fully correct %", "vs 4 steps (attr / full, pts)", "host ms/image"]
    about = ("ShapeEval on held-out prompts: attribute acc = mean of shape, colour, position and count accuracy; fully "
             "correct = every attribute of every object and the count right. Targets (issue 20): 1 and 2 steps within "
             "2 points of attribute accuracy and 10 of fully correct of the same student's 4 steps; 4 steps >= 97 % / "
             ">= 85 %; DQAT INT4 within 2 points of its fp32.")
    table = Table("onestep", header, rows, replace_all=True, about=about,
                  title="One-step quality: old vs refined student, 1/2/4 steps, PyTorch and INT4 LiteRT")
    notes = (f"ShapeEval on {n} held-out prompts (eval seed {seed}: the prompts and noise seeds the refinement was "
             "neither trained nor tuned on), the same prompts and noise in every row, batch 1, 1 CPU thread.")
    if args.no_append:
        return
    record("onestep", [table], notes=notes)


if __name__ == "__main__":
    main()

"""Peels on the demo model: two trained style peels, run on LiteRT as runtime peels, stacked, and merged.

    python benchmarks/bench_peels.py [--model banana_sdk/weights/demo] [--samples 200] [--work out/bench_peels]

1. the style detector on real renders (each style drawn or not, the other at random);
2. `banana peel train` (library call, CLI defaults) for a `pastel` and an `outlined` peel;
3. the base converted with `--peel-buckets 4,8,16` (INT4) and, for the merged comparison, the base with the
   pastel peel folded in (`banana peel merge`) converted the same way;
4. sizes (peel file and its runtime export vs the bundle), latency of the runtime-peel signature vs the base
   at the same steps, swap time without reload, merged vs runtime image PSNR, and ShapeEval (style score,
   content attribute accuracy) of base / each peel / both stacked / merged, same prompts and noise seeds.
Every step whose output is current is skipped (peels are retrained when the base weights change), so the
bench re-runs cheaply; all LiteRT runs use 1 CPU thread, batch 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from banana_sdk.checkpoint import weights_hash  # noqa: E402
from banana_sdk.data.world import Style  # noqa: E402
from banana_sdk.eval.evaluate import evaluate_images, evaluate_pipeline  # noqa: E402
from banana_sdk.eval.style import real_style_accuracy  # noqa: E402
from banana_sdk.peels.config import PeelError, Storage  # noqa: E402
from banana_sdk.peels.io import load_peel  # noqa: E402
from banana_sdk.peels.runtime import bucket_for  # noqa: E402
from benchmarks.report import Table, median_ms, record  # noqa: E402

BUCKETS = (4, 8, 16)
SCENES = 2048  # training scenes per peel
PEELS = {"pastel": (Style.PASTEL,), "outlined": (Style.OUTLINED,)}


def train_peel(model: Path, name: str, styles: tuple[Style, ...], work: Path, steps: int,
               batch: int = 8, file: str | None = None, lr: float = 1e-3, **extra: Any) -> tuple[Path, float]:
    """(peel file, training seconds): trained unless a file for these weights and settings exists and is newer
    than the peels it starts from or stacks with (`extra`: `init_peel`, `stack_with` of `PeelTrainConfig`)."""
    from banana_sdk.peels.train import PeelTrainConfig
    from banana_sdk.peels.train import train_peel as run_peel_training
    from banana_sdk.training.common import LoopConfig

    path = work / f"{file or name}.safetensors"
    cfg = PeelTrainConfig(base=model, styles=styles, peel_file=path, peel_name=name, scenes=SCENES,
                          **extra).validate()
    inputs = [p for p in (cfg.init_peel, *cfg.stack_with) if p is not None]
    try:
        peel = load_peel(path)
        if (peel.base_hash == weights_hash(model) and peel.training.get("step") == steps
                and all(path.stat().st_mtime > p.stat().st_mtime for p in inputs)):
            return path, float(peel.training.get("elapsed_s", 0.0))
    except PeelError:
        pass
    loop = LoopConfig(steps=steps, batch_size=batch, lr=lr, warmup=20, save_every=steps, log_every=25)
    summary = run_peel_training(cfg, loop, work / "runs" / (file or name), threads=1, force=True)
    return path, float(summary["elapsed_s"])


def describe_peel(name: str, path: Path, seconds: float, given: dict[str, str]) -> str:
    """How a peel of the table was made, from its file: rank, targets, steps, seconds."""
    peel = load_peel(path)
    how = f"given as `{given[name]}`" if name in given else "trained here"
    return (f"{name} rank {peel.config.rank} on {', '.join(peel.config.targets)}, {peel.training.get('step', '?')} "
            f"steps in {seconds:.0f} s ({how})")


def bundle(out: Path, model: Path, buckets: tuple[int, ...] = BUCKETS) -> Path:
    """INT4 bundle; the bucket signatures cover the linears the trained peels adapt (`--peel-targets`)."""
    from banana_sdk.peels.train import TRAIN_TARGETS
    from converters.convert import convert

    return convert(out, model_dir=model, quant="int4", peel_buckets=buckets or None,
                   peel_targets=TRAIN_TARGETS if buckets else None, force=True, threads=1)


def bundle_bytes(path: Path) -> int:
    return sum(f["bytes"] for f in json.loads((path / "manifest.json").read_text())["files"].values())


def latency(pipe: Any, peels: list[tuple[Path, float]], runs: int, prompt: str) -> dict[str, float]:
    """Median e2e and per-step denoise ms over `runs` generations (after one warm-up)."""
    pipe.set_peels(peels)
    pipe.run(prompt, seed=0)
    e2e, steps = [], []
    for k in range(runs):
        gen = pipe.run(prompt, seed=k)
        e2e.append(gen.e2e_ms)
        steps += gen.denoise_ms
    return {"e2e_ms": median_ms(e2e), "step_ms": median_ms(steps)}


def swap_times(pipe: Any, configs: list[list[tuple[Path, float]]], rounds: int) -> list[float]:
    """ms of each `set_peels` call cycling through `configs` (the base stays loaded)."""
    times = []
    for _ in range(rounds):
        for peels in configs:
            times.append(pipe.set_peels(peels))
    return times


def images(pipe: Any, prompts: list[str], steps: int) -> list[np.ndarray]:
    return [np.asarray(pipe.run(p, steps=steps, seed=i).image, np.float64)
            for i, p in enumerate(prompts)]


def stylized(cache: list[np.ndarray], pipe: Any, i: int, prompt: str, styles: tuple[Style, ...],
             steps: int) -> np.ndarray:
    """The base's image for eval prompt i (`pipe` with no peel set; `cache` holds the first ones), drawn in
    `styles` by `stylize`: what a peel that draws the style and nothing else would show (uint8 (S, S, 3))."""
    from banana_sdk.data.stylize import stylize

    image = cache[i] if i < len(cache) else np.asarray(pipe.run(prompt, steps=steps, seed=i).image, np.float64)
    return np.clip(np.rint(stylize(image, styles)), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "banana_sdk/weights/demo")
    parser.add_argument("--samples", type=int, default=200, help="ShapeEval prompts per row")
    parser.add_argument("--train-steps", type=int, default=600, help="optimizer steps per peel")
    parser.add_argument("--train-batch", type=int, default=8, help="scenes per optimizer step")
    parser.add_argument("--stack-steps", type=int, default=0,
                        help="then fine-tune each peel this many steps with the other as --stack-with (0 = skip)")
    parser.add_argument("--stack-lr", type=float, default=5e-4, help="peak learning rate of that fine-tune")
    parser.add_argument("--beside", action="store_true",
                        help="also train an outlined peel from scratch beside the frozen pastel peel (--stack-with)")
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=4, help="LCM steps of every generation")
    parser.add_argument("--work", type=Path, default=ROOT / "out/bench_peels")
    parser.add_argument("--use", action="append", default=[], metavar="NAME=PEEL",
                        help="measure this trained peel file as peel NAME (pastel / outlined) instead of training it")
    parser.add_argument("--storage", choices=[s.value for s in Storage], default=Storage.FLOAT16.value,
                        help="how the runtime exports store A and B")
    parser.add_argument("--stack-weights", default="1,1", metavar="PASTEL,OUTLINED",
                        help="also stack the two at these weights (a row beside 1 + 1)")
    args = parser.parse_args()
    try:
        stack_weights = tuple(float(w) for w in args.stack_weights.split(","))
    except ValueError:
        stack_weights = ()
    if len(stack_weights) != 2:
        parser.error(f"--stack-weights takes two numbers PASTEL,OUTLINED, got {args.stack_weights!r}")
    given = dict(item.split("=", 1) for item in args.use)
    unknown = sorted(set(given) - set(PEELS))
    if unknown:
        parser.error(f"--use names {unknown}; choose from {sorted(PEELS)}")
    from banana_sdk.eval.evaluate import eval_world
    from banana_sdk.peels.ops import export_for_bundle, merge_into_checkpoint
    from banana_sdk.runtime.litert import LiteRTPipeline

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    n, steps = args.samples, args.steps
    # 1. the detector on real renders
    detector = real_style_accuracy(samples=300)
    print(f"style detector on real renders: {detector['per_style']}", flush=True)
    # 2. the peels
    peels, train_s = {}, {}
    for name, styles in PEELS.items():
        if name in given:
            peels[name] = Path(given[name])
            train_s[name] = float(load_peel(peels[name]).training.get("elapsed_s", 0.0))
        else:
            peels[name], train_s[name] = train_peel(args.model, name, styles, work, args.train_steps,
                                                    args.train_batch)
        print(f"peel {name}: {peels[name]} ({train_s[name]:.0f} s of training)", flush=True)
    stacked, stack_s = {}, {}
    if args.stack_steps:  # each fine-tuned from its own weights beside the other (frozen, separately trained)
        for name, other in (("pastel", "outlined"), ("outlined", "pastel")):
            stacked[name], stack_s[name] = train_peel(
                args.model, name, PEELS[name], work, args.stack_steps, args.train_batch, f"{name}-stack",
                lr=args.stack_lr, init_peel=peels[name], stack_with=(peels[other],))
            print(f"stack-tuned peel {name}: {stacked[name]} ({stack_s[name]:.0f} s)", flush=True)
    beside, beside_s = None, 0.0
    if args.beside:  # outlined trained once, from scratch, with the pastel peel attached on half of its steps
        beside, beside_s = train_peel(args.model, "outlined", PEELS["outlined"], work, args.train_steps,
                                      args.train_batch, "outlined-with-pastel", stack_with=(peels["pastel"],))
        print(f"outlined peel trained beside pastel: {beside} ({beside_s:.0f} s)", flush=True)
    # 3. bundles: base with peel buckets; the base with the pastel peel merged
    base_bundle = bundle(work / "bundle-demo-int4-peels", args.model)
    plain_bundle = bundle(work / "bundle-demo-int4", args.model, ())
    merged_dir = merge_into_checkpoint(args.model, [(peels["pastel"], 1.0)], work / "merged-pastel")
    merged_bundle = bundle(work / "bundle-merged-pastel-int4", merged_dir)
    storage = Storage(args.storage)
    runtime = {name: export_for_bundle(path, base_bundle, work / f"{name}.runtime.safetensors", storage)
               for name, path in peels.items()}
    # 4a. sizes
    total, plain_total = bundle_bytes(base_bundle), bundle_bytes(plain_bundle)
    denoise = {name: (b / "denoise.tflite").stat().st_size for name, b in (("plain", plain_bundle),
                                                                           ("peels", base_bundle))}
    size_rows = [[name, f"{peels[name].stat().st_size / 1024:.1f}", f"{100 * peels[name].stat().st_size / total:.2f}",
                  f"{runtime[name].stat().st_size / 1024:.1f}", f"{100 * runtime[name].stat().st_size / total:.2f}"]
                 for name in peels]
    # 4b. latency (same steps) and swaps
    pipe = LiteRTPipeline.load(base_bundle, threads=1)
    both_bucket = bucket_for(sum(load_peel(p).config.rank for p in peels.values()), BUCKETS)
    prompt = "a small red circle top left and pip center and a large blue square bottom right"
    lat = {"base": latency(pipe, [], args.latency_runs, prompt),
           "pastel peel (denoise_r4)": latency(pipe, [(peels["pastel"], 1.0)], args.latency_runs, prompt),
           f"both peels (denoise_r{both_bucket})": latency(pipe, [(peels["pastel"], 1.0), (peels["outlined"], 1.0)],
                                                         args.latency_runs, prompt)}
    base_lat = lat["base"]
    lat_rows = [[name, f"{v['step_ms']:.2f}", f"{v['step_ms'] / base_lat['step_ms']:.3f}", f"{v['e2e_ms']:.1f}",
                 f"{v['e2e_ms'] / base_lat['e2e_ms']:.3f}"] for name, v in lat.items()]
    swaps = swap_times(pipe, [[(runtime["pastel"], 1.0)], [(runtime["outlined"], 0.8)],
                              [(runtime["pastel"], 0.8), (runtime["outlined"], 0.8)], []], rounds=10)
    trained_swaps = swap_times(pipe, [[(peels["pastel"], 1.0)], [(peels["outlined"], 1.0)]], rounds=10)
    # 4c. merged vs runtime, same prompts and seeds
    world = eval_world(pipe.config, 0)
    prompts = [world.scene(i).caption for i in range(min(n, 50))]
    pipe.set_peels([(runtime["pastel"], 1.0)])
    runtime_images = images(pipe, prompts, steps)
    merged_pipe = LiteRTPipeline.load(merged_bundle, threads=1)
    merged_images = images(merged_pipe, prompts, steps)
    pipe.set_peels([])
    base_images = images(pipe, prompts, steps)
    agreement = [psnr(a, b) for a, b in zip(runtime_images, merged_images, strict=True)]
    vs_base = [psnr(a, b) for a, b in zip(runtime_images, base_images, strict=True)]
    # 4d. ShapeEval rows (LiteRT, paired prompts and seeds)
    rows, raw = [], {}

    def add(label: str, report: dict, styles: tuple[Style, ...]) -> None:
        raw[label] = report
        base_acc = raw["base (no peel)"]["attribute_accuracy"] if "base (no peel)" in raw else None
        per, shown = report["per_attribute"], report["styles_shown"]
        delta = "–" if base_acc is None else f"{100 * (report['attribute_accuracy'] - base_acc):+.1f}"
        score = f"{100 * report['style_score']:.1f}" if styles else "–"
        rows.append([label, score, f"{100 * shown['pastel']:.1f}", f"{100 * shown['outlined']:.1f}",
                     f"{100 * report['attribute_accuracy']:.1f}", delta, f"{100 * per['shape']:.1f}",
                     f"{100 * per['colour']:.1f}", f"{100 * per['position']:.1f}", f"{100 * per['count']:.1f}",
                     f"{report['latency_ms']['e2e_median']:.0f}"])
        print(f"{label}: style {score}, attribute acc {report['attribute_accuracy']} ({report['eval_s']} s)",
              flush=True)

    def evaluate(target: Any, peel_list: list[tuple[Path, float]], styles: tuple[Style, ...]) -> dict:
        if peel_list is not None and hasattr(target, "set_peels"):
            target.set_peels(peel_list)
        return evaluate_pipeline(target, n, 0, steps=steps, styles=styles)

    add("base (no peel)", evaluate(pipe, [], ()), ())
    pipe.set_peels([])
    for styles in (PEELS["pastel"], PEELS["outlined"], (Style.PASTEL, Style.OUTLINED)):  # a perfect peel's score
        add(f"ideal: the base's images, stylize()d {'+'.join(s.value for s in styles)}",
            evaluate_images(world, lambda i, p, st=styles: stylized(base_images, pipe, i, p, st, steps), n,
                            styles=styles) | {"latency_ms": {"e2e_median": 0.0}, "eval_s": 0.0}, styles)
    add("pastel peel (runtime, weight 1)", evaluate(pipe, [(runtime["pastel"], 1.0)], PEELS["pastel"]),
        PEELS["pastel"])
    add("outlined peel (runtime, weight 1)", evaluate(pipe, [(runtime["outlined"], 1.0)], PEELS["outlined"]),
        PEELS["outlined"])
    both = (Style.PASTEL, Style.OUTLINED)
    add("pastel + outlined stacked (runtime, 1 + 1)",
        evaluate(pipe, [(runtime["pastel"], 1.0), (runtime["outlined"], 1.0)], both), both)
    if stack_weights != (1.0, 1.0):
        add(f"pastel + outlined stacked (runtime, {stack_weights[0]:g} + {stack_weights[1]:g})",
            evaluate(pipe, [(runtime["pastel"], stack_weights[0]), (runtime["outlined"], stack_weights[1])], both),
            both)
    add("pastel peel merged (own INT4 bundle)", evaluate(merged_pipe, None, PEELS["pastel"]), PEELS["pastel"])
    if stacked:
        tuned = {name: export_for_bundle(path, base_bundle, work / f"{name}-stack.runtime.safetensors", storage)
                 for name, path in stacked.items()}
        for name in ("pastel", "outlined"):
            add(f"{name} peel, stack-tuned (runtime, weight 1)", evaluate(pipe, [(tuned[name], 1.0)], PEELS[name]),
                PEELS[name])
        add("stack-tuned pastel + outlined (runtime, 1 + 1)",
            evaluate(pipe, [(tuned["pastel"], 1.0), (tuned["outlined"], 1.0)], both), both)
    if beside is not None:
        with_pastel = export_for_bundle(beside, base_bundle, work / "outlined-with-pastel.runtime.safetensors",
                                        storage)
        add("outlined peel trained beside pastel (runtime, 1)", evaluate(pipe, [(with_pastel, 1.0)],
                                                                         PEELS["outlined"]), PEELS["outlined"])
        add("pastel + outlined-beside-pastel (runtime, 1 + 1)",
            evaluate(pipe, [(runtime["pastel"], 1.0), (with_pastel, 1.0)], both), both)
    (work / "results.json").write_text(json.dumps({"detector": detector, "latency": lat, "rows": raw}, indent=1))
    notes = (
        f"Base `{args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}` "
        f"(weights {weights_hash(args.model)[:12]}), INT4 bundle with `--peel-buckets "
        f"{','.join(map(str, BUCKETS))}` ({total / 2**20:.2f} MiB; without buckets {plain_total / 2**20:.2f} MiB: "
        f"denoise.tflite {denoise['plain'] / 2**20:.2f} -> {denoise['peels'] / 2**20:.2f} MiB, the bucket "
        "signatures share its weights and add their own graphs and quantization tables). Peels (`banana peel "
        "train`, on-policy pixel target with object pixels x10, float16 files; the bundle converted with "
        "`--peel-targets attn.o,cross.o,mlp.fc2`, the linears they adapt): "
        + "; ".join(describe_peel(name, peels[name], train_s[name], given) for name in PEELS)
        + f". Runtime exports stored as {storage.value}. "
        + (f"Outlined trained beside pastel: `banana peel train --style outlined --stack-with pastel.safetensors`, "
           f"the same steps from scratch with the (frozen) pastel peel attached on a random half of them and "
           f"pastel added to those steps' targets, {beside_s:.0f} s. " if beside is not None else "")
        + (f"Stack-tuned peels: each fine-tuned from its own weights for {args.stack_steps} steps (peak lr "
           f"{args.stack_lr:g}) with the other, separately trained peel attached (frozen) on a random half of the "
           f"steps and its style added to the target (`banana peel train --init-peel P --stack-with Q`), "
           f"{stack_s['pastel']:.0f} s and {stack_s['outlined']:.0f} s. " if stacked else "")
        + "LiteRT, 1 CPU thread, batch 1.\n\n"
        f"Style detector on real renders (300 scenes per style, drawn with and without it, the other style at "
        f"random): pastel {100 * detector['per_style']['pastel']:.1f} %, outlined "
        f"{100 * detector['per_style']['outlined']:.1f} %.\n\n"
        f"Swap without reload (`set_peels`: read, check, stack, pad; 40 swaps of runtime exports): median "
        f"{median_ms(swaps):.1f} ms, max {max(swaps):.1f} ms; from trained peel files (packed on the fly): median "
        f"{median_ms(trained_swaps):.1f} ms.\n\n"
        f"Merged vs runtime (pastel, {len(prompts)} prompts, same seeds, both INT4 on LiteRT): image PSNR mean "
        f"{np.mean(agreement):.1f} dB, min {np.min(agreement):.1f} dB (runtime peel vs the base: mean "
        f"{np.mean(vs_base):.1f} dB)."
    )
    about = (f"ShapeEval on {n} held-out prompts (eval seed 0, the same prompts and noise seeds in every row). "
             "style = images showing every intended style; pastel / outlined = images showing each style; attribute "
             "acc = mean of shape, colour, position, count, colours named as drawn in the row's styles; Δ = points "
             "vs the base. The `ideal` rows score the base's own images with the style drawn on them by `stylize` "
             "(the peels' training target): what a peel that adds the style and changes nothing else would reach.")
    record("peels", [
        Table("sizes", ["peel", "file KiB", "% of bundle", "runtime export KiB", "% of bundle"], size_rows,
              replace_all=True, title="Peel sizes (% of the bucket bundle; bench_peels.py)"),
        Table("latency", ["denoiser", "ms/step", "ratio", "e2e ms", "ratio"], lat_rows, replace_all=True,
              title=f"Latency at {steps} LCM steps ({args.latency_runs} runs, medians; bench_peels.py)"),
        Table("shapeeval", ["row", "style %", "pastel %", "outlined %", "attribute acc %", "Δ", "shape", "colour",
                            "position", "count", "e2e ms"], rows, replace_all=True, about=about,
              title="Style and content: each peel, stacked and merged (LiteRT INT4; bench_peels.py)"),
    ], notes=notes)


if __name__ == "__main__":
    main()

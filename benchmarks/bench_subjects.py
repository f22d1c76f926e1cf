"""Identity-consistency figure: ShapeEval's identity check per character, with and without subject tokens.

    python benchmarks/bench_subjects.py --bundle bundles/demo-subjects-int4      # the figure (LiteRT)
    python benchmarks/bench_subjects.py --model out/train/subject --no-append    # PyTorch, for a quick look

Rows: each of the 5 characters in `--scenes` different held-out scenes that contain it (other objects and
characters around it), then `--scenes` scenes with all five characters at once. An appearance counts when
the detector finds the intended character in the cell the prompt puts it in. Baseline: the same prompts,
seeds and model with the subject slots empty. Subject tokens come from `banana subject add`-style files
made of two reference renders per character (never the evaluated scenes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Table, record  # noqa: E402

EVAL_SEED = 1_000_009  # held-out world for the prompts (training used SUBJECT_WORLD_SEED / TRAIN_SEED)


def prompts_for(name: str, count: int, context: int) -> list[str]:
    """Captions of `count` held-out scenes that contain character `name`."""
    from banana_sdk.data.world import WorldConfig, fit_to_context, sample_scene

    world = fit_to_context(WorldConfig(min_objects=1, max_objects=5, character_prob=0.4), context)
    out, index = [], 0
    while len(out) < count:
        scene = sample_scene(world, EVAL_SEED, index)
        if any(o.character == name for o in scene.objects):
            out.append(scene.caption)
        index += 1
    return out


def all_five_prompts(count: int) -> list[str]:
    """`count` captions with all five characters in random distinct cells."""
    from banana_sdk.data.world import CHARACTERS, POSITIONS

    rng = np.random.default_rng(EVAL_SEED)
    out = []
    for _ in range(count):
        cells = rng.permutation(len(POSITIONS))[:5]
        names = rng.permutation(list(CHARACTERS))
        out.append(" and ".join(f"{n} {POSITIONS[c]}" for n, c in zip(names, cells, strict=True)))
    return out


def identity_hits(image: np.ndarray, prompt: str, only: str | None) -> list[bool]:
    """One pass/fail per character appearance the prompt asks for (only `only`'s, if given)."""
    from banana_sdk.data.world import parse_caption
    from banana_sdk.eval.detect import detect

    by_cell = {}
    for det in detect(image):
        by_cell.setdefault(det.cell, det)
    return [spec.cell in by_cell and by_cell[spec.cell].character == spec.character
            for spec in parse_caption(prompt) if spec.character and (only is None or spec.character == only)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bundle", default=None, help="LiteRT bundle of a model trained with the subject stage.")
    parser.add_argument("--model", default=None, help="Checkpoint dir instead (PyTorch).")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    if (args.bundle is None) == (args.model is None):
        raise SystemExit("give one of --bundle or --model")

    from banana_sdk.data.render import render_scene
    from banana_sdk.data.world import CHARACTERS
    from banana_sdk.pipeline import generate_with
    from banana_sdk.subjects import REFERENCE_SIZE, SubjectStore, bind, prompt_words, subject_from_references
    from banana_sdk.subjects.train import reference_scene

    if args.bundle:
        from banana_sdk.runtime.litert import LiteRTPipeline

        backend = LiteRTPipeline.load(args.bundle, threads=args.threads)
        source = f"LiteRT bundle {Path(args.bundle).name} ({backend.manifest['quantization']['recipe']})"
    else:
        from banana_sdk.pipeline import Pipeline

        pipe = Pipeline.from_pretrained(args.model)
        backend, source = pipe.backend, f"PyTorch {Path(args.model).name}"
    cfg = backend.config
    store = SubjectStore(tempfile.mkdtemp(prefix="bench-subjects-"))
    rng = np.random.default_rng(5)
    from PIL import Image

    for name in CHARACTERS:
        refs = []
        for k in range(2):
            path = store.root / f"{name}-ref{k}.png"
            Image.fromarray(render_scene(reference_scene(name, rng), REFERENCE_SIZE)).save(path)
            refs.append(path)
        store.add(subject_from_references(name, refs))
    subjects = {n: store.get(n) for n in CHARACTERS}

    rows_in = [(n, prompts_for(n, args.scenes, cfg.tokenizer.context_length), n) for n in CHARACTERS]
    rows_in.append(("all 5 in one scene", all_five_prompts(args.scenes), None))
    rows, totals = [], {"base": [], "subj": []}
    start = time.perf_counter()
    for label, prompts, only in rows_in:
        hits = {"base": [], "subj": []}
        for i, prompt in enumerate(prompts):
            named = [subjects[n] for n in CHARACTERS if n in prompt_words(prompt)]
            tokens, mask, _ = bind(prompt, named, cfg.denoiser.max_subjects, cfg.text.width)
            seed = 7919 * i + 17
            for key, extra in (("base", {}), ("subj", {"subjects": tokens, "subject_mask": mask})):
                image = generate_with(backend, prompt, args.steps, seed, None, **extra).image
                hits[key] += identity_hits(np.asarray(image.convert("RGB")), prompt, only)
        for key in hits:
            totals[key] += hits[key] if only is not None else []
        rows.append([label, len(prompts), len(hits["base"]), f"{100 * np.mean(hits['base']):.1f}",
                     f"{100 * np.mean(hits['subj']):.1f}"])
    rows.append(["5 characters x scenes (overall)", len(CHARACTERS) * args.scenes, len(totals["base"]),
                 f"{100 * np.mean(totals['base']):.1f}", f"{100 * np.mean(totals['subj']):.1f}"])
    notes = (f"{source}, {args.steps or cfg.sampler.steps} {cfg.sampler.kind} steps, identity = ShapeEval detector "
             f"finds the intended character in its cell (target >= 90%). {time.perf_counter() - start:.0f} s.")
    record("subjects", [Table("identity", ["row", "scenes", "appearances", "identity, no subject tokens %",
                                           "identity, subject tokens %"], rows, replace_all=True)],
           notes=notes, append=not args.no_append)


if __name__ == "__main__":
    main()

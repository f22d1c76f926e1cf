"""Subjects the model never saw (issue 23, part 4): held-out characters introduced by one reference image.

    python benchmarks/bench_unseen_subjects.py --model out/train/subjP --bundle out/bundles/subjP-int4   # the figure
    python benchmarks/bench_unseen_subjects.py --model out/train/subjP --no-append --scenes 4           # PyTorch look

`--characters` held-out identities (`characters.held_out_ids()`: no training step ever draws them), picked by
`--seed`, each becomes a subject the way a user makes one: `render_character(id)` saved as a PNG, then
`banana subject add NAME --image ref.png --model CKPT` (the checkpoint's learned reference encoder). Prompts name
the subjects by those names; the SDK binds them (slot order = first mention) and rewrites them to the model's
placeholders (binding rule 5), as `banana generate --subject` does. Rows, each image scored by the strict
identity scorer (every attribute against the reference: body, colour, pattern, eyes, accessory):
- each character in `--scenes` held-out scenes with 0-3 other objects (plain shapes or named characters);
- `--scenes` scenes with all the characters at once (the scene counts only if every one passes);
- baseline: the same prompts, seeds and model with the subject slots empty (the prompt still says where).
Content: the other objects of the same scenes (ShapeEval's shape, colour, position, named-character checks),
beside the same scenes generated without the subject phrase at all (ShapeEval without subjects).
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

EVAL_SEED = 1_000_231  # held-out world of the scenes (training used other seeds)
NAMES = ("hero", "rival", "scout", "sage", "imp")  # the subjects' names as a user would write them


def pick_identities(count: int, seed: int) -> list[int]:
    from banana_sdk.data.characters import held_out_ids

    pool = np.array(held_out_ids())
    return [int(i) for i in np.random.default_rng(seed).choice(pool, size=count, replace=False)]


def scenes_for(character: int, count: int, index0: int, context: int) -> list:  # noqa: ANN001
    """`count` held-out scenes: the subject (placeholder 1) in a random cell among 0-3 other objects."""
    from banana_sdk.data.world import CELL, Scene, SceneObject, WorldConfig, sample_scene

    world = WorldConfig(min_objects=1, max_objects=4, character_prob=0.15)
    rng = np.random.default_rng(EVAL_SEED + character)
    out = []
    for k in range(count):
        scene = sample_scene(world, EVAL_SEED, index0 + k)
        objects = list(scene.objects)
        pick = int(rng.integers(len(objects)))
        row, col = divmod(objects[pick].cell, 3)
        objects[pick] = SceneObject(cell=objects[pick].cell, cx=(col + 0.5) * CELL, cy=(row + 0.5) * CELL,
                                    identity=character, subject=1)
        out.append(Scene(tuple(objects)))
    return out


def all_scenes(characters: list[int], count: int) -> list:  # noqa: ANN001
    from banana_sdk.data.world import CELL, Scene, SceneObject

    rng = np.random.default_rng(EVAL_SEED)
    out = []
    for _ in range(count):
        cells = rng.permutation(9)[:len(characters)]
        order = rng.permutation(len(characters))
        objects = []
        for k, (cell, which) in enumerate(zip(cells, order, strict=True), start=1):
            row, col = divmod(int(cell), 3)
            objects.append(SceneObject(cell=int(cell), cx=(col + 0.5) * CELL, cy=(row + 0.5) * CELL,
                                       identity=characters[which], subject=k))
        out.append(Scene(tuple(objects)))
    return out


def named_prompt(scene, names: dict[int, str]) -> str:  # noqa: ANN001
    """The scene's caption with each placeholder replaced by its character's user name."""
    from banana_sdk.data.characters import placeholder

    caption = scene.caption
    for obj in scene.objects:
        if obj.identity is not None:
            caption = caption.replace(placeholder(obj.subject), names[obj.identity], 1)
    return caption


def other_checks(image: np.ndarray, scene) -> list[bool]:  # noqa: ANN001
    """ShapeEval's per-object checks of the scene's non-subject objects (shape, colour, position, identity)."""
    from banana_sdk.data.world import Scene, parse_caption
    from banana_sdk.eval.detect import detect
    from banana_sdk.eval.score import score_detections

    others = [o for o in scene.objects if o.identity is None]
    if not others:
        return []
    specs = parse_caption(Scene(tuple(others)).caption)
    skip = {o.cell for o in scene.objects if o.identity is not None}
    checks = score_detections(specs, [d for d in detect(image) if d.cell not in skip]).checks
    return [v for key, values in checks.items() if key != "count" for v in values]


def command_without_about() -> str:
    """The reproduce command with `--about TEXT` left out (it is printed in the notes)."""
    import shlex

    argv, out = sys.argv[1:], []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--about":
            skip = True
        elif not arg.startswith("--about="):
            out.append(arg)
    return shlex.join(["python", "benchmarks/bench_unseen_subjects.py", *out])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="Checkpoint with a learned reference encoder.")
    parser.add_argument("--bundle", default=None, help="Its LiteRT bundle (default: run the checkpoint in PyTorch).")
    parser.add_argument("--characters", type=int, default=5)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--steps", default="4", help="Comma-separated step counts, e.g. 4,1.")
    parser.add_argument("--seed", type=int, default=0, help="Which held-out identities (the figure: 0).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", default=None, help="Also write every image with a reference here (PNG).")
    parser.add_argument("--about", default="", help="How the model was made (appended to the recorded notes).")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from PIL import Image

    from banana_sdk.checkpoint import weights_hash
    from banana_sdk.data.characters import describe, held_out_ids
    from banana_sdk.data.render import render_character
    from banana_sdk.data.world import Scene
    from banana_sdk.eval.identity import ATTRIBUTES, identity_reference, score_character
    from banana_sdk.pipeline import generate_with
    from banana_sdk.subjects import SubjectStore
    from banana_sdk.subjects.binding import bound_inputs
    from banana_sdk.subjects.store import subject_from_model

    if args.bundle:
        from banana_sdk.runtime.litert import LiteRTPipeline

        backend = LiteRTPipeline.load(args.bundle, threads=args.threads)
        identity = backend.typed.model.weights_sha256
        source = f"LiteRT bundle {Path(args.bundle).name} ({backend.manifest['quantization']['recipe']})"
    else:
        from banana_sdk.pipeline import Pipeline

        backend = Pipeline.from_pretrained(args.model).backend
        identity, source = weights_hash(args.model), f"PyTorch {Path(args.model).name}"
    if identity != weights_hash(args.model):
        raise SystemExit(f"{args.bundle} was not converted from {args.model} (weights differ)")
    cfg = backend.config
    if args.characters > min(len(NAMES), cfg.denoiser.max_subjects):
        raise SystemExit(f"--characters must be at most {min(len(NAMES), cfg.denoiser.max_subjects)}")
    characters = pick_identities(args.characters, args.seed)
    assert set(characters) <= set(held_out_ids())
    names = dict(zip(characters, NAMES, strict=False))
    store = SubjectStore(tempfile.mkdtemp(prefix="bench-unseen-"))
    for cid, name in names.items():
        path = store.root / f"{name}.png"
        Image.fromarray(render_character(cid)).save(path)
        store.add(subject_from_model(name, [path], args.model))

    context = cfg.tokenizer.context_length
    groups = [(f"{names[c]}: {describe(c)}", scenes_for(c, args.scenes, 1000 * i, context), True)
              for i, c in enumerate(characters)]
    groups.append((f"all {len(characters)} in one scene", all_scenes(characters, args.scenes), False))
    start = time.perf_counter()
    rows, content_rows, attribute_rows = [], [], []
    for steps in [int(s) for s in args.steps.split(",")]:
        totals = {k: [] for k in ("ref", "base")}
        attributes = {k: {a: [] for a in ATTRIBUTES} for k in ("ref", "base")}
        content = {"ref": [], "without": []}
        for label, scenes, single in groups:
            hits = {"ref": [], "base": []}
            scene_pass = {"ref": [], "base": []}
            for i, scene in enumerate(scenes):
                prompt = named_prompt(scene, names)
                used = [names[o.identity] for o in scene.objects if o.identity is not None]
                bound, tokens, mask = bound_inputs(prompt, used, cfg, store, identity)
                seed = 7919 * i + 31
                for key, extra in (("ref", {"subjects": tokens, "subject_mask": mask}),
                                   ("base", {"subjects": np.zeros_like(tokens), "subject_mask": np.zeros_like(mask)})):
                    image = np.asarray(generate_with(backend, bound, steps, seed, None, **extra).image.convert("RGB"))
                    scores = [score_character(image, o.cell, identity_reference(o.identity))
                              for o in scene.objects if o.identity is not None]
                    passed = [score.passed for score in scores]
                    for score in scores:
                        for a in ATTRIBUTES:
                            attributes[key][a].append(score.checks[a])
                    if key == "ref" and args.save:
                        Path(args.save).mkdir(parents=True, exist_ok=True)
                        Image.fromarray(image).save(Path(args.save) / f"{steps}-{label.split(':')[0]}-{i}.png")
                    hits[key] += passed
                    scene_pass[key].append(all(passed))
                    if key == "ref" and single:
                        content["ref"] += other_checks(image, scene)
                if single and any(o.identity is None for o in scene.objects):
                    rest = Scene(tuple(o for o in scene.objects if o.identity is None))
                    image = np.asarray(generate_with(backend, rest.caption, steps, seed, None).image.convert("RGB"))
                    content["without"] += other_checks(image, rest)
            for key in totals:
                totals[key] += hits[key] if single else []
            rows.append([steps, label, len(scenes), len(hits["ref"]), f"{100 * np.mean(hits['base']):.1f}",
                         f"{100 * np.mean(hits['ref']):.1f}",
                         "" if single else f"{100 * np.mean(scene_pass['ref']):.1f}"])
        rows.append([steps, f"{len(characters)} characters x {args.scenes} scenes", len(characters) * args.scenes,
                     len(totals["ref"]), f"{100 * np.mean(totals['base']):.1f}", f"{100 * np.mean(totals['ref']):.1f}",
                     ""])
        for key, what in (("base", "no reference"), ("ref", "reference")):
            attribute_rows.append([steps, what, *(f"{100 * np.mean(attributes[key][a]):.1f}" for a in ATTRIBUTES)])
        content_rows.append([steps, len(content["ref"]), f"{100 * np.mean(content['ref']):.1f}",
                             f"{100 * np.mean(content['without']):.1f}",
                             f"{100 * (np.mean(content['ref']) - np.mean(content['without'])):+.1f}"])
    notes = (f"{source}; held-out identities {characters} (seed {args.seed}), one reference render each "
             f"(`subject add --model`); strict identity = every attribute passes (BENCHMARKS \"Strict identity\"); "
             f"targets: identity >= 90 %, all five in one scene >= 85 %, content within 3 points. "
             f"{time.perf_counter() - start:.0f} s. {args.about}").strip()
    record("unseen_subjects", [
        Table("identity", ["steps", "row", "scenes", "appearances", "strict identity, no reference %",
                           "strict identity, reference %", "scenes with every character right %"], rows, key=2,
              title="Held-out characters from one reference image: strict identity"),
        Table("attributes", ["steps", "subject tokens", *(f"{a} %" for a in ATTRIBUTES)], attribute_rows, key=2,
              title="Which attributes pass (every appearance, the all-five scenes included)"),
        Table("content", ["steps", "checks", "other objects, with subjects %", "same scenes without subjects %",
                          "difference, points"], content_rows,
              title="The rest of each scene: ShapeEval checks of the other objects"),
    ], notes=notes, append=not args.no_append, command=command_without_about())


if __name__ == "__main__":
    main()

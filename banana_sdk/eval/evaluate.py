"""ShapeEval end to end: prompts from a held-out ShapeWorld, images from a model or bundle, one report.

Prompts are scenes of the demo world under seed `EVAL_SEED_OFFSET + seed` (training uses seed 0), trimmed to
the model's context. The Fréchet distance compares evaluator features of the generated images with those
of the real renders of the same scenes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from banana_sdk.config import ModelConfig
from banana_sdk.data.dataset import ShapeWorld
from banana_sdk.data.world import DEMO_WORLD, DataError, Style, WorldConfig, fit_to_context, parse_caption, parse_styles
from banana_sdk.errors import BananaError
from banana_sdk.eval.detect import cell_features, detect
from banana_sdk.eval.frechet import frechet_distance
from banana_sdk.eval.score import ImageScore, Tally, score_detections
from banana_sdk.eval.seeds import EVAL_SEED_OFFSET
from banana_sdk.eval.style import style_votes

MAX_SAMPLES = 100_000  # upper bound on --samples


class EvalError(BananaError):
    """An evaluation that cannot run (bad arguments, unparseable prompt, wrong image)."""


def score_image(image: np.ndarray | Any, prompt: str) -> ImageScore:
    """Score one RGB image (uint8 array (S, S, 3) or PIL image) against a ShapeWorld prompt."""
    try:
        specs = parse_caption(prompt)
    except DataError as exc:
        raise EvalError(str(exc)) from None
    array = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or array.shape[0] != array.shape[1]:
        raise EvalError(f"expected a square uint8 RGB image, got {array.dtype} {array.shape}")
    return score_detections(specs, detect(array))


def eval_world(config: ModelConfig | None = None, seed: int = 0, size: int | None = None,
               world: WorldConfig = DEMO_WORLD) -> ShapeWorld:
    """The held-out evaluation world for a model (its size and context) or for a bare image size."""
    if seed < 0:
        raise EvalError(f"--seed must be >= 0, got {seed}")
    if config is not None:
        world = fit_to_context(world, config.tokenizer.context_length)
        size = config.image_size if size is None else size
    return ShapeWorld(world, EVAL_SEED_OFFSET + seed, size or 128)


def _check_samples(samples: int) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or not 2 <= samples <= MAX_SAMPLES:
        raise EvalError(f"--samples must be an integer in [2, {MAX_SAMPLES}], got {samples!r}")


def evaluate_images(world: ShapeWorld, images: Callable[[int, str], np.ndarray], samples: int,
                    reference: np.ndarray | None = None, styles: tuple[Style, ...] = ()) -> dict[str, Any]:
    """Score `images(i, prompt)` for scenes 0..samples-1 of `world`; Fréchet distance to the real renders.

    With `styles` (the images should show them, e.g. made with a style peel) colours are named as drawn in
    those styles, the report adds `style_score` (fraction of images showing every style) and the Fréchet
    reference is the real renders in those styles."""
    _check_samples(samples)
    styles = parse_styles(styles)
    tally, feats, styled, shown = Tally(), [], 0, dict.fromkeys(Style, 0)
    for i in range(samples):
        scene = world.scene(i)
        array = images(i, scene.caption)
        detections = detect(array, styles)
        tally.add(score_detections(parse_caption(scene.caption), detections))
        feats.append(cell_features(detections))
        votes = style_votes(detections)
        styled += all(votes[s] > 0 for s in styles)
        for s in Style:
            shown[s] += votes[s] > 0
    report = tally.summary()
    report["styles_shown"] = {s.value: round(n / samples, 4) for s, n in shown.items()}  # any style, intended or not
    if styles:
        report["styles"] = [s.value for s in styles]
        report["style_score"] = round(styled / samples, 4)
    if reference is None:
        reference = real_features(dataclasses.replace(world, styles=styles), samples)
    report["frechet_distance"] = round(frechet_distance(np.stack(feats), reference), 4)
    return report


def real_features(world: ShapeWorld, samples: int) -> np.ndarray:
    """(samples, D) evaluator features of the real renders of scenes 0..samples-1 (in the world's styles)."""
    return np.stack([cell_features(detect(world.image(i), world.styles)) for i in range(samples)])


def evaluate_real(samples: int = 1000, seed: int = 0, size: int = 128, world: WorldConfig = DEMO_WORLD,
                  corrupt: Callable[[np.ndarray, int], np.ndarray] | None = None) -> dict[str, Any]:
    """The evaluator's own accuracy on real ShapeWorld renders (optionally corrupted, e.g. blurred).

    The Fréchet distance here is between the (corrupted) renders of this world and renders of another
    held-out world (seed + 1): the floor a perfect generator would reach with this many samples.
    """
    w = eval_world(None, seed, size, world)
    other = eval_world(None, seed + 1, size, world)
    fn = (lambda i, _p: w.image(i)) if corrupt is None else (lambda i, _p: corrupt(w.image(i), i))
    report = evaluate_images(w, fn, samples, reference=real_features(other, samples))
    return {"source": "real", "size": size, "samples": samples, "seed": seed, **report}


def evaluate_pipeline(pipe: Any, samples: int = 100, seed: int = 0, steps: int | None = None,
                      sampler: str | None = None, guidance_scale: float | None = None,
                      label: dict[str, Any] | None = None, styles: tuple[Style, ...] = ()) -> dict[str, Any]:
    """Evaluate anything with `.config` and `.run(prompt, steps=, seed=, ...) -> Generation` (`styles`: the
    styles its images should show, see `evaluate_images`)."""
    _check_samples(samples)
    cfg: ModelConfig = pipe.config
    world = eval_world(cfg, seed)
    latencies: list[float] = []

    def generate(i: int, prompt: str) -> np.ndarray:
        result = pipe.run(prompt, steps=steps, seed=seed * 1_000_003 + i, sampler=sampler,
                          guidance_scale=guidance_scale)
        latencies.append(result.e2e_ms)
        return np.asarray(result.image.convert("RGB"))

    start = time.perf_counter()
    report = evaluate_images(world, generate, samples, styles=styles)
    return {
        **(label or {}), "model": cfg.name,
        "sampler": sampler or cfg.sampler.kind, "steps": steps if steps is not None else cfg.sampler.steps,
        "guidance_scale": guidance_scale if guidance_scale is not None else cfg.sampler.guidance_scale,
        "samples": samples, "seed": seed, **report,
        "latency_ms": {"e2e_mean": round(float(np.mean(latencies)), 2),
                       "e2e_median": round(float(np.median(latencies)), 2)},
        "eval_s": round(time.perf_counter() - start, 1),
    }

"""ShapeEval: its accuracy on real ShapeWorld, that it fails wrong images, the Fréchet distance, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from scipy import ndimage

from banana_sdk.data.world import BACKGROUND
from banana_sdk.eval.detect import detect
from banana_sdk.eval.evaluate import EvalError, eval_world, evaluate_images, evaluate_real, score_image
from banana_sdk.eval.frechet import frechet_distance
from banana_sdk.pipeline import Pipeline


@pytest.mark.parametrize("size", [64, 128])
def test_evaluator_is_exact_on_real_shapeworld(size):
    report = evaluate_real(samples=150, seed=3, size=size)
    assert report["attribute_accuracy"] >= 0.97  # the bar; measured 1.0 (BENCHMARKS.md)
    assert report["fully_correct"] >= 0.97
    for attribute, value in report["per_attribute"].items():
        assert value >= 0.97, attribute
    assert report["frechet_distance"] < 1.2  # two independent real samples; measured 0.90 (64 px), 0.99 (128 px)


def test_evaluator_tolerates_mild_blur_and_noise():
    def corrupt(image: np.ndarray, i: int) -> np.ndarray:
        blurred = ndimage.gaussian_filter(image.astype(np.float32), sigma=(1.0, 1.0, 0))
        noise = np.random.default_rng(i).normal(0, 8, image.shape)
        return np.clip(blurred + noise, 0, 255).astype(np.uint8)

    report = evaluate_real(samples=100, seed=4, size=128, corrupt=corrupt)
    assert report["attribute_accuracy"] >= 0.95


def test_wrong_images_score_low():
    world = eval_world(None, 5, 64)
    shuffled = evaluate_images(world, lambda i, _p: world.image((i + 1) % 100), 100)
    assert shuffled["attribute_accuracy"] < 0.25  # another scene's image: about chance; measured 0.171
    assert shuffled["fully_correct"] < 0.05
    blank = evaluate_images(world, lambda i, _p: np.full((64, 64, 3), BACKGROUND, np.uint8), 50)
    assert blank["per_attribute"]["position"] == 0.0 and blank["attribute_accuracy"] < 0.1
    assert shuffled["frechet_distance"] == pytest.approx(0.0, abs=1e-3)  # the same images in another order
    assert blank["frechet_distance"] > 15.0  # measured 21.2


def test_score_image_checks_binding_per_object():
    world = eval_world(None, 6, 128)
    i = next(k for k in range(50) if len(world.scene(k).objects) == 2 and not any(
        o.character for o in world.scene(k).objects))
    scene, image = world.scene(i), world.image(i)
    good = score_image(image, scene.caption)
    assert good.fully_correct
    a, b = scene.objects
    swapped = scene.caption.replace(a.position, "@@").replace(b.position, a.position).replace("@@", b.position)
    bad = score_image(image, swapped)  # same objects, positions exchanged between the phrases
    assert bad.accuracy("position") == 1.0 and not bad.fully_correct


def test_detector_finds_characters():
    world = eval_world(None, 0, 128)
    found = 0
    for i in range(60):
        for obj in world.scene(i).objects:
            if obj.character:
                dets = [d for d in detect(world.image(i)) if d.cell == obj.cell]
                assert dets and dets[0].character == obj.character
                found += 1
    assert found >= 10


def test_frechet_distance_properties():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 6)), rng.normal(size=(400, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) < 0.2  # measured 0.121
    assert frechet_distance(a, b + 3.0) == pytest.approx(frechet_distance(a, b) + 6 * 9.0, rel=0.05)
    with pytest.raises(ValueError):
        frechet_distance(a, b[:, :3])


def test_bad_inputs_are_eval_errors():
    with pytest.raises(EvalError, match="unknown word"):
        score_image(np.zeros((64, 64, 3), np.uint8), "a red blob top left")
    with pytest.raises(EvalError, match="square uint8"):
        score_image(np.zeros((64, 32, 3), np.uint8), "a red circle top left")
    with pytest.raises(EvalError, match="--samples"):
        evaluate_real(samples=1)
    with pytest.raises(EvalError, match="--seed"):
        eval_world(None, -1, 64)


def test_eval_cli_prints_one_json_object(tmp_path):
    Pipeline.from_preset("tiny").save_pretrained(tmp_path / "m")
    result = run_cli("eval", "--model", tmp_path / "m", "--samples", "3", "--steps", "1")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["samples"] == 3 and report["steps"] == 1 and report["source"] == "model"
    assert set(report["per_attribute"]) == {"shape", "colour", "position", "count", "size", "identity"}
    assert report["trained"] is False and 0.0 <= report["attribute_accuracy"] <= 1.0
    assert_one_line_error(run_cli("eval", "--samples", "3"), "--model", "--bundle")
    assert_one_line_error(run_cli("eval", "--model", tmp_path / "nope"), "does not exist")
    assert_one_line_error(run_cli("eval", "--model", tmp_path / "m", "--samples", "1"), "--samples")

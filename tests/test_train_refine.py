"""The critic and refine stages (few-step refinement, issue 20 part 1) on the tiny preset: what they train, what
they export, that the critic learns and that the refined student samples; and their bad-input paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli

from banana_sdk.checkpoint import load_checkpoint
from banana_sdk.data.dataset import ShapeWorld
from banana_sdk.data.world import DEMO_WORLD, Scene, SceneObject, Shape, Size
from banana_sdk.eval.detect import detect
from banana_sdk.models.critic import (
    IGNORE,
    KIND_EMPTY,
    KIND_PLAIN,
    CriticError,
    cell_correct,
    critic_loss,
    load_critic,
    scene_labels,
)
from banana_sdk.models.preview import vae_identity
from banana_sdk.pipeline import Pipeline
from banana_sdk.training.common import LoopConfig, Precision, TrainingError
from banana_sdk.training.critic import detection_labels
from banana_sdk.training.refine import RefineStageConfig, cell_mask
from banana_sdk.training.stages import train_stage

FAST = {"warmup": 2, "log_every": 1, "precision": Precision.FP32}


def loop(steps: int, batch: int = 4, **kw) -> LoopConfig:
    return LoopConfig(steps=steps, batch_size=batch, lr=kw.pop("lr", 1e-3), **{**FAST, **kw})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """vae -> teacher -> distill, then a critic trained long enough to learn, then refine."""
    root = tmp_path_factory.mktemp("refine")
    cache = root / "cache"
    out = {name: root / name for name in ("vae", "teacher", "distill", "critic", "refine")}
    torch.set_num_threads(1)
    train_stage("vae", loop(3), out["vae"], preset="tiny", crop=32)
    train_stage("teacher", loop(3, ema_decay=0.9), out["teacher"], init=out["vae"], latents=64, cache=cache)
    train_stage("distill", loop(2), out["distill"], teacher=out["teacher"], latents=64, cache=cache)
    train_stage("critic", loop(60, batch=32, lr=3e-3), out["critic"], model=out["distill"], latents=64,
                cache=cache, width=16, samples=12, sample_steps=(1, 2))
    train_stage("refine", loop(3), out["refine"], student=out["distill"], critic=out["critic"], latents=64,
                cache=cache, steps=(1, 2, 4), step_probs=(0.4, 0.3, 0.3))
    return out


def test_scene_labels_encode_each_cell():
    scene = Scene((SceneObject(cell=0, cx=0.1, cy=0.1, shape=Shape.STAR, colour="blue", size=Size.LARGE),
                   SceneObject(cell=4, cx=0.5, cy=0.5, character="zed")))
    labels = scene_labels(scene)
    assert labels.shape == (9, 4)
    assert labels[0].tolist() == [KIND_PLAIN, 3, 4, 1]  # star, blue, large
    assert labels[4, 0] == 2 + 1 and (labels[4, 1:] == IGNORE).all()  # zed is the second character
    assert (labels[[1, 2, 3, 5, 6, 7, 8], 0] == KIND_EMPTY).all()


def test_critic_loss_and_correctness_follow_the_labels():
    labels = torch.stack([scene_labels(ShapeWorld(DEMO_WORLD, 0, 64).scene(k)) for k in range(4)])
    perfect = {name: torch.full((4, 9, n), -20.0) for name, n in (("kind", 7), ("shape", 5), ("colour", 6),
                                                                    ("size", 2))}
    for k, z in enumerate(perfect.values()):
        target = labels[..., k]
        z.scatter_(-1, target.clamp(min=0)[..., None], 20.0)
    assert cell_correct(perfect, labels).all()
    assert float(critic_loss(perfect, labels)) < 1e-6
    wrong = {k: v.clone() for k, v in perfect.items()}
    wrong["kind"] = wrong["kind"].roll(1, dims=-1)
    assert not cell_correct(wrong, labels).any()
    assert float(critic_loss(wrong, labels)) > 10


def test_detection_labels_read_what_was_drawn():
    world = ShapeWorld(DEMO_WORLD, 0, 128)
    for k in range(20):  # on real renders the detector finds every object: its labels are the scene's
        scene = world.scene(k)
        assert torch.equal(detection_labels(detect(world.image(k))), scene_labels(scene)), scene.caption
    assert (detection_labels([])[:, 0] == KIND_EMPTY).all()


def test_critic_learns_to_read_latents(runs):
    facts = [json.loads(line) for line in (runs["critic"] / "log.jsonl").read_text().splitlines()]
    first, last = facts[0], facts[-1]
    assert last["loss"] < first["loss"] * 0.7  # it learns (64 scenes, 60 steps)
    assert last["cell_acc"] > 0.6  # most cells of a 1-5 object scene are empty: the kind head learns that first
    model, _ = load_checkpoint(runs["distill"])
    critic = load_critic(runs["critic"], vae_identity(model.vae))
    assert sum(p.numel() for p in critic.parameters()) > 1000
    with pytest.raises(CriticError, match="another VAE"):
        load_critic(runs["critic"], "0" * 64)


def test_refine_trains_only_the_denoiser_and_exports_a_student(runs):
    before, _ = load_checkpoint(runs["distill"])
    after, extra = load_checkpoint(runs["refine"])
    assert extra["stage"] == "refine" and extra["trained"]
    assert after.config.sampler.kind == "lcm" and after.config.sampler.steps == 4
    same = {name: all(torch.equal(a, b) for a, b in zip(getattr(before, name).state_dict().values(),
                                                         getattr(after, name).state_dict().values(), strict=True))
            for name in ("text_encoder", "denoiser", "vae")}
    assert same == {"text_encoder": True, "denoiser": False, "vae": True}
    log = [json.loads(line) for line in (runs["refine"] / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite([r["anchor"], r["critic"]]).all() for r in log)
    assert {r["steps"] for r in log} <= {1.0, 2.0, 4.0}
    pipe = Pipeline.from_pretrained(runs["refine"])
    for steps in (1, 2, 4):
        image = pipe.generate("a small red circle top left", steps=steps, seed=0)
        assert np.asarray(image).std() > 0  # a picture, not a constant


def test_refine_chains_into_qat(tmp_path, runs):
    train_stage("qat", loop(1, lr=1e-4), tmp_path / "qat", student=runs["refine"], latents=64,
                cache=runs["refine"].parent / "cache")
    _, extra = load_checkpoint(tmp_path / "qat")
    assert [r["stage"] for r in extra["recipe"]][-2:] == ["refine", "qat"]


def test_cell_mask_covers_each_cell():
    ok = torch.zeros(1, 9, dtype=torch.bool)
    ok[0, 4] = True  # the centre cell
    mask = cell_mask(ok, 6)[0, 0]
    assert mask[2:4, 2:4].eq(1).all() and mask.sum() == 4


def test_refine_bad_arguments(tmp_path, runs):
    with pytest.raises(TrainingError, match="divisors"):
        RefineStageConfig(student=runs["distill"], critic=runs["critic"], steps=(3,)).validate()
    with pytest.raises(TrainingError, match="summing to 1"):
        RefineStageConfig(student=runs["distill"], critic=runs["critic"], step_probs=(0.5, 0.5, 0.5)).validate()
    assert_one_line_error(run_cli("train", "refine", "--student", runs["teacher"], "--critic", runs["critic"],
                                  "--out", tmp_path / "r"), "not a distilled student")
    assert_one_line_error(run_cli("train", "refine", "--student", runs["distill"], "--critic", runs["vae"],
                                  "--out", tmp_path / "r"), "as the critic")
    assert_one_line_error(run_cli("train", "refine", "--student", runs["distill"], "--critic", runs["critic"],
                                  "--step-probs", "a,b", "--out", tmp_path / "r"), "--step-probs")
    assert_one_line_error(run_cli("train", "critic", "--model", runs["distill"], "--out", tmp_path / "c",
                                  "--latents", "1"), "--latents")
    assert not (tmp_path / "r").exists()

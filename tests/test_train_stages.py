"""A few steps of every training stage on the tiny preset, resuming, and the bad-input paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli

from banana_sdk.checkpoint import load_checkpoint
from banana_sdk.pipeline import Pipeline
from banana_sdk.training.common import LoopConfig, Precision, TrainingError
from banana_sdk.training.stages import train_stage
from banana_sdk.training.state import STATE_FILE

FAST = {"warmup": 2, "log_every": 1, "precision": Precision.FP32}


def loop(steps: int, batch: int = 4, **kw) -> LoopConfig:
    return LoopConfig(steps=steps, batch_size=batch, lr=kw.pop("lr", 1e-3), **{**FAST, **kw})


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """vae -> teacher -> distill -> qat, a few steps each (shared by the tests below)."""
    root = tmp_path_factory.mktemp("train")
    cache = root / "cache"
    out = {name: root / name for name in ("vae", "teacher", "distill", "qat")}
    torch.set_num_threads(1)
    train_stage("vae", loop(3), out["vae"], preset="tiny", crop=32)
    train_stage("teacher", loop(3, ema_decay=0.9), out["teacher"], init=out["vae"], latents=16, cache=cache)
    train_stage("distill", loop(2), out["distill"], teacher=out["teacher"], latents=16, cache=cache)
    train_stage("qat", loop(2, lr=1e-4), out["qat"], student=out["distill"], latents=16, cache=cache)
    return out


def test_each_stage_exports_a_loadable_checkpoint(runs):
    expected = {"vae": None, "teacher": ("euler", 40), "distill": ("lcm", 4), "qat": ("lcm", 4)}
    for stage, path in runs.items():
        model, extra = load_checkpoint(path)
        assert extra["trained"] is True and extra["stage"] == stage
        assert [r["stage"] for r in extra["recipe"]][-1] == stage
        if expected[stage]:
            assert (model.config.sampler.kind, model.config.sampler.steps) == expected[stage]
        log = [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log] == list(range(1, len(log) + 1))
        assert all(np.isfinite(r["loss"]) for r in log)
    assert [r["stage"] for r in load_checkpoint(runs["qat"])[1]["recipe"]] == ["vae", "teacher", "distill", "qat"]


def test_stages_train_only_their_part(runs):
    vae, _ = load_checkpoint(runs["vae"])
    teacher, _ = load_checkpoint(runs["teacher"])
    student, extra = load_checkpoint(runs["distill"])
    qat, _ = load_checkpoint(runs["qat"])

    def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))

    assert vae.config.vae.latent_scale != 1.0 and same(vae.vae, teacher.vae)  # scale measured, VAE frozen
    assert not same(vae.denoiser, teacher.denoiser)
    assert same(teacher.text_encoder, student.text_encoder) and not same(teacher.denoiser, student.denoiser)
    assert extra["distilled_guidance"] == 3.0 and student.config.sampler.guidance_scale == 1.0
    assert not same(student.denoiser, qat.denoiser) and same(student.vae, qat.vae)
    assert Pipeline.from_pretrained(runs["qat"]).generate("a red circle top left", steps=2).size == (64, 64)


def test_qat_exports_the_weights_the_int4_bundle_runs(runs):
    """The checkpoint holds the fake-quantized weights (a fixed point of the recipe); the resumable state keeps
    the latent weights that training updates, and `--export latent` exports those."""
    from banana_sdk.training.fakequant import QuantSpec, quantized_parameters

    qat, extra = load_checkpoint(runs["qat"])
    assert extra["quantization_aware"] == {"recipe": "int4", "block_size": 32, "fp16_storage": True,
                                           "weights": "quantized"}
    state = torch.load(runs["qat"] / STATE_FILE, map_location="cpu", weights_only=True)["model"]
    moved = 0
    for prefix, module in (("text_encoder.", qat.text_encoder), ("denoiser.", qat.denoiser)):
        again = quantized_parameters(module, QuantSpec(block_size=32))
        for name, param in module.named_parameters():
            torch.testing.assert_close(again[name].detach(), param.detach(), rtol=2e-3, atol=1e-7)
            moved += not torch.equal(state[prefix + name], param.detach())
    assert moved > 10  # the latent weights are not on the grid


def test_qat_can_export_the_latent_weights(tmp_path, runs):
    out = tmp_path / "latent"
    train_stage("qat", loop(1, lr=1e-4), out, student=runs["distill"], latents=16, cache=tmp_path / "cache",
                export="latent")
    model, extra = load_checkpoint(out)
    assert extra["quantization_aware"]["weights"] == "latent"
    state = torch.load(out / STATE_FILE, map_location="cpu", weights_only=True)["model"]
    for name, param in model.denoiser.named_parameters():
        assert torch.equal(state["denoiser." + name], param.detach())


def test_seeded_runs_are_identical(tmp_path, runs):
    args = dict(init=runs["vae"], latents=16, cache=tmp_path / "cache")
    train_stage("teacher", loop(3), tmp_path / "a", **args)
    train_stage("teacher", loop(3), tmp_path / "b", **args)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_resume_matches_an_uninterrupted_run(tmp_path, runs):
    args = dict(init=runs["vae"], latents=16, cache=tmp_path / "cache")
    train_stage("teacher", loop(4, ema_decay=0.5), tmp_path / "full", **args)
    first = train_stage("teacher", loop(4, ema_decay=0.5, stop_after=2), tmp_path / "part", **args)
    assert first["step"] == 2  # stopped (and checkpointed) halfway through the 4-step schedule
    summary = train_stage("teacher", loop(4, ema_decay=0.5), tmp_path / "part", resume=True, **args)
    assert summary["resumed_from"] == 2
    full, part = load_checkpoint(tmp_path / "full")[0], load_checkpoint(tmp_path / "part")[0]
    for (name, x), y in zip(full.state_dict().items(), part.state_dict().values(), strict=True):
        assert torch.equal(x, y), name  # optimizer, EMA, schedule, noise and data order all resumed exactly
    steps = [json.loads(line)["step"] for line in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_resume_refuses_another_preset_and_corrupt_state(tmp_path, runs):
    copy = tmp_path / "vae"
    shutil.copytree(runs["vae"], copy)
    with pytest.raises(TrainingError, match="different architecture"):
        train_stage("vae", loop(5), copy, preset="demo", resume=True)
    with pytest.raises(TrainingError, match="holds a 'vae' run"):
        train_stage("teacher", loop(5), copy, init=runs["vae"], latents=16, cache=tmp_path / "c", resume=True)
    (copy / STATE_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="is corrupt"):
        train_stage("vae", loop(5), copy, preset="tiny", resume=True, crop=32)
    assert (copy / STATE_FILE).read_bytes() == b"not a checkpoint"  # nothing was changed or deleted
    with pytest.raises(TrainingError, match="nothing to resume"):
        train_stage("vae", loop(5), tmp_path / "empty", preset="tiny", resume=True)


def test_nan_loss_stops_and_keeps_the_last_checkpoint(tmp_path, runs):
    out = tmp_path / "nan"
    train_stage("teacher", loop(2), out, init=runs["vae"], latents=16, cache=tmp_path / "c")
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(TrainingError, match=r"became (nan|inf).*step 2\) is kept"):
        train_stage("teacher", loop(6, lr=1e20), out, init=runs["vae"], latents=16, cache=tmp_path / "c",
                    resume=True)
    assert (out / "model.safetensors").read_bytes() == before


def test_cli_train_and_bad_arguments(tmp_path, runs):
    ok = run_cli("train", "vae", "--preset", "tiny", "--out", tmp_path / "v", "--steps", "2", "--batch", "2",
                 "--crop", "32", "--precision", "fp32")
    assert ok.code == 0, ok.err
    assert json.loads(ok.out.splitlines()[-1])["steps"] == 2
    assert_one_line_error(run_cli("train", "vae", "--preset", "tiny", "--out", tmp_path / "v", "--steps", "2"),
                          "already holds a run", "--resume")
    assert_one_line_error(run_cli("train", "vae", "--preset", "nope", "--out", tmp_path / "w"), "unknown preset")
    assert_one_line_error(run_cli("train", "vae", "--preset", "tiny", "--out", tmp_path / "w", "--steps", "0"),
                          "--steps")
    assert_one_line_error(run_cli("train", "vae", "--preset", "tiny", "--out", tmp_path / "w", "--batch", "3",
                                  "--lr", "-1"), "--lr")
    assert_one_line_error(run_cli("train", "teacher", "--init", tmp_path / "missing", "--out", tmp_path / "t"),
                          "does not exist")
    assert_one_line_error(run_cli("train", "distill", "--teacher", runs["vae"], "--out", tmp_path / "d"),
                          "not a trained teacher")
    assert_one_line_error(run_cli("train", "vae", "--preset", "tiny", "--out", tmp_path / "v", "--resume",
                                  "--steps", "2"), "already at step 2")

"""`vae-refit`: a trained model's VAE refit on styled renders, everything else and the latent scale kept."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from test_train_stages import loop, runs  # noqa: F401

from banana_sdk.checkpoint import load_checkpoint
from banana_sdk.data.world import BACKGROUND
from banana_sdk.training.common import TrainingError
from banana_sdk.training.data import train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.stages import train_stage
from banana_sdk.training.vae_refit import VAERefitConfig, refit_batch


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_refit_trains_only_the_vae_and_keeps_the_latent_space(tmp_path: Path, runs) -> None:  # noqa: F811
    out = tmp_path / "refit"
    train_stage("vae-refit", loop(3), out, init=runs["qat"], crop=32)
    base, base_extra = load_checkpoint(runs["qat"])
    refit, extra = load_checkpoint(out)
    assert _same(base.denoiser, refit.denoiser) and _same(base.text_encoder, refit.text_encoder)
    assert not _same(base.vae.decoder, refit.vae.decoder) and not _same(base.vae.encoder, refit.vae.encoder)
    assert refit.config == base.config  # the latent scale and the sampler defaults are the init's
    assert extra["stage"] == "vae-refit" and extra["base_stage"] == "qat"
    assert extra["quantization_aware"] == base_extra["quantization_aware"]
    assert [r["stage"] for r in extra["recipe"]] == ["vae", "teacher", "distill", "qat", "vae-refit"]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) and r["anchor_drift"] >= 0 for r in log)
    # a refit student is still a student: the later stages take it
    train_stage("qat", loop(1, lr=1e-5), tmp_path / "qat", student=out, latents=16, cache=tmp_path / "cache")


def test_anchor_holds_plain_latents_in_place(tmp_path: Path, runs) -> None:  # noqa: F811
    """With a large anchor weight the plain scenes' latents barely move; without it they drift further."""
    def drift(weight: float) -> float:
        out = tmp_path / f"a{weight}"
        train_stage("vae-refit", loop(4, lr=3e-3), out, init=runs["vae"], crop=32, anchor_weight=weight)
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        return log[-1]["anchor_drift"]

    assert drift(100.0) < drift(0.0)


def test_refit_batches_draw_styles_at_the_asked_rate(runs) -> None:  # noqa: F811
    model, _ = load_checkpoint(runs["vae"])
    world = train_world(model.config)
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    styled, plain = refit_batch(world, 0, info, 32, VAERefitConfig(init=runs["vae"], crop=32, style_prob=0.5), 0)
    assert styled.shape == plain.shape == (32, 3, 32, 32)
    changed = (styled != plain).flatten(1).any(dim=1).float().mean().item()
    assert 0.2 < changed < 0.8  # about half (crops of empty background look the same in every style)
    styled, plain = refit_batch(world, 0, info, 8, VAERefitConfig(init=runs["vae"], crop=32, style_prob=0.0), 0)
    assert torch.equal(styled, plain)
    bg = torch.tensor(BACKGROUND) / 127.5 - 1
    assert plain.min() >= -1 and plain.max() <= 1 and (plain - bg.view(1, 3, 1, 1)).abs().amin() < 0.01


def test_refit_batches_can_hold_procedural_characters(tmp_path: Path, runs) -> None:  # noqa: F811
    """`procedural_prob`: scenes with procedural characters, training identities only (never a held-out one)."""
    from banana_sdk.data.characters import train_ids

    model, _ = load_checkpoint(runs["vae"])
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    cfg = VAERefitConfig(init=runs["vae"], crop=0, style_prob=0.0, procedural_prob=0.5)
    world = dataclasses.replace(train_world(model.config), config=dataclasses.replace(
        train_world(model.config).config, procedural_character_prob=cfg.procedural_prob))
    ids = [o.identity for k in range(200) for o in world.scene(cfg.scene_offset + k).objects if o.identity is not None]
    assert len(ids) > 50 and set(ids) <= set(train_ids())
    styled, plain = refit_batch(world, 0, info, 4, cfg, 0)
    assert styled.shape == (4, 3, model.config.image_size, model.config.image_size)
    with pytest.raises(TrainingError, match="--procedural-prob"):
        train_stage("vae-refit", loop(1), tmp_path / "bad", init=runs["vae"], procedural_prob=2.0)


def test_bad_refit_arguments(tmp_path: Path, runs) -> None:  # noqa: F811
    with pytest.raises(TrainingError, match="--style-prob"):
        train_stage("vae-refit", loop(1), tmp_path / "a", init=runs["qat"], style_prob=1.5)
    with pytest.raises(TrainingError, match="--object-weight"):
        train_stage("vae-refit", loop(1), tmp_path / "b", init=runs["qat"], object_weight=0.5)
    assert_one_line_error(run_cli("train", "vae-refit", "--init", tmp_path / "missing", "--out", tmp_path / "c"),
                          "does not exist")
    assert_one_line_error(run_cli("train", "vae-refit", "--init", runs["qat"], "--out", tmp_path / "d",
                                  "--crop", "4", "--steps", "1"), "--crop")
    assert not (tmp_path / "a" / "model.safetensors").exists()


def test_loader_workers_train_the_same_run(tmp_path: Path, runs) -> None:  # noqa: F811
    """`--workers 2` renders the batches in loader processes: the same batches, so the same weights and log."""
    inline, loaded = tmp_path / "inline", tmp_path / "loaded"
    train_stage("vae-refit", loop(3), inline, init=runs["qat"], crop=32, threads=1)
    train_stage("vae-refit", loop(3, workers=2), loaded, init=runs["qat"], crop=32, threads=1)
    a, _ = load_checkpoint(inline)
    b, _ = load_checkpoint(loaded)
    assert _same(a.vae, b.vae) and not _same(a.vae, load_checkpoint(runs["qat"])[0].vae)
    losses = [[json.loads(line)["loss"] for line in (d / "log.jsonl").read_text().splitlines()]
              for d in (inline, loaded)]
    assert losses[0] == losses[1]
    assert_one_line_error(run_cli("train", "vae-refit", "--init", runs["qat"], "--out", tmp_path / "w",
                                  "--workers", "-1", "--steps", "1"), "--workers")


def test_decoder_anchor_keeps_the_models_own_generations_decoding_as_before(tmp_path: Path, runs) -> None:  # noqa: F811
    """`decoder_anchor_weight`: the init's generated latents decode closer to the init decoder's images than
    without the anchor (a refit with a large learning rate on styled procedural scenes)."""
    from banana_sdk.training.vae_refit import generated_bank

    base, _ = load_checkpoint(runs["qat"])
    base.eval()
    bank = generated_bank(base, train_world(base.config), 16, 7, torch.device("cpu"))
    assert bank.shape == (16, base.config.vae.latent_channels, base.config.latent_size(), base.config.latent_size())
    with torch.no_grad():
        before = base.vae.decoder(bank).clamp(-1, 1)

    def moved(weight: float) -> float:
        out = tmp_path / f"d{weight}"
        train_stage("vae-refit", loop(4, lr=3e-3), out, init=runs["qat"], crop=32, style_prob=1.0,
                    procedural_prob=0.5, decoder_anchor_weight=weight, anchor_samples=16)
        refit, _ = load_checkpoint(out)
        with torch.no_grad():
            return (refit.vae.decoder(bank).clamp(-1, 1) - before).abs().mean().item()

    assert moved(50.0) < moved(0.0)
    log = [json.loads(line) for line in (tmp_path / "d50.0" / "log.jsonl").read_text().splitlines()]
    assert all(r["decoder_anchor"] >= 0 for r in log)


def test_decoder_anchor_rejects_bad_values(tmp_path: Path, runs) -> None:  # noqa: F811
    with pytest.raises(TrainingError, match="decoder-anchor-weight"):
        train_stage("vae-refit", loop(1), tmp_path / "bad", init=runs["qat"], decoder_anchor_weight=-1.0)
    assert not (tmp_path / "bad").exists()


def test_encoder_anchor_leaves_procedural_characters_out(runs) -> None:  # noqa: F811
    """The anchor's plain twin is the scene without its procedural characters (the init's encoder has no code
    for them): where a crop holds one, plain differs from the drawn image; elsewhere they are the same."""
    model, _ = load_checkpoint(runs["vae"])
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    cfg = VAERefitConfig(init=runs["vae"], crop=0, style_prob=0.0, procedural_prob=0.5)
    world = dataclasses.replace(train_world(model.config), config=dataclasses.replace(
        train_world(model.config).config, procedural_character_prob=cfg.procedural_prob))
    styled, plain = refit_batch(world, 0, info, 16, cfg, 0)
    first = cfg.scene_offset
    has = [any(o.identity is not None for o in world.scene(first + j).objects) for j in range(16)]
    assert any(has) and not all(has)
    for j, procedural in enumerate(has):
        assert (not torch.equal(styled[j], plain[j])) == procedural

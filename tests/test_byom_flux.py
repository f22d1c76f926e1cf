"""Issue 21, the Flux family: diffusers' own FluxPipeline test dummy (FLUX.1-schnell layout) and its FLUX.1-dev
variant (guidance embedding, dynamic shifting) converted at fp32 and int4 and run against diffusers' FluxPipeline;
the RoPE and attention rewrites against the unrewritten transformer; FluxPipeline's flow-matching grid against
diffusers' scheduler; what does not fit is refused in one line."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli

from banana_sdk.bundle.reader import load_manifest, verify_bundle
from banana_sdk.errors import ConfigError
from banana_sdk.runtime.litert import LiteRTPipeline
from banana_sdk.sampling.flow_match import FlowMatchEulerSampler, FlowMatchSchedule
from banana_sdk.sampling.noise import gaussian
from converters.byom.convert_diffusers import convert_diffusers, plan_diffusers, verify_diffusers
from converters.byom.fixtures import FLUX_DEV_SCHEDULER, build_pipeline
from converters.errors import ConversionError
from converters.recipes import DEFAULT_GATE, Quant

PROMPT = "a photo of a red banana on a blue table"
SCHNELL_SIZE, DEV_SIZE = 32, 48  # VAE 1x: latents 32 / 48 px, 16 x 16 / 24 x 24 packed tokens


@pytest.fixture(scope="module")
def schnell(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder, fp32 bundle at 32 px) of diffusers' FluxPipeline test dummy."""
    folder = build_pipeline(tmp_path_factory.mktemp("pipes") / "flux", "diffusers-test-flux")
    return folder, convert_diffusers(tmp_path_factory.mktemp("bundles") / "flux-fp32", folder, size=SCHNELL_SIZE)


@pytest.fixture(scope="module")
def dev_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pipeline(tmp_path_factory.mktemp("pipes") / "flux-dev", "diffusers-test-flux-dev")


def _max_diff(ours: object, theirs: np.ndarray) -> int:
    """Largest 8-bit difference between our PIL image and diffusers' [0, 1] numpy image."""
    return int(np.abs(np.asarray(ours).astype(int) - np.round(theirs * 255).astype(int)).max())


def _flux_images(folder: Path, bundle: Path, size: int, runs: tuple[tuple[int, float], ...],
                 monkeypatch: pytest.MonkeyPatch, true_cfg: bool = False) -> list[tuple[object, np.ndarray]]:
    """(ours, diffusers') per (steps, scale) run, both from the portable noise (seed 5, stream 0) that FluxPipeline
    packs itself. `true_cfg`: the scale is FluxPipeline's `true_cfg_scale` against the empty negative prompt (a
    schnell bundle's CFG); else its `guidance_scale` (dev: embedded)."""
    import diffusers.pipelines.flux.pipeline_flux as module

    monkeypatch.setattr(module, "randn_tensor", lambda shape, **_: torch.from_numpy(gaussian(5, 0, tuple(shape))))
    pipe = module.FluxPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    lite = LiteRTPipeline.load(bundle)
    out = []
    for steps, scale in runs:
        extra = {"true_cfg_scale": scale, "negative_prompt": ""} if true_cfg else {"guidance_scale": scale}
        theirs = pipe(PROMPT, num_inference_steps=steps, height=size, width=size, output_type="np",
                      **extra).images[0]
        ours = lite.run(PROMPT, steps=steps, seed=5, guidance_scale=scale)
        assert len(ours.denoise_ms) == steps and np.asarray(ours.image).std() > 5.0
        out.append((ours.image, theirs))
    return out


def test_flux_schnell_bundle_io_manifest_and_images_equal_diffusers(schnell: tuple[Path, Path],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """CLIP pooled + 512 T5 rows, latent (1, 1, 32, 32) packed inside `denoise`; FluxPipeline's defaults (28 steps,
    one pass at true_cfg_scale 1.0) on its uniform grid; images equal to diffusers' with and without true CFG."""
    folder, bundle = schnell
    m = load_manifest(bundle)
    io = {n: {t["name"]: t["shape"] for t in s["inputs"]} for n, s in m["signatures"].items()}
    assert io["text_encoder"] == {"tokens": [1, 77], "tokens_2": [1, 512]}
    assert io["denoise"] == {"latent": [1, 1, 32, 32], "t": [1], "context": [1, 512, 32], "pooled": [1, 32]}
    outputs = {t["name"]: t["shape"] for t in m["signatures"]["text_encoder"]["outputs"]}
    assert outputs == {"context": [1, 512, 32], "pooled": [1, 32]}
    assert (m["model"]["family"], m["model"]["pipeline"]) == ("flux", "FluxPipeline")
    s = m["sampler"]
    assert (s["kind"], s["default_steps"], s["guidance_scale"], s["guidance"], s["prediction"]) == \
        ("flow-match-euler", 28, 1.0, "cfg", "velocity")
    assert s["schedule"] == {"kind": "flow-match", "num_train_timesteps": 1000, "shift": 1.0,
                             "sigma_min": pytest.approx(0.001), "sigma_max": 1.0, "grid": "uniform"}
    t5 = m["tokenizer"]["inputs"]["tokens_2"]
    assert (m["tokenizer"]["kind"], t5["kind"], t5["context_length"]) == ("clip-bpe", "sentencepiece-unigram", 512)
    assert m["conditioning"]["unconditional"] == "empty_prompt"
    assert m["build"]["denoise"]["notes"]["rope_constants"] == 1
    assert m["build"]["denoise"]["notes"]["attention_processor"] == 2  # one double-stream, one single-stream block
    for name, gate in m["gate"].items():
        assert gate["psnr_db"] >= 100.0, name  # measured text 129.5, denoise 145.6, vae 144.7 dB
    verify_bundle(bundle)
    assert set(verify_diffusers(bundle, folder)) == {"text_encoder", "denoise", "vae_decode"}
    images = _flux_images(folder, bundle, SCHNELL_SIZE, ((2, 1.0), (3, 3.0)), monkeypatch, true_cfg=True)
    assert [_max_diff(ours, theirs) for ours, theirs in images] == [0, 0]  # measured 0 and 0
    first, second = (np.asarray(ours).astype(int) for ours, _ in images)
    assert np.abs(first - second).max() > 5  # steps and CFG change the image (measured 13): the runs are not vacuous


def test_flux_dev_embedded_guidance_and_dynamic_shift_equal_diffusers(dev_folder: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """FLUX.1-dev's layout: `guidance` (1,) into `denoise`, one pass at guidance_scale 3.5; the scheduler's dynamic
    shift resolved for 24 x 24 = 576 packed tokens (mu = 0.5 + 320 x 0.65 / 3840, shift exp(mu))."""
    bundle = convert_diffusers(tmp_path / "flux-dev-fp32", dev_folder, size=DEV_SIZE)
    m = load_manifest(bundle)
    inputs = {t["name"]: t["shape"] for t in m["signatures"]["denoise"]["inputs"]}
    assert inputs == {"latent": [1, 1, 48, 48], "t": [1], "context": [1, 512, 32], "pooled": [1, 32], "guidance": [1]}
    s = m["sampler"]
    assert (s["guidance"], s["guidance_scale"], s["default_steps"]) == ("embedded", 3.5, 28)
    mu = 0.5 + (576 - 256) * (1.15 - 0.5) / (4096 - 256)
    assert s["shift"] == s["schedule"]["shift"] == pytest.approx(math.exp(mu), rel=1e-12)
    for name, gate in m["gate"].items():
        assert gate["psnr_db"] >= 100.0, name  # measured text 129.5, denoise 128.0, vae 144.7 dB
    images = _flux_images(dev_folder, bundle, DEV_SIZE, ((2, 3.5), (3, 5.0)), monkeypatch)
    assert [_max_diff(ours, theirs) for ours, theirs in images] == [0, 0]  # measured 0 and 0


def test_flux_int4_passes_the_gate_and_stays_near_diffusers(dev_folder: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = convert_diffusers(tmp_path / "flux-dev-int4", dev_folder, quant="int4", size=DEV_SIZE)
    m = load_manifest(bundle)
    storage = m["quantization"]["per_signature"]["denoise"]["FULLY_CONNECTED"]
    assert storage == {"int4_blockwise_32": 29, "int8_channelwise": 1}  # the 256-wide timestep input: int8
    recipe = DEFAULT_GATE[Quant.INT4]
    for name, gate in m["gate"].items():  # measured: text 46.8 dB / 0.99981, denoise 36.6 / 0.9971, vae 51.7 / 0.9998
        assert gate["psnr_db"] >= recipe.min_psnr_db and gate["cosine"] >= recipe.min_cosine, name
    [(ours, theirs)] = _flux_images(dev_folder, bundle, DEV_SIZE, ((4, 3.5),), monkeypatch)
    diff = np.abs(np.asarray(ours).astype(float) - theirs * 255)
    assert diff.mean() < 3.0 and diff.max() < 16.0, (diff.mean(), diff.max())


def test_flux_rewrites_equal_the_unrewritten_transformer(dev_folder: Path) -> None:
    """Packing equals FluxPipeline's; the RoPE tables (float64 in diffusers) are its own values as float32
    constants; the rewritten `denoise` module equals the pipeline's call of the unrewritten transformer."""
    from diffusers import FluxPipeline

    from converters.byom.flux import (
        ConstantRoPE,
        FluxDenoiseSignature,
        apply_flux_rewrites,
        pack,
        position_ids,
        reference_flux_denoise,
        unpack,
    )

    latent = torch.from_numpy(gaussian(1, 0, (1, 3, 6, 8)))
    packed = FluxPipeline._pack_latents(latent, 1, 3, 6, 8)
    assert torch.equal(pack(latent), packed)
    assert torch.equal(unpack(packed, 3, 6, 8), FluxPipeline._unpack_latents(packed, 6, 8, 1))
    plan = plan_diffusers(dev_folder, size=DEV_SIZE)
    job = next(j for j in plan.jobs if j.name == "denoise")
    transformer, inputs = job.load(), job.inputs()
    reference = reference_flux_denoise(transformer, inputs, 1000, 1)["prediction"]
    ids = position_ids(512, DEV_SIZE)
    theirs = transformer.pos_embed(ids)
    rope = ConstantRoPE(transformer.pos_embed, ids)
    assert all(torch.equal(a, b) for a, b in zip(rope(ids), theirs, strict=True))
    assert ids.shape == (512 + 576, 3) and not ids[:512].any()
    wrapped = FluxDenoiseSignature(apply_flux_rewrites(transformer, 512, DEV_SIZE), 1000, 512, DEV_SIZE)
    with torch.no_grad():
        ours = wrapped(**{k: torch.from_numpy(v) for k, v in inputs.items()})["prediction"].numpy()
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="ConstantRoPE holds 1088 positions, got 3 ids"):
        rope(ids[:3])


@pytest.mark.parametrize("dynamic", [False, True])
def test_flux_grid_steps_like_the_pipelines_scheduler(dynamic: bool) -> None:
    """`flow-match-euler` on the uniform grid with the resolved shift against FlowMatchEulerDiscreteScheduler fed
    the way FluxPipeline feeds it (sigmas linspace(1, 1/N, N), mu)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from converters.byom.flux import flux_shift

    config = FLUX_DEV_SCHEDULER if dynamic else {"shift": 3.0}
    scheduler = FlowMatchEulerDiscreteScheduler(**config)
    tokens = 1024
    mu = 0.5 + (tokens - 256) * 0.65 / 3840
    shift = flux_shift(dict(scheduler.config), tokens)
    assert shift == pytest.approx(math.exp(mu) if dynamic else 3.0)
    schedule = FlowMatchSchedule(1000, shift, scheduler.sigma_min, scheduler.sigma_max, grid="uniform")
    assert FlowMatchSchedule.from_dict(schedule.to_dict()) == schedule
    model = lambda x, t: (0.7 * x + 0.05 * t).astype(np.float32)  # noqa: E731
    for steps in (1, 4, 28):
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        sampler = FlowMatchEulerSampler(schedule)
        np.testing.assert_allclose(sampler.timesteps(steps) * 1000, scheduler.timesteps.numpy(), rtol=1e-6)
        x = torch.from_numpy(gaussian(2, 0, (1, 4, 8, 8)))
        for t in scheduler.timesteps:
            x = scheduler.step(torch.from_numpy(model(x.numpy(), float(t) / 1000)), t, x).prev_sample
        np.testing.assert_allclose(sampler.sample(model, (1, 4, 8, 8), steps, seed=2), x.numpy(), rtol=1e-5,
                                   atol=1e-5)
    with pytest.raises(ConfigError, match=r"grid 'karras' is not one of \('sigma-range', 'uniform'\)"):
        FlowMatchSchedule.from_dict({**schedule.to_dict(), "grid": "karras"})


def _edit(folder: Path, sub: str, **changes: object) -> None:
    path = folder / sub
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_flux_misfits_are_refused_in_one_line(schnell: tuple[Path, Path], tmp_path: Path) -> None:
    folder = tmp_path / "flux"
    shutil.copytree(schnell[0], folder)
    saved = {p: p.read_text() for p in folder.rglob("*.json")}
    cases = (
        ("model_index.json", {"transformer": ["diffusers", "HunyuanDiT2DModel"]},
         "transformer: HunyuanDiT2DModel is not supported yet; supported denoiser classes: FluxTransformer2DModel, "),
        ("model_index.json", {"text_encoder_2": None},
         "lists no 'text_encoder_2'; a flux pipeline (FluxTransformer2DModel) needs a T5EncoderModel there"),
        ("model_index.json", {"text_encoder_2": ["transformers", "CLIPTextModelWithProjection"]},
         "text_encoder_2: a flux pipeline needs T5EncoderModel here, got CLIPTextModelWithProjection"),
        ("model_index.json", {"text_encoder": ["transformers", "CLIPTextModelWithProjection"]},
         "text_encoder: a flux pipeline needs CLIPTextModel here, got CLIPTextModelWithProjection"),
        ("transformer/config.json", {"joint_attention_dim": 48},
         "transformer expects 48-wide text features (joint_attention_dim) but text_encoder_2 gives 32"),
        ("transformer/config.json", {"pooled_projection_dim": 48},
         "transformer expects 48-wide pooled text (pooled_projection_dim) but text_encoder gives 32"),
        ("transformer/config.json", {"in_channels": 6}, "in_channels 6 / out_channels None do not hold 2x2-packed"),
        ("vae/config.json", {"latent_channels": 2}, "transformer takes 1 latent channels but the vae has 2"),
        ("model_index.json", {"scheduler": ["diffusers", "DDIMScheduler"]},
         "DDIMScheduler is not supported yet for FluxPipeline (flux family); it needs FlowMatchEulerDiscreteScheduler"),
        ("scheduler/scheduler_config.json", {"use_karras_sigmas": True},
         "use_karras_sigmas=True is not supported yet; supported: use_karras_sigmas=False"),
        ("scheduler/scheduler_config.json", {"use_dynamic_shifting": True, "time_shift_type": "cosine"},
         "time_shift_type='cosine' is not supported; supported: exponential, linear"),
    )
    for sub, changes, message in cases:
        for path, text in saved.items():
            path.write_text(text)
        _edit(folder, sub, **changes)
        with pytest.raises(ConversionError, match=re.escape(message)):
            plan_diffusers(folder, size=SCHNELL_SIZE)
    for path, text in saved.items():
        path.write_text(text)
    with pytest.raises(ConversionError, match="image size must be a positive multiple of 2 pixels up to 4096"):
        plan_diffusers(folder, size=31)
    assert plan_diffusers(folder).jobs[2].inputs()["latent"].shape == (1, 1, 128, 128)  # FluxPipeline's 128 x 1
    out = tmp_path / "out"
    assert_one_line_error(run_cli("convert", "--diffusers", folder, "--out", out, "--size", 31, in_process=True),
                          "image size must be a positive multiple of 2 pixels")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["flux"]  # nothing written

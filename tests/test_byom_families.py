"""Issue 21 families: SDXL and SDXL-Turbo from diffusers' own test dummies, converted and run against diffusers;
the Euler samplers against diffusers' Euler schedulers; unsupported families named, never misread."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from banana_sdk.bundle.reader import load_manifest, verify_bundle
from banana_sdk.runtime.guidance import GuidanceMode
from banana_sdk.runtime.litert import LiteRTPipeline
from banana_sdk.sampling.ddpm import DDPMSchedule, Prediction, Spacing
from banana_sdk.sampling.noise import gaussian
from banana_sdk.sampling.registry import get_sampler
from converters.byom.convert_diffusers import convert_diffusers, plan_diffusers
from converters.byom.diffusers import read_pipeline
from converters.byom.families import Family, Unconditional, detect_family
from converters.byom.fixtures import build_pipeline
from converters.byom.scheduler import plan_sampler
from converters.errors import ConversionError
from converters.recipes import DEFAULT_GATE, Quant

PROMPT = "a photo of a red banana on a blue table"
LATENT = (1, 4, 32, 32)  # the SDXL dummy: sample_size 32, VAE 2x -> 64 px images


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pipeline(tmp_path_factory.mktemp("pipes") / "sdxl", "diffusers-test-sdxl")


@pytest.fixture(scope="module")
def sdxl_fp32(tmp_path_factory: pytest.TempPathFactory, sdxl_folder: Path) -> Path:
    return convert_diffusers(tmp_path_factory.mktemp("bundles") / "sdxl-fp32", sdxl_folder)


def _sdxl_pipeline(folder: Path):  # noqa: ANN202
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _max_diff(ours: object, theirs: np.ndarray) -> int:
    """Largest 8-bit difference between our PIL image and diffusers' [0, 1] numpy image."""
    return int(np.abs(np.asarray(ours).astype(int) - np.round(theirs * 255).astype(int)).max())


def _portable_noise(monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """diffusers' ancestral noise := our portable stream i + 1 at step i (what the bundle runtime uses)."""
    import diffusers.schedulers.scheduling_euler_ancestral_discrete as module

    calls = iter(range(1, 1000))
    monkeypatch.setattr(module, "randn_tensor", lambda shape, **_: torch.from_numpy(gaussian(seed, next(calls),
                                                                                             tuple(shape))))


def test_sdxl_bundle_io_manifest_and_gate(sdxl_fp32: Path, sdxl_folder: Path) -> None:
    m = load_manifest(sdxl_fp32)
    io = {n: {t["name"]: t["shape"] for t in s["inputs"]} for n, s in m["signatures"].items()}
    assert io["text_encoder"] == {"tokens": [1, 77], "tokens_2": [1, 77]}
    assert io["denoise"] == {"latent": list(LATENT), "t": [1], "context": [1, 77, 64], "pooled": [1, 32],
                             "time_ids": [1, 6]}
    outputs = {t["name"]: t["shape"] for t in m["signatures"]["text_encoder"]["outputs"]}
    assert outputs == {"context": [1, 77, 64], "pooled": [1, 32]}  # 32 + 32 penultimate widths side by side
    assert (m["model"]["family"], m["model"]["pipeline"]) == ("sdxl", "StableDiffusionXLPipeline")
    sampler = m["sampler"]  # StableDiffusionXLPipeline.__call__ defaults, the scheduler's own sampler
    assert (sampler["kind"], sampler["default_steps"], sampler["guidance_scale"], sampler["guidance"]) == \
        ("euler-ddpm", 50, 5.0, "cfg")
    assert m["conditioning"] == {"unconditional": "zeros", "constants": {"time_ids": [[64, 64, 0, 0, 64, 64]]}}
    pads = m["tokenizer"]["inputs"]
    assert pads["tokens"]["pad_token"] == "<|endoftext|>" and pads["tokens_2"]["pad_token"] == "!"
    recipe = DEFAULT_GATE[Quant.FP32]
    for name, gate in m["gate"].items():
        assert gate["psnr_db"] >= 100.0 and gate["cosine"] >= recipe.min_cosine, name  # measured >= 139 dB
    verify_bundle(sdxl_fp32)


def test_sdxl_generation_equals_the_diffusers_pipeline(sdxl_fp32: Path, sdxl_folder: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Same prompt, seed-derived latents: LiteRT == StableDiffusionXLPipeline within 1/255, with CFG (zero
    unconditional), without (scale 0 is one pass, as in diffusers), and with the Euler ancestral scheduler."""
    from diffusers import EulerAncestralDiscreteScheduler

    pipe = _sdxl_pipeline(sdxl_folder)
    lite = LiteRTPipeline.load(sdxl_fp32)
    for steps, scale in ((2, 5.0), (1, 0.0)):
        latents = torch.from_numpy(gaussian(5, 0, LATENT))
        theirs = pipe(PROMPT, num_inference_steps=steps, guidance_scale=scale, latents=latents,
                      output_type="np").images[0]
        ours = lite.run(PROMPT, steps=steps, seed=5, guidance_scale=scale)
        assert len(ours.denoise_ms) == steps and np.asarray(ours.image).std() > 5.0
        assert _max_diff(ours.image, theirs) <= 1, (steps, scale)  # measured 1 and 0
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
    _portable_noise(monkeypatch, seed=5)
    theirs = pipe(PROMPT, num_inference_steps=3, guidance_scale=5.0, latents=torch.from_numpy(gaussian(5, 0, LATENT)),
                  output_type="np").images[0]
    ours = lite.run(PROMPT, steps=3, seed=5, guidance_scale=5.0, sampler="euler-ancestral-ddpm")
    assert _max_diff(ours.image, theirs) <= 1


def test_sdxl_turbo_int4_defaults_and_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SDXL-Turbo's layout (Euler ancestral, trailing): 1 step, no guidance, at most 4 steps; at int4 every file
    passes the INT4 gate (layers the block does not divide fall back to INT8) and the image stays near diffusers'."""
    folder = build_pipeline(tmp_path / "turbo", "diffusers-test-sdxl-turbo")
    bundle = convert_diffusers(tmp_path / "turbo-int4", folder, quant="int4")
    m = load_manifest(bundle)
    s = m["sampler"]
    assert (s["kind"], s["default_steps"], s["max_steps"], s["guidance_scale"]) == ("euler-ancestral-ddpm", 1, 4, 0.0)
    assert s["schedule"]["spacing"] == "trailing"
    recipe = DEFAULT_GATE[Quant.INT4]
    for name, gate in m["gate"].items():  # measured: text 26.9 dB / 0.968, denoise 52.8 / 0.9997, vae 50.4 / 0.9996
        assert gate["psnr_db"] >= recipe.min_psnr_db and gate["cosine"] >= recipe.min_cosine, name
    storage = m["quantization"]["per_signature"]["denoise"]["FULLY_CONNECTED"]
    assert set(storage) == {"int4_blockwise_32", "int8_channelwise"}  # measured 24 int4, 124 int8 (the fallback)
    ours = LiteRTPipeline.load(bundle).run(PROMPT, seed=5)
    assert len(ours.denoise_ms) == 1
    pipe = _sdxl_pipeline(folder)
    theirs = pipe(PROMPT, num_inference_steps=1, guidance_scale=0.0, latents=torch.from_numpy(gaussian(5, 0, LATENT)),
                  output_type="np").images[0]
    diff = np.abs(np.asarray(ours.image).astype(float) - theirs * 255)
    assert diff.mean() < 3.0 and diff.max() < 16.0, (diff.mean(), diff.max())  # measured mean 0.90, max 4.9


@pytest.mark.parametrize(("cls", "spacing", "prediction"), [
    ("EulerDiscreteScheduler", "leading", "epsilon"), ("EulerDiscreteScheduler", "trailing", "v_prediction"),
    ("EulerDiscreteScheduler", "linspace", "epsilon"), ("EulerAncestralDiscreteScheduler", "trailing", "epsilon"),
    ("EulerAncestralDiscreteScheduler", "leading", "v_prediction"),
])
def test_euler_samplers_step_like_diffusers(cls: str, spacing: str, prediction: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed linear 'model' through our sampler and through diffusers' scheduler loop: the same latents."""
    import diffusers

    scheduler = getattr(diffusers, cls)(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        steps_offset=1, timestep_spacing=spacing, prediction_type=prediction)
    schedule = DDPMSchedule(tuple(scheduler.alphas_cumprod.double().tolist()), 1.0, Prediction(prediction),
                            Spacing(spacing), steps_offset=1)
    name = "euler-ancestral-ddpm" if "Ancestral" in cls else "euler-ddpm"
    model = lambda x, t: (0.7 * x + 0.05 * t).astype(np.float32)  # noqa: E731
    _portable_noise(monkeypatch, seed=2)
    for steps in (1, 4):
        scheduler.set_timesteps(steps)
        x = torch.from_numpy(gaussian(2, 0, (1, 4, 8, 8))) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            out = model(scheduler.scale_model_input(x, t).numpy(), float(t) / 1000)
            x = scheduler.step(torch.from_numpy(out), t, x).prev_sample
        ours = get_sampler(name, schedule).sample(model, (1, 4, 8, 8), steps, seed=2)
        np.testing.assert_allclose(ours, x.numpy(), rtol=1e-4, atol=1e-4 * float(np.abs(ours).max()))
        monkeypatch.undo()
        _portable_noise(monkeypatch, seed=2)


def _edit(folder: Path, sub: str, **changes: object) -> None:
    path = folder / sub
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_family_detection_and_unsupported_models_are_named(sdxl_folder: Path, tmp_path: Path) -> None:
    spec = detect_family(read_pipeline(sdxl_folder))
    assert (spec.family, spec.unconditional, spec.token_inputs) == (Family.SDXL, Unconditional.ZEROS,
                                                                   ("tokens", "tokens_2"))
    plan = plan_sampler(read_pipeline(sdxl_folder), GuidanceMode.CFG, Family.SDXL)
    assert (plan.kind, plan.default_steps, plan.guidance_scale) == ("euler-ddpm", 50, 5.0)
    folder = tmp_path / "pipe"
    shutil.copytree(sdxl_folder, folder)
    original = (folder / "model_index.json").read_text()
    cases = (
        ({"unet": None, "transformer": ["diffusers", "FluxTransformer2DModel"]},
         "transformer: FluxTransformer2DModel is not supported yet; supported denoiser classes: "
         "PixArtTransformer2DModel, UNet2DConditionModel"),
        ({"unet": None, "transformer": ["diffusers", "SanaTransformer2DModel"],
          "text_encoder": ["transformers", "Gemma2Model"]}, "SanaTransformer2DModel is not supported yet"),
        ({"text_encoder_3": ["transformers", "T5EncoderModel"]},
         "text_encoder_3: T5EncoderModel is not supported yet; supported text encoder 3 classes: none yet; set"),
        ({"text_encoder_2": None}, "lists no 'text_encoder_2'; a sdxl pipeline (UNet2DConditionModel) needs a "
                                   "CLIPTextModelWithProjection there"),
        ({"text_encoder_2": ["transformers", "CLIPTextModel"]},
         "text_encoder_2: CLIPTextModel is not supported yet; supported text encoder 2 classes: "
         "CLIPTextModelWithProjection"),
        ({"force_zeros_for_empty_prompt": False}, None),
    )
    for changes, message in cases:
        (folder / "model_index.json").write_text(original)
        _edit(folder, "model_index.json", **changes)
        if message is None:
            assert detect_family(read_pipeline(folder)).unconditional is Unconditional.EMPTY_PROMPT
            continue
        with pytest.raises(ConversionError, match=re.escape(message)):
            plan_diffusers(folder)
    (folder / "model_index.json").write_text(original)
    _edit(folder, "scheduler/scheduler_config.json", use_karras_sigmas=True)
    with pytest.raises(ConversionError, match=r"use_karras_sigmas=True is not supported yet; supported: "
                                              r"use_karras_sigmas=False"):
        plan_diffusers(folder)
    _edit(folder, "scheduler/scheduler_config.json", use_karras_sigmas=False)
    _edit(folder, "unet/config.json", cross_attention_dim=48)
    with pytest.raises(ConversionError, match=r"expects 48-wide text features but the text encoder gives 32 \+ 32"):
        plan_diffusers(folder)
    _edit(folder, "unet/config.json", cross_attention_dim=64, projection_class_embeddings_input_dim=96)
    with pytest.raises(ConversionError, match="expects 96 added-condition features but 6 time ids x 8 \\+ pooled 32"):
        plan_diffusers(folder)
    _edit(folder, "unet/config.json", projection_class_embeddings_input_dim=80, addition_embed_type="text_image")
    with pytest.raises(ConversionError, match="addition_embed_type='text_image' is not supported yet"):
        plan_diffusers(folder)
    _edit(folder, "unet/config.json", addition_embed_type="text_time")
    (folder / "tokenizer_2" / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(ConversionError, match="tokenizer_2: its vocabulary or merges differ from tokenizer's"):
        plan_diffusers(folder)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_match_euler_steps_like_diffusers(shift: float) -> None:
    """The portable flow-matching Euler (SD3's scheduler) against FlowMatchEulerDiscreteScheduler's loop."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from banana_sdk.sampling.flow_match import FlowMatchEulerSampler, FlowMatchSchedule

    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    schedule = FlowMatchSchedule(1000, shift, scheduler.sigma_min, scheduler.sigma_max)
    assert FlowMatchSchedule.from_dict(schedule.to_dict()) == schedule
    model = lambda x, t: (0.7 * x + 0.05 * t).astype(np.float32)  # noqa: E731
    for steps in (1, 2, 7):
        scheduler.set_timesteps(steps)
        sampler = FlowMatchEulerSampler(schedule)
        np.testing.assert_allclose(sampler.timesteps(steps) * 1000, scheduler.timesteps.numpy(), rtol=1e-6)
        x = torch.from_numpy(gaussian(2, 0, (1, 4, 8, 8)))
        for t in scheduler.timesteps:
            x = scheduler.step(torch.from_numpy(model(x.numpy(), float(t) / 1000)), t, x).prev_sample
        ours = sampler.sample(model, (1, 4, 8, 8), steps, seed=2)
        np.testing.assert_allclose(ours, x.numpy(), rtol=1e-5, atol=1e-5)

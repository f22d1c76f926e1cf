"""BYOM parts against diffusers/transformers themselves: DDPM samplers, CLIP BPE tokenizer, rewrites."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from banana_sdk.errors import ConfigError, PromptError
from banana_sdk.runtime.clip_tokenizer import ClipBPETokenizer
from banana_sdk.sampling.ddpm import DDPMSchedule, Prediction, Spacing
from banana_sdk.sampling.noise import gaussian
from banana_sdk.sampling.registry import get_sampler
from converters.byom import fixtures
from converters.byom.diffusers import SUPPORTED, Component, PipelineFolder
from converters.byom.rewrites import (
    DenoiseSignature,
    GuidanceMode,
    ReshapeGroupNorm,
    apply_rewrites,
    describe_rewrites,
    guidance_embedding,
    reference_denoise,
)
from converters.byom.scheduler import FLOW_MATCH, plan_sampler
from converters.errors import ConversionError

SHAPE = (1, 4, 4, 4)
BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def _model_fn(x: np.ndarray, t: float) -> np.ndarray:
    """A deterministic stand-in denoiser that depends on x and t."""
    w = gaussian(5, 0, (4, 4))
    return (np.tanh(np.einsum("ij,bjhw->bihw", w, x)) * (0.5 + t)).astype(np.float32)


def _schedule(scheduler, **fields) -> DDPMSchedule:  # noqa: ANN001
    final = getattr(scheduler, "final_alpha_cumprod", torch.tensor(1.0))
    return DDPMSchedule(tuple(scheduler.alphas_cumprod.double().tolist()), float(final), **fields)


@pytest.mark.parametrize("spacing,prediction,clip", [
    ("leading", "epsilon", False), ("trailing", "v_prediction", False), ("linspace", "sample", True),
    ("leading", "v_prediction", True),
])
def test_ddim_matches_diffusers(spacing: str, prediction: str, clip: bool) -> None:
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(**BETAS, set_alpha_to_one=False, steps_offset=1, timestep_spacing=spacing,
                        prediction_type=prediction, clip_sample=clip)
    sampler = get_sampler("ddim", _schedule(ref, prediction=Prediction(prediction), spacing=Spacing(spacing),
                                            steps_offset=1, clip_sample=1.0 if clip else None))
    for steps in (1, 4, 7):
        ref.set_timesteps(steps)
        np.testing.assert_allclose(sampler.timesteps(steps) * 1000, ref.timesteps.numpy())
        x = torch.from_numpy(gaussian(9, 0, SHAPE))
        for k in ref.timesteps:
            x = ref.step(torch.from_numpy(_model_fn(x.numpy(), int(k) / 1000)), k, x).prev_sample
        ours = sampler.sample(_model_fn, SHAPE, steps, seed=9)
        np.testing.assert_allclose(ours, x.numpy(), atol=2e-5, rtol=1e-5)


def test_lcm_ddpm_matches_diffusers_with_the_same_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    import diffusers.schedulers.scheduling_lcm as lcm_module
    from diffusers import LCMScheduler

    ref = LCMScheduler(**BETAS, original_inference_steps=50)
    sampler = get_sampler("lcm-ddpm", _schedule(ref))
    for steps in (1, 2, 4, 8):
        ref.set_timesteps(steps)
        assert (np.round(sampler.timesteps(steps) * 1000).astype(int) == ref.timesteps.numpy()).all()
        streams = iter(range(1, steps))  # the scheduler draws noise for every step but the last
        monkeypatch.setattr(lcm_module, "randn_tensor", lambda shape, streams=streams, **kw: torch.from_numpy(
            gaussian(4, next(streams), tuple(shape))))
        x = torch.from_numpy(gaussian(4, 0, SHAPE))
        for k in ref.timesteps:
            x = ref.step(torch.from_numpy(_model_fn(x.numpy(), int(k) / 1000)), k, x).prev_sample
        np.testing.assert_allclose(sampler.sample(_model_fn, SHAPE, steps, seed=4), x.numpy(), atol=2e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="1-8 steps"):
        sampler.sample(_model_fn, SHAPE, 9, 0)


def test_schedule_round_trip_and_registry_errors() -> None:
    from diffusers import DDIMScheduler

    sched = _schedule(DDIMScheduler(**BETAS), spacing=Spacing.TRAILING, clip_sample=1.5)
    assert DDPMSchedule.from_dict(sched.to_dict()) == sched
    assert sched.num_train_timesteps == 1000 and sched.alpha(-1) == 1.0
    with pytest.raises(ConfigError, match="DDPM schedule"):
        get_sampler("ddim")
    with pytest.raises(ConfigError, match=r"\['ddim', 'euler-ancestral-ddpm', 'euler-ddpm', 'lcm-ddpm'\]"):
        get_sampler("dpm")
    with pytest.raises(ConfigError, match="alphas_cumprod"):
        DDPMSchedule.from_dict({**sched.to_dict(), "num_train_timesteps": 999})


PROMPTS = (
    "a photo of a red banana on a blue table, studio light",
    "An ASTRONAUT   riding\ta horse!!! on the moon?",
    "it's a cat's toy; they'll say we've 2024 cats & 3.5 dogs",
    "ünïcödé café naïve — 東京 タワー 🍌🍌 <|endoftext|> after the end",
    "    leading and trailing spaces    ",
    "",
)


def test_clip_tokenizer_matches_transformers() -> None:
    from transformers import CLIPTokenizer

    vocab, merges = fixtures.learn_bpe()
    theirs = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    ours = ClipBPETokenizer(vocab, merges, 77, fixtures.BOS, fixtures.EOS, fixtures.EOS, fixtures.EOS)
    for prompt in PROMPTS:
        expected = theirs(prompt, padding="max_length", max_length=77).input_ids
        assert ours._encode(prompt).ids.tolist() == expected, prompt
    assert ours.unconditional().ids.tolist() == theirs("", padding="max_length", max_length=77).input_ids
    assert ours.encode("red").length == 3  # "red</w>" is one learned token
    with pytest.raises(PromptError, match="77"):
        ours.encode("banana " * 80)
    with pytest.raises(PromptError, match="empty"):
        ours.encode("   ")


def test_group_norm_rewrite_is_exact_and_complete() -> None:
    torch.manual_seed(0)
    for shape in ((2, 16, 5, 3), (1, 16, 7)):
        norm = torch.nn.GroupNorm(4, 16, eps=1e-6)
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
        x = torch.randn(shape) * 3 + 1
        torch.testing.assert_close(ReshapeGroupNorm(norm)(x), norm(x), atol=1e-5, rtol=1e-5)


def test_guidance_embedding_is_the_lcm_pipelines() -> None:
    from diffusers import LatentConsistencyModelPipeline

    for dim in (32, 33, 256):
        w = torch.tensor([7.5])
        ref = LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, w - 1, embedding_dim=dim)
        torch.testing.assert_close(guidance_embedding(w, dim), ref, atol=1e-5, rtol=1e-5)


def _unet(cond_dim: int | None):  # noqa: ANN202
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64), layers_per_block=1,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=8, time_cond_proj_dim=cond_dim).eval()


def _pixart():  # noqa: ANN202
    from diffusers import PixArtTransformer2DModel

    torch.manual_seed(0)
    return PixArtTransformer2DModel(sample_size=8, num_layers=2, patch_size=2, in_channels=4, out_channels=8,
                                    num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                    caption_channels=32, attention_bias=True, activation_fn="gelu-approximate",
                                    num_embeds_ada_norm=1000, norm_type="ada_norm_single",
                                    norm_elementwise_affine=False, norm_eps=1e-6).eval()


@pytest.mark.parametrize("case", ["unet-cfg", "unet-embedded", "pixart-cfg"])
def test_rewritten_denoiser_matches_the_pipeline_call(case: str) -> None:
    """Float t, batch 1, in-graph guidance embedding and learned-sigma split == the pipeline's own call."""
    embedded = case == "unet-embedded"
    model = _pixart() if case.startswith("pixart") else _unet(32 if embedded else None)
    cls = type(model).__name__
    mode = GuidanceMode.EMBEDDED if embedded else GuidanceMode.CFG
    inputs = {"latent": gaussian(1, 0, (1, 4, 8, 8)), "t": np.array([0.75], np.float32),
              "context": gaussian(1, 1, (1, 16, 32))}
    if cls == "PixArtTransformer2DModel":
        inputs["context_mask"] = (np.arange(16) < 9).astype(np.float32)[None]
    if embedded:
        inputs["guidance"] = np.array([8.5], np.float32)
    uncond = gaussian(1, 9, (1, 16, 32))
    expected = reference_denoise(model, cls, inputs, 1000, 4, mode, uncond, 64)["prediction"]
    signature = DenoiseSignature(apply_rewrites(model), cls, 1000, 4, 32 if embedded else None, 64)
    with torch.no_grad():
        got = signature(**{k: torch.from_numpy(v) for k, v in inputs.items()})["prediction"].numpy()
    assert got.shape == (1, 4, 8, 8)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)
    notes = describe_rewrites(signature)
    assert notes["attention_processor"] > 0 and notes["nn_group_norm_left"] == 0
    assert notes["group_norm"] == (0 if cls == "PixArtTransformer2DModel" else 21)


@pytest.mark.parametrize("class_name", [c for c in SUPPORTED["scheduler"] if c != FLOW_MATCH])  # DDPM tables;
# ^ FlowMatchEulerDiscreteScheduler: tests/test_byom_families.py (SD3)
def test_every_supported_scheduler_becomes_a_stored_schedule(class_name: str, tmp_path) -> None:  # noqa: ANN001
    import diffusers

    cls = getattr(diffusers, class_name)
    config = dict(cls(**BETAS, prediction_type="v_prediction").config)
    pipe = PipelineFolder(tmp_path, "X", {"scheduler": Component("scheduler", "scheduler", "diffusers", class_name,
                                                                 config)})
    plan = plan_sampler(pipe, GuidanceMode.CFG)
    np.testing.assert_array_equal(plan.schedule.alphas_cumprod, cls.from_config(config).alphas_cumprod.double())
    assert plan.schedule.prediction is Prediction.V
    assert (plan.kind, plan.guidance_scale) == (("lcm-ddpm", 1.0) if class_name == "LCMScheduler" else ("ddim", 7.5))
    with pytest.raises(ConversionError, match="thresholding"):
        plan_sampler(PipelineFolder(tmp_path, "X", {"scheduler": Component(
            "scheduler", "scheduler", "diffusers", class_name, {**config, "thresholding": True})}), GuidanceMode.CFG)

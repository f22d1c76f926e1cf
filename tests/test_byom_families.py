"""Issue 21 families: SDXL, SDXL-Turbo, SD3 (with and without T5) and PixArt-alpha (T5) from diffusers' own test
dummies, converted and run against diffusers; the Euler and flow-matching samplers against diffusers' schedulers;
the T5 SentencePiece tokenizer against transformers; unsupported families named, never misread."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli

from banana_sdk.bundle.reader import load_manifest, verify_bundle
from banana_sdk.errors import BananaError, PromptError
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
        ({"unet": None, "transformer": ["diffusers", "HunyuanDiT2DModel"]},
         "transformer: HunyuanDiT2DModel is not supported yet; supported denoiser classes: "
         "FluxTransformer2DModel, PixArtTransformer2DModel, "),
        ({"text_encoder": ["transformers", "Gemma2Model"]},  # Sana's encoder in an SDXL folder: the family names it
         "text_encoder: a sdxl pipeline needs CLIPTextModel here, got Gemma2Model"),
        ({"text_encoder_3": ["transformers", "UMT5EncoderModel"]},
         "text_encoder_3: UMT5EncoderModel is not supported yet; supported text encoder 3 classes: T5EncoderModel; "
         "set"),
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


# --- SD3 (flow matching, MMDiT, CLIP pair + T5) and PixArt-alpha (T5) ---------------------------------------------

SD3_LATENT = (1, 4, 32, 32)  # the SD3 dummy: sample_size 32, VAE 1x -> 32 px images
PIXART_LATENT = (1, 4, 8, 8)  # the PixArt dummy: sample_size 8, AutoencoderKL() 1x -> 8 px images
UNICODE_PROMPT = "  A Painting of a Squirrel eating a Burger in Zürich, ＣＡＦＥ́ 😀  "


@pytest.fixture(scope="module")
def sd3_fp32(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder, fp32 bundle) of SD3 without T5 (text_encoder_3 = None)."""
    folder = build_pipeline(tmp_path_factory.mktemp("pipes") / "sd3", "diffusers-test-sd3")
    return folder, convert_diffusers(tmp_path_factory.mktemp("bundles") / "sd3-fp32", folder)


def _diffusers_pipeline(folder: Path, cls: str):  # noqa: ANN202
    import diffusers

    index = json.loads((folder / "model_index.json").read_text())
    absent = {k: None for k in ("text_encoder_3", "tokenizer_3") if index.get(k, [None])[0] is None} \
        if cls == "StableDiffusion3Pipeline" else {}
    pipe = getattr(diffusers, cls).from_pretrained(folder, local_files_only=True, **absent)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _same_images(folder: Path, bundle: Path, cls: str, latent: tuple[int, ...], prompt: str,
                 runs: tuple[tuple[int, float], ...], **extra: object) -> list[int]:
    """Largest 8-bit difference per (steps, guidance) run: diffusers' pipeline vs our LiteRT bundle, same latents."""
    pipe, lite = _diffusers_pipeline(folder, cls), LiteRTPipeline.load(bundle)
    diffs = []
    for steps, scale in runs:
        theirs = pipe(prompt, num_inference_steps=steps, guidance_scale=scale, output_type="np",
                      latents=torch.from_numpy(gaussian(5, 0, latent)), **extra).images[0]
        ours = lite.run(prompt, steps=steps, seed=5, guidance_scale=scale)
        assert len(ours.denoise_ms) == steps and np.asarray(ours.image).std() > 5.0
        diffs.append(_max_diff(ours.image, theirs))
    return diffs


def test_sd3_bundle_io_manifest_and_generation_equal_diffusers(sd3_fp32: tuple[Path, Path]) -> None:
    """SD3 without T5: the CLIP pair's states cut to joint_attention_dim 32, 256 zero T5 rows, pooled 32 + 32; the
    flow-matching sampler and StableDiffusion3Pipeline's defaults; images equal to diffusers' with and without CFG."""
    folder, bundle = sd3_fp32
    m = load_manifest(bundle)
    io = {n: {t["name"]: t["shape"] for t in s["inputs"]} for n, s in m["signatures"].items()}
    assert io["text_encoder"] == {"tokens": [1, 77], "tokens_2": [1, 77]}
    assert io["denoise"] == {"latent": list(SD3_LATENT), "t": [1], "context": [1, 77 + 256, 32], "pooled": [1, 64]}
    assert (m["model"]["family"], m["model"]["pipeline"]) == ("sd3", "StableDiffusion3Pipeline")
    s = m["sampler"]  # StableDiffusion3Pipeline.__call__: 28 steps, guidance 7.0
    assert (s["kind"], s["default_steps"], s["guidance_scale"], s["guidance"], s["prediction"], s["shift"]) == \
        ("flow-match-euler", 28, 7.0, "cfg", "velocity", 1.0)
    assert s["schedule"] == {"kind": "flow-match", "num_train_timesteps": 1000, "shift": 1.0,
                             "sigma_min": pytest.approx(0.001), "sigma_max": 1.0}
    assert m["conditioning"]["unconditional"] == "empty_prompt" and "spiece.model" not in m["files"]
    for name, gate in m["gate"].items():
        assert gate["psnr_db"] >= 100.0, name  # measured >= 141 dB
    verify_bundle(bundle)
    assert _same_images(folder, bundle, "StableDiffusion3Pipeline", SD3_LATENT, PROMPT,
                        ((2, 7.0), (1, 1.0))) == [0, 0]  # measured 0 and 0


def test_sd3_int4_passes_the_gate_and_stays_near_diffusers(sd3_fp32: tuple[Path, Path], tmp_path: Path) -> None:
    folder, _ = sd3_fp32
    bundle = convert_diffusers(tmp_path / "sd3-int4", folder, quant="int4")
    m = load_manifest(bundle)
    assert m["quantization"]["per_signature"]["denoise"]["FULLY_CONNECTED"] == {"int4_blockwise_32": 18}
    recipe = DEFAULT_GATE[Quant.INT4]
    for name, gate in m["gate"].items():  # measured: text 45.6 dB / 0.99973, denoise 36.4 / 0.9961, vae 52.0 / 0.9998
        assert gate["psnr_db"] >= recipe.min_psnr_db and gate["cosine"] >= recipe.min_cosine, name
    pipe = _diffusers_pipeline(folder, "StableDiffusion3Pipeline")
    theirs = pipe(PROMPT, num_inference_steps=4, guidance_scale=7.0, output_type="np",
                  latents=torch.from_numpy(gaussian(5, 0, SD3_LATENT))).images[0]
    ours = LiteRTPipeline.load(bundle).run(PROMPT, steps=4, seed=5, guidance_scale=7.0)
    diff = np.abs(np.asarray(ours.image).astype(float) - theirs * 255)
    assert diff.mean() < 3.0 and diff.max() < 16.0, (diff.mean(), diff.max())  # measured mean 1.38, max 6.9


def test_sd3_with_t5_equals_diffusers(tmp_path: Path) -> None:
    """SD3 with its T5: tokens_3 (1, 256) through T5EncoderModel (unmasked, as the pipeline), spiece.model in the
    bundle with its own tokenizer spec; a Unicode prompt gives diffusers' image."""
    folder = build_pipeline(tmp_path / "sd3-t5", "diffusers-test-sd3-t5")
    bundle = convert_diffusers(tmp_path / "sd3-t5-fp32", folder)
    m = load_manifest(bundle)
    io = {t["name"]: t["shape"] for t in m["signatures"]["text_encoder"]["inputs"]}
    assert io == {"tokens": [1, 77], "tokens_2": [1, 77], "tokens_3": [1, 256]}
    t5 = m["tokenizer"]["inputs"]["tokens_3"]
    assert (m["tokenizer"]["kind"], t5["kind"], t5["context_length"], t5["model_file"], t5["preprocess"]) == \
        ("clip-bpe", "sentencepiece-unigram", 256, "spiece.model", [])
    assert m["files"]["spiece.model"]["bytes"] == (folder / "tokenizer_3" / "spiece.model").stat().st_size
    assert m["gate"]["text_encoder"]["psnr_db"] >= 100.0  # measured 134 dB
    assert _same_images(folder, bundle, "StableDiffusion3Pipeline", SD3_LATENT, UNICODE_PROMPT,
                        ((2, 7.0),)) == [0]  # measured 0


def test_t5_sentencepiece_ids_equal_transformers(tmp_path: Path) -> None:
    """The bundle's `sentencepiece-unigram` tokenizer against transformers' T5TokenizerFast on the same spiece.model:
    NFKC-style normalization (full width, ligatures, combining marks), unknown code points (fused), special-token
    texts, every whitespace kind, CJK, and 2000 random strings over a mixed alphabet."""
    from banana_sdk.runtime.sentencepiece_tokenizer import SentencePieceUnigramTokenizer, read_model
    from converters.byom.fixtures import T5_CORPUS, t5_tokenizer

    theirs = t5_tokenizer(tmp_path / "t5")
    ours = SentencePieceUnigramTokenizer(read_model(tmp_path / "t5" / "spiece.model"), 64)
    assert ours.vocab_size == len(theirs) and (ours.eos_id, ours.pad_id, ours.unk_id) == (1, 0, 2)
    prompts = [*T5_CORPUS, UNICODE_PROMPT, "ＦＵＬＬ ｗｉｄｔｈ ①②③ ﬁ ㌀ ½", "e\u0301 cafe\u0301 Å Å",
               "😀 👍🏽 🇫🇷 xyz qqq",
               "tab\there\nnew\u00a0nbsp\u3000ideo\u2009thin", "a</s>b <extra_id_0> x<pad>y <unk>", "▁x ▁ ▁▁y",
               "東京タワー 123,456.78", "\u200bzero\u200dwidth\ufeff", "Straße ǅ Ⅸ Ωmega µ", "\x00ctrl\x07"]
    rng = np.random.default_rng(0)
    alphabet = sorted(set("".join(T5_CORPUS)) | set(" \u3000\u00a0éÉßﬁ①Ａ😀\u0301▁</>"))
    prompts += ["".join(rng.choice(alphabet, int(rng.integers(1, 30)))) for _ in range(2000)]
    for prompt in prompts:
        assert ours.tokens(prompt) + [ours.eos_id] == theirs(prompt).input_ids, repr(prompt)
    encoded = ours.encode("a red Banana")
    assert encoded.ids.shape == (64,) and encoded.ids[encoded.length - 1] == 1
    assert not encoded.ids[encoded.length:].any()  # <pad> is 0
    assert ours.unconditional().length == 1  # "" -> [</s>]
    with pytest.raises(PromptError, match="prompt is 65 tokens but the model's context holds 64"):
        ours.encode("a " * 64)


@pytest.fixture(scope="module")
def pixart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(folder, fp32 bundle) of PixArt-alpha's test dummy (T5 text encoder, masked)."""
    folder = build_pipeline(tmp_path_factory.mktemp("pipes") / "pixart", "diffusers-test-pixart")
    return folder, convert_diffusers(tmp_path_factory.mktemp("bundles") / "pixart-fp32", folder)


def test_pixart_t5_bundle_equals_diffusers(pixart: tuple[Path, Path]) -> None:
    """PixArt-alpha with T5: masked text encoder and denoiser, the SentencePiece tokenizer as the bundle's
    `tokenizer` (120 tokens, lower-cased and stripped like the pipeline), PixArtAlphaPipeline's defaults (DDIM,
    20 steps, guidance 4.5); images equal to diffusers' for a Unicode prompt."""
    folder, bundle = pixart
    m = load_manifest(bundle)
    io = {n: {t["name"]: t["shape"] for t in s["inputs"]} for n, s in m["signatures"].items()}
    assert io["text_encoder"] == {"tokens": [1, 120], "attention_mask": [1, 120]}
    assert io["denoise"] == {"latent": list(PIXART_LATENT), "t": [1], "context": [1, 120, 32],
                             "context_mask": [1, 120]}
    tok = m["tokenizer"]
    assert (tok["kind"], tok["context_length"], tok["preprocess"], tok["model_file"]) == \
        ("sentencepiece-unigram", 120, ["lowercase", "strip"], "spiece.model")
    assert set(m["files"]) == {"text_encoder.tflite", "denoise.tflite", "vae_decode.tflite", "spiece.model"}
    s = m["sampler"]
    assert (m["model"]["family"], s["kind"], s["default_steps"], s["guidance_scale"]) == ("pixart", "ddim", 20, 4.5)
    for name, gate in m["gate"].items():
        assert gate["psnr_db"] >= 100.0, name  # measured >= 138 dB
    verify_bundle(bundle)
    assert _same_images(folder, bundle, "PixArtAlphaPipeline", PIXART_LATENT, UNICODE_PROMPT,
                        ((2, 4.5), (2, 1.0)), use_resolution_binning=False) == [0, 0]  # measured 0 and 0


def test_t5_tokenizer_gate_and_a_t5_without_its_sentencepiece_model(pixart: tuple[Path, Path], tmp_path: Path) -> None:
    folder = tmp_path / "pixart"
    shutil.copytree(pixart[0], folder)
    saved = (folder / "tokenizer" / "tokenizer.json").read_text()
    _edit(folder, "tokenizer/tokenizer.json", normalizer=None)  # a tokenizer.json we do not reproduce: the gate stops
    with pytest.raises(ConversionError, match=r"the bundle tokenizer gives \[.*\] for 'ein café in zürich, ｆｕｌｌ"):
        plan_diffusers(folder)
    (folder / "tokenizer" / "tokenizer.json").write_text(saved)
    (folder / "tokenizer" / "spiece.model").unlink()
    out = tmp_path / "out"
    assert_one_line_error(run_cli("convert", "--diffusers", folder, "--out", out, in_process=True),
                          "tokenizer has no spiece.model", "copy spiece.model from the original checkpoint")
    assert not out.exists() and list(tmp_path.iterdir()) == [folder]  # nothing written
    _edit(folder, "model_index.json", tokenizer=["transformers", "CLIPTokenizer"])
    (folder / "tokenizer" / "vocab.json").write_text("{}")
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    with pytest.raises(ConversionError, match="text_encoder .T5EncoderModel. needs a T5Tokenizer, got CLIPTokenizer"):
        plan_diffusers(folder)


def test_manifest_refuses_a_sampler_on_the_other_schedule_kind(sd3_fp32: tuple[Path, Path]) -> None:
    from banana_sdk.bundle.manifest import Manifest, ManifestError

    data = json.loads((sd3_fp32[1] / "manifest.json").read_text())
    assert Manifest.from_dict(data).sampler.kind == "flow-match-euler"
    data["sampler"]["kind"] = "ddim"
    with pytest.raises(ManifestError, match=r"sampler.schedule.kind 'flow-match' does not fit sampler.kind 'ddim' "
                                            r"\(it steps on \['ddpm'\]\)"):
        Manifest.from_dict(data)
    with pytest.raises(BananaError, match=r"flow-match schedule; choose a sampler from \['flow-match-euler'\]"):
        LiteRTPipeline.load(sd3_fp32[1]).run(PROMPT, steps=1, sampler="euler-ddpm")

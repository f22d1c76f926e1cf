"""`banana convert --diffusers`: tiny SD-style and DiT-style pipelines built locally, converted, gated, run."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from device_fixtures import adb, adb_server, sims  # noqa: F401
from PIL import Image

from banana_sdk.bundle.flatbuffer import read_graph
from banana_sdk.bundle.reader import load_manifest, verify_bundle
from banana_sdk.errors import BananaError
from banana_sdk.runtime.guidance import GuidanceMode
from banana_sdk.runtime.litert import LiteRTPipeline
from banana_sdk.sampling.noise import gaussian
from converters.byom.convert_diffusers import convert_diffusers, plan_diffusers, verify_diffusers
from converters.byom.diffusers import read_pipeline
from converters.byom.fixtures import build_pipeline
from converters.byom.scheduler import plan_sampler
from converters.engine import convert_jobs
from converters.errors import ConversionError
from converters.recipes import DEFAULT_GATE, Quant

SIGNATURES = {"text_encoder", "denoise", "vae_decode"}
PROMPT = "a photo of a red banana on a blue table"


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pipeline(tmp_path_factory.mktemp("pipes") / "tiny-sd", "tiny-sd")


@pytest.fixture(scope="module")
def dit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pipeline(tmp_path_factory.mktemp("pipes") / "tiny-dit", "tiny-dit")


@pytest.fixture(scope="module")
def sd_fp32(tmp_path_factory: pytest.TempPathFactory, sd_folder: Path) -> Path:
    """Converted through the real CLI."""
    out = tmp_path_factory.mktemp("bundles") / "sd-fp32"
    result = run_cli("convert", "--diffusers", sd_folder, "--out", out)
    assert result.code == 0, result.err[-3000:]
    assert "denoise" in result.out and f"wrote bundle {out} (fp32" in result.out
    return out


@pytest.fixture(scope="module")
def dit_int4(tmp_path_factory: pytest.TempPathFactory, dit_folder: Path) -> Path:
    return convert_diffusers(tmp_path_factory.mktemp("bundles") / "dit-int4", dit_folder, quant="int4")


def _io(manifest: dict, sig: str) -> dict[str, tuple[list[int], str]]:
    return {t["name"]: (t["shape"], t["dtype"]) for t in manifest["signatures"][sig]["inputs"]}


def test_sd_bundle_manifest_and_files(sd_fp32: Path, sd_folder: Path) -> None:
    from diffusers import PNDMScheduler

    m = load_manifest(sd_fp32)
    assert set(m["signatures"]) == SIGNATURES and set(m["gate"]) == SIGNATURES
    assert set(m["files"]) == {f"{s}.tflite" for s in SIGNATURES} | {"vocab.json", "merges.txt"}
    assert _io(m, "text_encoder") == {"tokens": ([1, 77], "int32")}
    assert _io(m, "denoise") == {"latent": ([1, 4, 8, 8], "float32"), "t": ([1], "float32"),
                                 "context": ([1, 77, 32], "float32")}
    assert m["signatures"]["vae_decode"]["outputs"] == [{"name": "image", "shape": [1, 64, 64, 3], "dtype": "float32"}]
    assert m["model"]["kind"] == "diffusers" and m["model"]["pipeline"] == "StableDiffusionPipeline"
    assert m["tokenizer"]["kind"] == "clip-bpe" and m["tokenizer"]["context_length"] == 77
    sampler = m["sampler"]
    assert (sampler["kind"], sampler["guidance"], sampler["guidance_scale"]) == ("ddim", "cfg", 7.5)
    assert sampler["scheduler_class"] == "PNDMScheduler" and sampler["prediction"] == "epsilon"
    table = PNDMScheduler.from_pretrained(sd_folder / "scheduler").alphas_cumprod.double().numpy()
    np.testing.assert_array_equal(np.array(sampler["schedule"]["alphas_cumprod"]), table)
    assert sampler["schedule"]["final_alpha_cumprod"] == pytest.approx(table[0])  # set_alpha_to_one=False
    recipe = DEFAULT_GATE[Quant.FP32]
    for name, gate in m["gate"].items():
        assert (gate["threshold_psnr_db"], gate["threshold_cosine"]) == (recipe.min_psnr_db, recipe.min_cosine)
        assert gate["psnr_db"] >= recipe.min_psnr_db and gate["cosine"] >= recipe.min_cosine, name
        graph = read_graph(sd_fp32 / f"{name}.tflite").signatures[name]
        assert not any(t.dtype == "INT64" for t in graph.tensors), f"{name}: int64 on device"
        assert "BROADCAST_TO" not in graph.op_counts(), f"{name}: GroupNorm rewrite missing"
    assert m["build"]["vae_decode"]["notes"]["group_norm"] > 0
    assert m["build"]["denoise"]["notes"]["attention_processor"] > 0
    verify_bundle(sd_fp32)


def test_sd_generation_equals_the_diffusers_pipeline(sd_fp32: Path, sd_folder: Path) -> None:
    """Same prompt, seed-derived latents and DDIM schedule: LiteRT == diffusers' StableDiffusionPipeline."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, local_files_only=True)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
    pipe.set_progress_bar_config(disable=True)
    lite = LiteRTPipeline.load(sd_fp32)
    for steps, scale in ((3, 7.5), (2, 1.0)):
        latents = torch.from_numpy(gaussian(5, 0, (1, 4, 8, 8)))
        theirs = pipe(PROMPT, num_inference_steps=steps, guidance_scale=scale, latents=latents,
                      output_type="np").images[0]
        ours = lite.run(PROMPT, steps=steps, seed=5, guidance_scale=scale)
        assert len(ours.denoise_ms) == steps
        diff = np.abs(np.asarray(ours.image).astype(int) - np.round(theirs * 255).astype(int))
        assert diff.max() <= 1, (steps, scale, diff.max())


def test_dit_bundle_masks_lcm_and_cli_generate(dit_int4: Path, tmp_path: Path) -> None:
    m = load_manifest(dit_int4)
    assert m["model"]["pipeline"] == "PixArtAlphaPipeline"
    assert _io(m, "text_encoder") == {"tokens": ([1, 77], "int32"), "attention_mask": ([1, 77], "float32")}
    assert _io(m, "denoise")["context_mask"] == ([1, 77], "float32")
    assert (m["sampler"]["kind"], m["sampler"]["default_steps"], m["sampler"]["guidance_scale"]) == ("lcm-ddpm", 4, 1.0)
    assert set(m["quantization"]["per_signature"]["denoise"]["FULLY_CONNECTED"]) == {"int4_blockwise_32"}
    out = tmp_path / "dit.png"
    result = run_cli("generate", "--bundle", dit_int4, "--prompt", PROMPT, "--seed", "3", "--out", out)
    assert result.code == 0, result.err[-2000:]
    image = np.asarray(Image.open(out))
    assert image.shape == (64, 64, 3) and image.std() > 1.0
    again = LiteRTPipeline.load(dit_int4).run(PROMPT, seed=3)
    np.testing.assert_array_equal(np.asarray(again.image), image)  # same seed, same image
    assert len(again.denoise_ms) == 4
    assert_one_line_error(run_cli("generate", "--bundle", dit_int4, "--prompt", PROMPT, "--sampler", "euler",
                                  "--out", tmp_path / "x.png", in_process=True), "ddim", "lcm-ddpm")


def test_rerun_skips_and_verify_catches_tampering(sd_fp32: Path, sd_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    shutil.copytree(sd_fp32, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    convert_diffusers(out, sd_folder)
    assert load_manifest(out)["files"] == load_manifest(sd_fp32)["files"]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix == ".tflite"} == \
        {k: v for k, v in before.items() if k.endswith(".tflite")}
    result = run_cli("verify", out, "--diffusers", sd_folder, in_process=True)
    assert result.code == 0 and "sha256 ok" in result.out and result.out.count("passed") == 3, result.err[-2000:]
    assert_one_line_error(run_cli("verify", out, "--model", sd_folder, in_process=True), "--diffusers")
    perturbed = tmp_path / "perturbed"
    shutil.copytree(sd_folder, perturbed)
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(perturbed / "unet")
    with torch.no_grad():
        unet.conv_out.weight.mul_(1.5)
    unet.save_pretrained(perturbed / "unet")
    with pytest.raises(ConversionError, match="accuracy gate failed for denoise"):
        verify_diffusers(out, perturbed)
    vocab = out / "vocab.json"
    vocab.write_text(vocab.read_text().replace('"red</w>"', '"rex</w>"'))
    assert_one_line_error(run_cli("verify", out, in_process=True), "vocab.json", "sha256 mismatch")


def test_embedded_guidance_unet_int4_through_the_gate(tmp_path: Path) -> None:
    """An LCM-distilled UNet (guidance-scale embedding): batch 1 with a `guidance` input; at int4 its LiteRT
    file passes the gate against the model's own forward (called with the LCM pipeline's embedding)."""
    folder = build_pipeline(tmp_path / "lcm-sd", "tiny-lcm-sd")
    sampler = plan_sampler(read_pipeline(folder), GuidanceMode.EMBEDDED)
    assert (sampler.kind, sampler.guidance_scale, sampler.default_steps) == ("lcm-ddpm", 8.5, 4)
    plan = plan_diffusers(folder, quant="int4")
    denoise = next(j for j in plan.jobs if j.name == "denoise")
    records = {}

    class Converted(BananaError):
        """Stops the engine once the signature is converted and gated (one signature is not a bundle)."""

    def manifest(recs: dict, staging: Path) -> dict:
        records.update(recs)
        raise Converted("denoise converted")

    with pytest.raises(Converted):
        convert_jobs(tmp_path / "den", [denoise], plan.quant, plan.block_size, plan.threshold, manifest)
    assert not (tmp_path / "den").exists() and not (tmp_path / ".den.partial").exists()  # nothing half-written
    record = records["denoise"]
    io = {t["name"]: t["shape"] for t in record["io"]["inputs"]}
    assert io["guidance"] == [1] and io["latent"] == [1, 4, 8, 8] and "context_mask" not in io
    assert set(record["storage"]["FULLY_CONNECTED"]) == {"int4_blockwise_32"}
    assert set(record["storage"]["CONV_2D"]) == {"int8_channelwise"}
    recipe = DEFAULT_GATE[Quant.INT4]
    assert record["gate"]["psnr_db"] >= recipe.min_psnr_db and record["gate"]["cosine"] >= recipe.min_cosine

def _broken_copy(sd_folder: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "pipe"
    shutil.copytree(sd_folder, folder)
    return folder


def _edit_index(folder: Path, **changes: object) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    index.update(changes)
    (folder / "model_index.json").write_text(json.dumps(index))


def test_bad_pipeline_folders_are_one_line_errors(sd_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli("convert", "--diffusers", empty, "--out", out),
                          "not a diffusers pipeline folder", "model_index.json is missing")
    folder = _broken_copy(sd_folder, tmp_path)
    original = (folder / "model_index.json").read_text()
    _edit_index(folder, unet=["diffusers", "UNet3DConditionModel"])
    assert_one_line_error(run_cli("convert", "--diffusers", folder, "--out", out, in_process=True),
                          "unet: UNet3DConditionModel is not supported", "UNet2DConditionModel",
                          "PixArtTransformer2DModel")
    assert_one_line_error(run_cli("convert", "--diffusers", folder, "--preset", "tiny", "--out", out, in_process=True),
                          "exactly one of --preset, --model, --diffusers, --module")
    cases = (
        ({"unet": None}, "lists no 'unet' or 'transformer' component"),
        ({"unet": [None, None]}, "lists no 'unet' or 'transformer' component"),
        ({"scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]},
         "FlowMatchEulerDiscreteScheduler is not supported yet for StableDiffusionPipeline (sd family); it needs a "
         "DDPM-family scheduler"),
        ({"scheduler": ["diffusers", "KarrasVeScheduler"]},
         "KarrasVeScheduler is not supported yet; supported scheduler classes: DDIMScheduler"),
        ({"tokenizer": ["transformers", "T5TokenizerFast"]}, "tokenizer has no spiece.model: a T5TokenizerFast"),
        ({"vae": ["diffusers", "AutoencoderKL", "extra"]}, "must be [library, class]"),
    )
    for changes, message in cases:
        (folder / "model_index.json").write_text(original)
        _edit_index(folder, **changes)
        with pytest.raises(ConversionError, match=re.escape(message)):
            convert_diffusers(out, folder)
    (folder / "model_index.json").write_text(original)
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ConversionError, match="vae has no weights"):
        convert_diffusers(out, folder)
    shutil.rmtree(folder / "vae")
    with pytest.raises(ConversionError, match="the vae/ folder named in model_index.json is missing"):
        convert_diffusers(out, folder)
    with pytest.raises(ConversionError, match="does not exist"):
        convert_diffusers(out, tmp_path / "nowhere")
    assert not out.exists()


def test_corrupt_weights_fail_mid_run_and_leave_nothing(sd_folder: Path, tmp_path: Path) -> None:
    """The text encoder converts, then the UNet cannot load: one line, no bundle, no staging dir."""
    folder = _broken_copy(sd_folder, tmp_path / "src")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli("convert", "--diffusers", folder, "--out", work / "b", in_process=True)
    assert_one_line_error(result, "cannot load UNet2DConditionModel")
    assert "text_encoder: verify" in result.err  # it got past the first signature
    assert list(work.iterdir()) == []


def test_profile_runs_a_diffusers_bundle_on_the_simulated_phone(adb, sims, sd_fp32: Path, tmp_path: Path) -> None:  # noqa: ANN001, F811
    """`banana profile --bundle SD_BUNDLE`: the simulated app generates with the converted pipeline (its own sampler,
    CFG) through paced runners: images, per-stage timings and the same image as the host runtime."""
    from device_tests.profile import ProfileSettings, profile

    sim = sims("flagship")
    out = tmp_path / "SD.json"
    run = profile(sd_fp32, out, sim.serial, ProfileSettings(prompt=PROMPT, steps=2, seed=5, runs=2, cooldown_c=None),
                  adb=adb)
    d = run["devices"][0]
    assert d["complete"] and len(d["runs"]) == 2
    assert all(len(r["denoise_ms"]) == 2 and r["text_ms"] > 0 and r["decode_ms"] > 0 for r in d["runs"])
    with adb.device(sim.serial).sync() as sync:
        pulled = sync.pull(d["launches"][0]["image"]["path"])
    host = LiteRTPipeline.load(sd_fp32).run(PROMPT, steps=2, seed=5).image
    device_image = Image.open(io.BytesIO(pulled)).convert("RGB")
    assert np.array_equal(np.asarray(device_image), np.asarray(host))
    assert_one_line_error(run_cli("profile", "--bundle", sd_fp32, "--serial", sim.serial, "--subject", "pip",
                                  "--no-cooldown", "-o", tmp_path / "bad.json", in_process=True), "subject")

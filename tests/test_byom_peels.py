"""Runtime peels for BYOM diffusers bundles (sd family): LCM-LoRA-shaped PEFT / kohya LoRA files of a UNet become
runtime peels on the bundle, equal the diffusers pipeline with the LoRA merged into its UNet, swap without
reloading; a LoRA for another base is one line, exit 1, nothing written."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from device_fixtures import adb, adb_server, sims  # noqa: F401
from safetensors.numpy import save_file

from banana_sdk.bundle.reader import load_manifest
from banana_sdk.peels.config import PeelError
from banana_sdk.peels.device import load_runtime
from banana_sdk.peels.diffusers_layout import LCM_LORA_TARGETS, SlotKind, UNetSlot, unet_slots_from_manifest
from banana_sdk.peels.diffusers_lora import lora_for_bundle
from banana_sdk.runtime.litert import LiteRTPipeline
from banana_sdk.sampling.noise import gaussian
from converters.byom.convert_diffusers import convert_diffusers
from converters.byom.fixtures import build_pipeline
from converters.byom.peels import check_unet_peels_section, unet_layout
from converters.errors import ConversionError
from converters.recipes import DEFAULT_GATE, Quant

PROMPT = "a photo of a red banana on a blue table"
STEPS, SEED, SCALE = 3, 5, 7.5  # DDIM with classifier-free guidance: the peel acts on both denoiser passes
B_SCALE = 0.3  # std of B * sqrt(r): a clearly visible LoRA (~12/255 mean change of the image), not a broken one
Lora = dict[str, tuple[np.ndarray, np.ndarray]]  # module path -> (A, B) in PEFT's shapes


# --- fixtures: two SD pipelines (different UNet widths), an fp32 bundle of one and an INT4 bundle of the other -----

@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipes")
    return {"test-sd": build_pipeline(root / "test-sd", "diffusers-test-sd"),
            "tiny-sd": build_pipeline(root / "tiny-sd", "tiny-sd")}


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory: pytest.TempPathFactory, folders: dict[str, Path]) -> Path:
    """diffusers' own SD test components, converted through the real CLI with buckets 4 and 8 (16 px: latents 8x8)."""
    out = tmp_path_factory.mktemp("bundles") / "test-sd-fp32"
    result = run_cli("convert", "--diffusers", folders["test-sd"], "--size", 16, "--peel-buckets", "4,8", "--out", out)
    assert result.code == 0, result.err[-3000:]
    assert "runtime peels: rank buckets [4, 8], zero A/B vs denoise: PSNR >= 200.0 dB" in result.out
    return out


@pytest.fixture(scope="module")
def int4_bundle(tmp_path_factory: pytest.TempPathFactory, folders: dict[str, Path]) -> Path:
    return convert_diffusers(tmp_path_factory.mktemp("bundles") / "tiny-sd-int4", folders["tiny-sd"], quant="int4",
                             peel_buckets="4")


@pytest.fixture(scope="module")
def pipelines(folders: dict[str, Path]) -> dict[str, object]:
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    out = {}
    for name, folder in folders.items():
        pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, clip_sample=False)
        pipe.set_progress_bar_config(disable=True)
        out[name] = pipe
    return out


# --- helpers ------------------------------------------------------------------------------------------------------

def random_lora(slots: list[UNetSlot], rank: int, seed: int, only: tuple[str, ...] | None = None) -> Lora:
    """LCM-LoRA-shaped random weights: every slot (or those whose path ends with one of `only`), PEFT shapes."""
    gen = np.random.default_rng(seed)
    out = {}
    for s in slots:
        if only is None or s.name.endswith(only):
            a = gen.standard_normal(s.a_shape(rank)).astype(np.float32) / np.float32(np.sqrt(s.columns))
            b = gen.standard_normal(s.b_shape(rank)).astype(np.float32) * np.float32(B_SCALE / np.sqrt(rank))
            out[s.name] = (a, b)
    return out


def write_peft(lora: Lora, path: Path, prefix: str = "unet.") -> Path:
    """diffusers' `save_lora_weights` keys: unet.<module path>.lora_A.weight / .lora_B.weight, no alpha."""
    save_file({f"{prefix}{n}.lora_{x}.weight": t for n, (a, b) in lora.items() for x, t in (("A", a), ("B", b))},
              str(path))
    return path


def write_kohya(lora: Lora, path: Path, alpha: float) -> Path:
    """kohya's keys: lora_unet_<module path with _>.lora_down.weight / .lora_up.weight / .alpha."""
    tensors = {}
    for n, (a, b) in lora.items():
        stem = "lora_unet_" + n.replace(".", "_")
        tensors.update({f"{stem}.lora_down.weight": a, f"{stem}.lora_up.weight": b,
                        f"{stem}.alpha": np.array(alpha, np.float32)})
    save_file(tensors, str(path))
    return path


def merged_image(pipe, loras: list[tuple[Lora, float]], size: int) -> np.ndarray:  # noqa: ANN001
    """The diffusers pipeline's `size` px image with `W += scale * B @ A` merged into a copy of its UNet (PEFT's
    merge), from the latents our runtime draws."""
    pipe = copy.copy(pipe)
    pipe.unet = copy.deepcopy(pipe.unet)
    with torch.no_grad():
        for lora, scale in loras:
            for name, (a, b) in lora.items():
                layer = pipe.unet.get_submodule(name)
                delta = b.reshape(b.shape[0], -1) @ a.reshape(a.shape[0], -1)
                layer.weight += scale * torch.from_numpy(delta).reshape(layer.weight.shape)
    side = size // 2 ** (len(pipe.vae.config.block_out_channels) - 1)  # latent pixels
    latents = torch.from_numpy(gaussian(SEED, 0, (1, 4, side, side)))
    image = pipe(PROMPT, height=size, width=size, num_inference_steps=STEPS, guidance_scale=SCALE, latents=latents,
                 output_type="np").images[0]
    return np.round(image * 255).astype(int)


def generate(lite: LiteRTPipeline) -> np.ndarray:
    return np.asarray(lite.run(PROMPT, steps=STEPS, seed=SEED, guidance_scale=SCALE).image).astype(int)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


# --- the bundle ---------------------------------------------------------------------------------------------------

def test_manifest_peels_section_names_diffusers_layers(fp32_bundle: Path, folders: dict[str, Path]) -> None:
    m = load_manifest(fp32_bundle)
    section = m["peels"]
    assert section["buckets"] == [4, 8] and section["signatures"] == {"4": "denoise_r4", "8": "denoise_r8"}
    assert section["targets"] == list(LCM_LORA_TARGETS) and section["inputs"] == ["lora_a", "lora_b"]
    slots = unet_slots_from_manifest(m)
    by_name = {s.name: s for s in slots}
    assert by_name["down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"] == UNetSlot(
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q", SlotKind.LINEAR, 8, 8)
    assert by_name["down_blocks.1.attentions.0.proj_in"] == UNetSlot(
        "down_blocks.1.attentions.0.proj_in", SlotKind.CONV, 8, 8, (1, 1))  # SD 1.x: a 1x1 conv
    conv1 = by_name["down_blocks.1.resnets.0.conv1"]
    assert (conv1.kind, conv1.kernel, conv1.columns) == (SlotKind.CONV, (3, 3), 4 * 9)
    assert {"down_blocks.0.downsamplers.0.conv", "up_blocks.0.upsamplers.0.conv", "mid_block.resnets.0.time_emb_proj",
            "down_blocks.1.resnets.0.conv_shortcut", "up_blocks.0.attentions.0.transformer_blocks.0.ff.net.2"} \
        <= set(by_name)
    entry = section["layout"][[s.name for s in slots].index(conv1.name)]
    assert entry == {"name": conv1.name, "in": 36, "out": 8, "kind": "conv", "in_channels": 4, "kernel": [3, 3]}
    assert slots == unet_layout(m["model"]["components"]["denoiser"]["config"])
    for r in (4, 8):
        io = {i["name"]: i["shape"] for i in m["signatures"][f"denoise_r{r}"]["inputs"]}
        assert [io["lora_a"], io["lora_b"]] == [[n] for n in section["sizes"][str(r)]]
        assert m["signatures"][f"denoise_r{r}"]["file"] == "denoise.tflite"
        assert section["zero_check"][f"denoise_r{r}"] == {"max_abs_error": 0.0, "psnr_db": 200.0}
        assert m["gate"][f"denoise_r{r}"]["psnr_db"] >= DEFAULT_GATE[Quant.FP32].min_psnr_db
    assert set(m["files"]) == {"text_encoder.tflite", "denoise.tflite", "vae_decode.tflite", "vocab.json",
                               "merges.txt"}
    assert check_unet_peels_section(fp32_bundle, m) == section
    result = run_cli("verify", fp32_bundle, "--diffusers", folders["test-sd"], in_process=True)
    assert result.code == 0, result.err
    assert "denoise_r8: " in result.out and result.out.count("passed") == 5  # 3 signatures + 2 buckets, re-gated


# --- images: peel == merged LoRA, swaps without reload, zero peel == base -------------------------------------------

def test_peels_equal_the_merged_lora_and_swap_without_reload(
    fp32_bundle: Path, pipelines: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    slots = unet_slots_from_manifest(load_manifest(fp32_bundle))
    lcm = random_lora(slots, 4, seed=1)  # every target kind, PEFT keys, exported through the CLI with --alpha 8
    attn = random_lora(slots, 2, seed=2, only=("to_q", "to_v", "to_out.0", "conv1", "proj_in"))  # kohya, alpha 1
    exported = tmp_path / "lcm.rt.safetensors"
    result = run_cli("peel", "export", "--peel", write_peft(lcm, tmp_path / "lcm.safetensors"), "--bundle",
                     fp32_bundle, "--alpha", "8", "--out", exported, in_process=True)
    assert result.code == 0, result.err
    meta, a, _ = load_runtime(exported)
    assert (meta["name"], meta["rank"], len(json.loads(meta["slots"]))) == ("lcm", "4", len(slots))
    assert json.loads(meta["source"]) == {"file": "lcm.safetensors", "forms": ["peft"]}
    kohya = write_kohya(attn, tmp_path / "attn.safetensors", alpha=1.0)

    pipe = pipelines["test-sd"]
    lite = LiteRTPipeline.load(fp32_bundle)
    runners = lite.signature_runners()

    def no_reload(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
        raise AssertionError("a peel swap created an Interpreter")

    monkeypatch.setattr("ai_edge_litert.interpreter.Interpreter", no_reload)
    base = generate(lite)
    cases = [([(exported, 1.0)], [(lcm, 8 / 4)]),  # scale alpha / r = 2
             ([(kohya, 0.8)], [(attn, 0.8 * 1 / 2)]),  # the raw LoRA file, imported on the fly, weight 0.8
             ([(exported, 1.0), (kohya, 1.0)], [(lcm, 2.0), (attn, 0.5)])]  # stacked: rank 6 -> denoise_r8
    images = []
    for peels, merge in cases:
        lite.set_peels(peels)
        image = generate(lite)
        reference = merged_image(pipe, merge, lite.size)
        assert np.abs(image - reference).max() <= 1, (peels, np.abs(image - reference).max())
        assert np.abs(reference - base).mean() > 3, "the LoRA must visibly change the image"
        images.append(image)
    assert lite._diffusers.peel[0] == "denoise_r8"
    assert min(np.abs(x - y).mean() for i, x in enumerate(images) for y in images[i + 1:]) > 3  # each its own image
    lite.set_peels([(exported, 0.0)])  # a zero peel (denoise_r4 with zero B) is the base, bit for bit
    assert lite._diffusers.peel[0] == "denoise_r4" and np.array_equal(generate(lite), base)
    lite.set_peels([])
    assert lite._diffusers.peel is None and np.array_equal(generate(lite), base)
    assert np.abs(base - merged_image(pipe, [], lite.size)).max() <= 1
    assert lite.signature_runners() == runners and all(lite.signature_runners()[k] is runners[k] for k in runners)


def test_profile_applies_a_unet_lora_on_the_simulated_phone(adb, sims, fp32_bundle: Path,  # noqa: ANN001, F811
                                                            tmp_path: Path) -> None:
    """`banana profile --bundle SD_BUNDLE --peel lora.safetensors`: the simulated app applies the LoRA as a runtime
    peel (its rank bucket's denoiser, paced like the base one); its image is the host runtime's with the same
    peel, not the base's. A LoRA for another base is refused on the host before any device work."""
    import io

    from PIL import Image

    from device_tests.profile import ProfileSettings, profile

    slots = unet_slots_from_manifest(load_manifest(fp32_bundle))
    lora = write_peft(random_lora(slots, 4, seed=7), tmp_path / "style.safetensors")
    sim = sims("flagship")
    settings = ProfileSettings(prompt=PROMPT, steps=2, seed=SEED, runs=1, cooldown_c=None, peels=((lora, 0.8),))
    run = profile(fp32_bundle, tmp_path / "PEEL.json", sim.serial, settings, adb=adb)
    d = run["devices"][0]
    assert d["complete"] and len(d["runs"]) == 1 and len(d["runs"][0]["denoise_ms"]) == 2
    with adb.device(sim.serial).sync() as sync:
        device_image = np.asarray(Image.open(io.BytesIO(sync.pull(d["launches"][0]["image"]["path"]))).convert("RGB"))
    host = LiteRTPipeline.load(fp32_bundle)
    base = np.asarray(host.run(PROMPT, steps=2, seed=SEED).image)
    host.set_peels([(lora, 0.8)])
    assert np.array_equal(device_image, np.asarray(host.run(PROMPT, steps=2, seed=SEED).image))
    assert np.abs(device_image.astype(int) - base).mean() > 3  # the peel was applied
    other = write_peft(random_lora(slots, 4, seed=7), tmp_path / "other.safetensors", prefix="unet.mid_block.")
    assert_one_line_error(run_cli("profile", "--bundle", fp32_bundle, "--serial", sim.serial, "--peel", other,
                                  "--no-cooldown", "-o", tmp_path / "bad.json", in_process=True), "other.safetensors")


def test_int4_bundle_applies_the_peel_within_the_gate(int4_bundle: Path, pipelines: dict, tmp_path: Path) -> None:
    m = load_manifest(int4_bundle)
    gate = DEFAULT_GATE[Quant.INT4]
    assert m["gate"]["denoise_r4"]["psnr_db"] >= gate.min_psnr_db
    assert m["gate"]["denoise_r4"]["cosine"] >= gate.min_cosine
    assert m["peels"]["zero_check"]["denoise_r4"]["psnr_db"] >= gate.min_psnr_db
    storage = m["quantization"]["per_signature"]["denoise_r4"]
    assert storage["FULLY_CONNECTED"] == m["quantization"]["per_signature"]["denoise"]["FULLY_CONNECTED"]
    assert "int4_blockwise_32" in storage["FULLY_CONNECTED"]  # the base stays INT4 under the fp32 low-rank path
    lora = random_lora(unet_slots_from_manifest(m), 4, seed=3)
    lite = LiteRTPipeline.load(int4_bundle)
    base = generate(lite)
    lite.set_peels([(write_peft(lora, tmp_path / "lcm.safetensors", prefix="base_model.model."), 1.0)])
    image = generate(lite)
    reference = merged_image(pipelines["tiny-sd"], [(lora, 1.0)], lite.size)
    unmerged = merged_image(pipelines["tiny-sd"], [], lite.size)
    # INT4 weights cost ~37 dB against the fp32 pipeline on this model (base vs base); the peel image stays that
    # close to the merged pipeline, far closer than the INT4 base is (~23.5 dB: the peel does what the LoRA does)
    assert psnr(image, reference) >= 30.0, psnr(image, reference)
    assert psnr(image, reference) >= psnr(base, reference) + 8.0
    assert psnr(base, unmerged) >= 30.0


# --- a LoRA for another base, and other refusals ----------------------------------------------------------------------

def test_lora_for_another_base_is_one_line_and_writes_nothing(
    fp32_bundle: Path, int4_bundle: Path, tmp_path: Path,
) -> None:
    other = random_lora(unet_slots_from_manifest(load_manifest(int4_bundle)), 4, seed=4)  # tiny-sd: other widths
    out = tmp_path / "p.safetensors"
    cases = [
        (write_peft(other, tmp_path / "wide.safetensors"),
         "'unet.down_blocks.0.downsamplers.0.conv.lora_A.weight' has shape (4, 32, 3, 3); this bundle's "
         "down_blocks.0.downsamplers.0.conv takes A of shape (4, 4, 3, 3) (a LoRA for another base)"),
        (write_kohya({"down_blocks.3.attentions.0.proj_in": other["down_blocks.1.attentions.0.proj_in"]},
                     tmp_path / "deep.safetensors", 4.0),
         "'lora_unet_down_blocks_3_attentions_0_proj_in.alpha' names a layer this bundle's peel layout does not "
         "have"),
        (write_peft({"text_model.encoder.layers.0.self_attn.q_proj": other["mid_block.resnets.0.time_emb_proj"]},
                    tmp_path / "te.safetensors", prefix="text_encoder."), "adapts the text encoder"),
    ]
    for lora, message in cases:
        result = run_cli("peel", "export", "--peel", lora, "--bundle", fp32_bundle, "--out", out, in_process=True)
        assert_one_line_error(result, message, alone=True)
        assert result.code == 1 and not out.exists()
    fits = write_peft(random_lora(unet_slots_from_manifest(load_manifest(fp32_bundle)), 2, seed=8),
                      tmp_path / "fits.safetensors")
    image = tmp_path / "img.png"
    result = run_cli("generate", "--bundle", fp32_bundle, "--prompt", PROMPT, "--peel", f"{fits}:0.5", "--out", image,
                     in_process=True)
    assert result.code == 0 and image.is_file() and "peels fits.safetensors:0.5" in result.out, result.err
    image.unlink()
    result = run_cli("generate", "--bundle", fp32_bundle, "--prompt", PROMPT, "--peel", cases[0][0], "--out", image,
                     in_process=True)
    assert_one_line_error(result, "(a LoRA for another base)", alone=True)
    assert result.code == 1 and not image.exists()


def test_lora_key_forms_alpha_sources_and_refusals(fp32_bundle: Path, tmp_path: Path) -> None:
    m = load_manifest(fp32_bundle)
    slots = unet_slots_from_manifest(m)
    lora = random_lora(slots, 2, seed=5, only=("attn1.to_q", "attn2.to_out.0", "proj_out", "conv2"))
    reference = lora_for_bundle(write_kohya(lora, tmp_path / "k.safetensors", alpha=2.0), m)  # scale 1
    attn_path = "down_blocks.1.attentions.0.transformer_blocks.0"
    forms = {
        "peft": write_peft(lora, tmp_path / "peft.safetensors"),
        "bare": write_peft(lora, tmp_path / "bare.safetensors", prefix=""),
        "diffusers-old": _save(tmp_path / "old.safetensors", _old_diffusers_keys(lora)),
    }
    for form, path in forms.items():
        meta, a, b = lora_for_bundle(path, m)
        assert meta["slots"] == reference[0]["slots"], form
        np.testing.assert_array_equal(a, reference[1])
        np.testing.assert_array_equal(b, reference[2])
    # PEFT settings: diffusers' header metadata, adapter_config.json beside the file, --alpha (over both)
    header = tmp_path / "meta" / "lora.safetensors"
    header.parent.mkdir()
    _save(header, _peft_keys(lora), {"lora_adapter_metadata": json.dumps({"unet.lora_alpha": 4, "unet.r": 2})})
    np.testing.assert_allclose(lora_for_bundle(header, m)[2], 2 * reference[2])
    (header.parent / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "lora_alpha": 1,
                                                                    "alpha_pattern": {"proj_out": 6}}))
    meta, _, b = lora_for_bundle(header, m)
    names = json.loads(meta["slots"])
    scale = np.concatenate([np.full(next(s for s in slots if s.name == n).out * 2, 3.0 if n.endswith("proj_out")
                                    else 0.5, np.float32) for n in names])
    np.testing.assert_allclose(b, scale * reference[2], rtol=1e-6)
    np.testing.assert_allclose(lora_for_bundle(header, m, alpha=8.0)[2], 4 * reference[2], rtol=1e-6)
    # mixed ranks are zero-padded to the largest (the same update); a 1x1 conv takes a linear-shaped A and B
    mixed = {**lora, f"{attn_path}.attn1.to_q": random_lora(slots, 4, 6, only=("0.attn1.to_q",))[
        f"{attn_path}.attn1.to_q"]}
    proj = "down_blocks.1.attentions.0.proj_out"
    mixed[proj] = (mixed[proj][0].reshape(2, -1), mixed[proj][1].reshape(-1, 2))
    meta, a, _ = lora_for_bundle(write_peft(mixed, tmp_path / "mixed.safetensors"), m)
    assert meta["rank"] == "4" and a.size == 4 * sum(s.columns for s in slots if s.name in mixed)
    refusals = [
        (_save(tmp_path / "dora.safetensors", _peft_keys(lora),
               {"lora_adapter_metadata": json.dumps({"unet.use_dora": True})}), "DoRA"),
        (_save(tmp_path / "half.safetensors", {k: v for k, v in _peft_keys(lora).items() if "lora_B" not in k}),
         "but no B (up) weight"),
        (_save(tmp_path / "odd.safetensors", {**_peft_keys(lora), "unet.conv_in.lora_magnitude_vector": np.ones(4)}),
         "'unet.conv_in.lora_magnitude_vector' is not a LoRA tensor"),
        (_save(tmp_path / "nan.safetensors", {k: v * np.nan for k, v in _peft_keys(lora).items()}), "sane range"),
        (write_peft(random_lora(slots, 16, 7, only=("conv1",)), tmp_path / "r16.safetensors"),
         "larger than any runtime bucket [4, 8]"),
    ]
    for path, message in refusals:
        with pytest.raises(PeelError, match=".*") as info:
            lora_for_bundle(path, m)
        assert message in str(info.value) and "\n" not in str(info.value), (message, str(info.value))


def test_convert_refuses_other_families_and_targets(folders: dict[str, Path], tmp_path: Path) -> None:
    dit = build_pipeline(tmp_path / "dit", "tiny-dit")
    cases = [
        ((dit, "4", None), "--peel-buckets with --diffusers supports the 'sd' family"),
        ((folders["test-sd"], "4", "to_q,norm1"), "down_blocks.0.resnets.0.norm1 is a GroupNorm; runtime peels adapt "
                                                  "nn.Linear and nn.Conv2d (groups 1, dilation 1, zero padding)"),
        ((folders["test-sd"], "4", "to_q,to_qq"), "'to_qq' matches no linear or conv layer of the UNet"),
        ((folders["test-sd"], None, "to_q"), "--peel-targets goes with --peel-buckets"),
    ]
    for (folder, buckets, targets), message in cases:
        out = tmp_path / "never"
        with pytest.raises(ConversionError, match=".*") as info:
            convert_diffusers(out, folder, peel_buckets=buckets, peel_targets=targets)
        assert message in str(info.value) and not out.exists(), str(info.value)
    slots = unet_layout(json.loads((folders["test-sd"] / "unet" / "config.json").read_text()), ("to_k", "ff.net.2"))
    assert {s.name.rsplit(".", 1)[-1] for s in slots} == {"to_k", "2"}
    assert len(slots) == 4 * 3  # 4 transformer blocks (down 1, mid 1, up 2) x attn1.to_k, attn2.to_k, ff.net.2


def _old_diffusers_keys(lora: Lora) -> dict[str, np.ndarray]:
    """diffusers before PEFT: attention processors' `...attn1.processor.to_q_lora.down.weight` (to_out.0: to_out_lora),
    other layers' `unet.<module path>.lora.down.weight`."""
    out = {}
    for name, (a, b) in lora.items():
        attention, _, proj = name.removesuffix(".0").rpartition(".")
        stem = f"unet.{attention}.processor.{proj}_lora" if proj.startswith("to_") else f"unet.{name}.lora"
        out[f"{stem}.down.weight"], out[f"{stem}.up.weight"] = a, b
    return out


def _peft_keys(lora: Lora) -> dict[str, np.ndarray]:
    return {f"unet.{n}.lora_{x}.weight": t for n, (a, b) in lora.items() for x, t in (("A", a), ("B", b))}


def _save(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(path), metadata=metadata)
    return path

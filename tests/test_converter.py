"""Converter: bundles at every quant, what the files hold, the gate, verify, re-runs, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from PIL import Image

from banana_sdk.bundle.flatbuffer import read_graph
from banana_sdk.bundle.reader import load_manifest, verify_bundle
from banana_sdk.errors import BundleError
from banana_sdk.models.model import build_model
from banana_sdk.pipeline import Pipeline
from banana_sdk.presets import get_preset
from banana_sdk.runtime.litert import LiteRTPipeline
from converters.convert import convert
from converters.errors import ConversionError
from converters.recipes import DEFAULT_GATE, Quant
from converters.verify import verify

QUANTS = ("fp32", "fp16", "int8", "int4")
SIGNATURES = {"text_encoder", "denoise", "vae_decode"}
TEXT_FC = 7  # tiny text encoder: q, k, v, o, fc1, fc2 per block + the one-hot embedding


@pytest.mark.parametrize("quant", QUANTS)
def test_bundle_signatures_and_claimed_types(bundle_factory, quant: str) -> None:  # noqa: ANN001
    bundle = bundle_factory(quant)
    manifest = load_manifest(bundle)
    assert set(manifest["signatures"]) == SIGNATURES
    assert set(manifest["files"]) == {f"{s}.tflite" for s in SIGNATURES} | {"vocab.txt"}
    den = {i["name"]: i for i in manifest["signatures"]["denoise"]["inputs"]}
    assert set(den) == {"latent", "t", "context", "context_mask", "subjects", "subject_mask"}
    assert den["latent"]["shape"] == [1, 4, 8, 8] and den["subjects"]["shape"] == [1, 5, 32]
    te = {i["name"]: i["dtype"] for i in manifest["signatures"]["text_encoder"]["inputs"]}
    assert te == {"tokens": "int32", "segments": "float32"}
    for name, sig in manifest["signatures"].items():
        graph = read_graph(bundle / sig["file"])
        assert list(graph.signatures) == [name]
        assert manifest["quantization"]["per_signature"][name] == graph.signatures[name].weight_storage()
        gate, recipe = manifest["gate"][name], DEFAULT_GATE[Quant(quant)]
        assert (gate["threshold_psnr_db"], gate["threshold_cosine"]) == (recipe.min_psnr_db, recipe.min_cosine)
        assert gate["psnr_db"] >= recipe.min_psnr_db and gate["cosine"] >= recipe.min_cosine, (name, gate)
        assert not any(t.dtype == "INT64" for t in graph.signatures[name].tensors), "no int64 on device"


def test_int4_recipe_from_the_file(bundle_factory) -> None:  # noqa: ANN001
    storage = load_manifest(bundle_factory("int4"))["quantization"]["per_signature"]
    assert storage["denoise"]["FULLY_CONNECTED"] == {"int4_blockwise_32": 25}
    assert storage["denoise"]["CONV_2D"] == {"int8_channelwise": 2}
    assert "EMBEDDING_LOOKUP" not in storage["text_encoder"]  # exported as a one-hot FULLY_CONNECTED
    assert storage["text_encoder"]["FULLY_CONNECTED"] == {"int4_blockwise_32": TEXT_FC}
    decoder = build_model(get_preset("tiny")).vae.decoder
    norms = sum(isinstance(m, torch.nn.GroupNorm) for m in decoder.modules())
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in decoder.modules())
    # each GroupNorm's two group-average 1x1 convs are fp16 (recipes.GROUP_NORM_FP16); real convs are INT8, the
    # full-size upsample's 3x3 conv as two 2x2 ones (converters.rewrites.subpixel_upsampling_hires)
    assert storage["vae_decode"]["CONV_2D"] == {"int8_channelwise": convs + 1, "float16": 2 * norms}
    int8 = load_manifest(bundle_factory("int8"))["quantization"]["per_signature"]
    assert int8["denoise"]["FULLY_CONNECTED"] == {"int8_channelwise": 25}


def test_sizes_shrink_with_precision(bundle_factory) -> None:  # noqa: ANN001
    def size(q: str, sig: str = "denoise") -> int:
        return load_manifest(bundle_factory(q))["files"][f"{sig}.tflite"]["bytes"]

    def weights(q: str, sig: str = "denoise") -> int:
        return sum(len(b.data) for b in read_graph(bundle_factory(q) / f"{sig}.tflite").model.buffers
                   if b.data is not None)

    assert size("int4") < size("int8") < size("fp16") < size("fp32")
    # FC weights INT4 + an fp16 scale per 32 (0.141x), convs INT8, biases and norms fp32: measured 0.178x on tiny
    assert weights("int4") <= 0.18 * weights("fp32")
    # the file adds the graph itself, a fixed cost that weighs more in tiny's small file: measured 0.223x
    assert size("int4") <= 0.23 * size("fp32")


def test_litert_generate_matches_pytorch(bundle_factory, tiny_checkpoint: Path) -> None:  # noqa: ANN001
    torch_img = np.asarray(Pipeline.from_pretrained(tiny_checkpoint).generate("a red circle", steps=4, seed=3))
    lite = LiteRTPipeline.load(bundle_factory("fp32"))
    result = lite.run("a red circle", steps=4, seed=3)
    assert set(lite.load_ms) == SIGNATURES and len(result.denoise_ms) == 4
    assert np.abs(np.asarray(result.image).astype(int) - torch_img).max() <= 1
    int4 = np.asarray(LiteRTPipeline.load(bundle_factory("int4")).run("a red circle", steps=4, seed=3).image)
    assert np.abs(int4.astype(int) - torch_img).mean() < 3  # measured 2.14


def test_rerun_skips_current_signatures(bundle_factory, tiny_checkpoint: Path, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "b"
    shutil.copytree(bundle_factory("fp32"), out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    convert(out, model_dir=tiny_checkpoint, quant="fp32")
    manifest = load_manifest(out)
    assert manifest["files"] == load_manifest(bundle_factory("fp32"))["files"]
    assert set(before) == {p.name for p in out.iterdir()}
    assert not (tmp_path / ".b.partial").exists()


def test_interrupted_run_resumes(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import converters.engine as conv

    calls: list[str] = []
    real = conv.export_signature

    def flaky(module, name, inputs, path):  # noqa: ANN001
        calls.append(name)
        if name == "vae_decode" and calls.count(name) == 1:
            raise KeyboardInterrupt
        real(module, name, inputs, path)

    monkeypatch.setattr(conv, "export_signature", flaky)
    out = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        convert(out, model_dir=tiny_checkpoint, quant="int8")
    assert not out.exists() and (tmp_path / ".b.partial" / "denoise.tflite").is_file()
    convert(out, model_dir=tiny_checkpoint, quant="int8")
    assert calls == ["text_encoder", "denoise", "vae_decode", "vae_decode"]
    verify_bundle(out)


def test_gate_fails_when_weights_change_after_export(bundle_factory, tiny_checkpoint: Path, tmp_path: Path) -> None:  # noqa: ANN001
    verify(bundle_factory("fp32"), tiny_checkpoint)  # passes against its own weights
    pipe = Pipeline.from_pretrained(tiny_checkpoint)
    with torch.no_grad():
        pipe.model.denoiser.blocks[0].mlp.fc1.weight.mul_(1.5)
    perturbed = pipe.save_pretrained(tmp_path / "perturbed")
    with pytest.raises(ConversionError, match="accuracy gate failed for denoise"):
        verify(bundle_factory("fp32"), perturbed)


def test_gate_failure_leaves_nothing(tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    with pytest.raises(ConversionError, match="accuracy gate failed"):
        convert(out, model_dir=tiny_checkpoint, quant="int4", min_psnr=99.0)
    assert list(tmp_path.iterdir()) == []


def test_verify_catches_flipped_and_truncated_files(bundle_factory, tmp_path: Path) -> None:  # noqa: ANN001
    bundle = tmp_path / "b"
    shutil.copytree(bundle_factory("int8"), bundle)
    target = bundle / "denoise.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="denoise.tflite sha256 mismatch"):
        verify_bundle(bundle)
    assert_one_line_error(run_cli("verify", bundle), "denoise.tflite", "sha256 mismatch")
    target.write_bytes(bytes(data[:1000]))
    assert_one_line_error(run_cli("verify", bundle), "denoise.tflite", "truncated")


def test_cli_convert_bad_input(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "out"
    assert_one_line_error(run_cli("convert", "--preset", "nope", "--out", out), "unknown preset")
    assert_one_line_error(run_cli("convert", "--preset", "tiny", "--quant", "int3", "--out", out),
                          "unknown quantization", "int4")
    assert_one_line_error(run_cli("convert", "--preset", "tiny", "--quant", "int4", "--block-size", "48",
                                  "--out", out), "block size", "32")
    assert_one_line_error(run_cli("convert", "--model", tmp_path / "missing", "--out", out), "does not exist")
    assert not out.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    assert_one_line_error(run_cli("convert", "--preset", "tiny", "--out", mine), "not a bundle", "--force")
    assert (mine / "notes.txt").read_text() == "precious"


def test_disk_full_mid_write(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import converters.engine as conv

    def full(path, data):  # noqa: ANN001
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    old = tmp_path / "b"
    old.mkdir()
    monkeypatch.setattr(conv, "atomic_write_bytes", full)
    with pytest.raises(ConversionError, match="disk full"):
        convert(old, model_dir=tiny_checkpoint, quant="fp32")
    assert list(tmp_path.iterdir()) == [old] and list(old.iterdir()) == []


def test_generate_from_bundle_cli(bundle_factory, tmp_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "lite.png"
    result = run_cli("generate", "--bundle", bundle_factory("int4"), "--prompt", "a blue star", "--out", out)
    assert result.code == 0 and Image.open(out).size == (64, 64)
    assert_one_line_error(run_cli("generate", "--bundle", tmp_path, "--prompt", "x", "--out", tmp_path / "x.png"),
                          "not a bundle")
    bad = json.loads((bundle_factory("int4") / "manifest.json").read_text())
    assert bad["model"]["weights_sha256"]


def test_isolated_export_gives_the_same_bundle(bundle_factory, tiny_checkpoint: Path, tmp_path: Path,  # noqa: ANN001
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Big components export in a spawned child process; the bundle is identical to the in-process one."""
    import converters.convert as conv

    monkeypatch.setattr(conv, "ISOLATE_PARAMS", 0)
    out = convert(tmp_path / "iso", model_dir=tiny_checkpoint, quant="fp32")
    assert load_manifest(out)["files"] == load_manifest(bundle_factory("fp32"))["files"]

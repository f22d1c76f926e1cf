"""The preview decoder (issue 20): model shapes and FLOPs, the `preview` training stage, the `preview_decode`
signature in bundles (gate, manifest, LiteRT vs PyTorch, GPU pre-flight), the runtime and `generate --preview`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli
from torch.utils.flop_counter import FlopCounterMode

from banana_sdk.bundle.manifest import Manifest, ManifestError
from banana_sdk.bundle.reader import load_manifest
from banana_sdk.checkpoint import load_checkpoint
from banana_sdk.info import model_info
from banana_sdk.models.preview import (
    PREVIEW_DECODE,
    PreviewDecoderConfig,
    PreviewError,
    build_preview,
    copy_preview,
    load_preview,
    read_preview_config,
    save_preview,
    tiny_preview_config,
    vae_identity,
)
from banana_sdk.presets import get_preset
from banana_sdk.training.common import LoopConfig, TrainingError
from banana_sdk.training.stages import train_stage

TINY = {"channels": (16, 8, 8, 8), "blocks": (1, 0, 0, 0)}  # = tiny_preview_config


def _flops(module: torch.nn.Module, *args: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*args)
    return int(counter.get_total_flops())


def test_shapes_config_and_weights_roundtrip(tmp_path: Path) -> None:
    demo = build_preview(PreviewDecoderConfig())
    assert demo(torch.zeros(2, 8, 16, 16)).shape == (2, 3, 128, 128)
    tiny = build_preview(tiny_preview_config(4))
    assert tiny(torch.zeros(1, 4, 8, 8)).shape == (1, 3, 64, 64)
    assert PreviewDecoderConfig(channels=(8, 8), blocks=(0, 1)).upsample == 2
    for bad, field in ((dict(blocks=(1, 1)), "blocks"), (dict(channels=()), "channels"),
                       (dict(latent_channels=0), "latent_channels")):
        with pytest.raises(PreviewError, match=field):
            PreviewDecoderConfig(**bad).validate()
    save_preview(tiny, tmp_path / "p", "0" * 64, {"note": 1}, dtype=torch.float16)
    again = load_preview(tmp_path / "p")
    cfg, vae_sha, extra = read_preview_config(tmp_path / "p")
    assert cfg == tiny.cfg and vae_sha == "0" * 64 and extra == {"note": 1}
    for a, b in zip(tiny.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a.half().float(), b)
    with pytest.raises(PreviewError, match="holds no preview decoder"):
        load_preview(tmp_path / "missing")


def test_demo_preview_is_over_5x_cheaper_than_the_vae_decoder() -> None:
    """FLOPs counted as `banana info` counts them (FlopCounterMode on the meta device), demo at 128 px."""
    full = model_info(get_preset("demo")).decode_flops
    with torch.device("meta"):
        preview = build_preview(PreviewDecoderConfig())
        flops = _flops(preview, torch.zeros(1, 8, 16, 16))
    assert full / flops >= 5.0, (full, flops)


def test_shipped_preview_is_the_demo_vaes() -> None:
    """The committed preview decoder was distilled from the committed demo VAE (retrain it when that changes)."""
    from banana_sdk.checkpoint import load_component
    from banana_sdk.models.preview import DEFAULT_WEIGHTS, check_preview_for

    demo = Path(__file__).resolve().parent.parent / "banana_sdk" / "weights" / "demo"
    check_preview_for(DEFAULT_WEIGHTS, load_component(demo, "vae"), 8, 8)
    assert load_preview()(torch.zeros(1, 8, 16, 16)).shape == (1, 3, 128, 128)


@pytest.fixture(scope="module")
def preview_run(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """3 steps of the `preview` stage on the tiny checkpoint (its VAE decoder distilled)."""
    out = tmp_path_factory.mktemp("preview") / "run"
    loop = LoopConfig(steps=3, batch_size=4, lr=1e-3, warmup=1, save_every=100, log_every=1)
    train_stage("preview", loop, out, device="cpu", model=tiny_checkpoint, scenes=6, samples=6,
                sample_steps=(1, 2), cache=out.parent / "cache", **TINY)
    return out


def test_training_stage_runs_and_exports_a_preview(preview_run: Path, tiny_checkpoint: Path) -> None:
    cfg, vae_sha, extra = read_preview_config(preview_run)
    model, _ = load_checkpoint(tiny_checkpoint)
    assert cfg == tiny_preview_config(4) and vae_sha == vae_identity(model.vae)
    assert extra["trained"] is True and extra["stage"] == "preview" and extra["step"] == 3
    log = [json.loads(line) for line in (preview_run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(np.isfinite(r["loss"]) and r["psnr_db"] > 0 for r in log)
    latent = torch.randn(1, 4, 8, 8)
    assert load_preview(preview_run)(latent).shape == (1, 3, 64, 64)
    shipped = copy_preview(preview_run, preview_run.parent / "fp16")  # how the shipped weights are made
    assert read_preview_config(shipped)[1:] == (vae_sha, extra)
    assert (shipped / "preview.safetensors").stat().st_size < (preview_run / "preview.safetensors").stat().st_size


def test_bad_stage_arguments(tmp_path: Path, tiny_checkpoint: Path) -> None:
    loop = LoopConfig(steps=1, batch_size=2, lr=1e-3)
    with pytest.raises(TrainingError, match="--channels needs 4 levels"):
        train_stage("preview", loop, tmp_path / "a", model=tiny_checkpoint, channels=(8, 8), blocks=(0, 0))
    with pytest.raises(TrainingError, match="--sample-steps"):
        train_stage("preview", loop, tmp_path / "b", model=tiny_checkpoint, sample_steps=(9,))
    assert_one_line_error(run_cli("train", "preview", "--model", tiny_checkpoint, "--out", tmp_path / "c",
                                  "--channels", "8,x", in_process=True), "--channels")


@pytest.fixture(scope="module")
def preview_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, preview_run: Path) -> Path:
    """The tiny checkpoint converted with the int4 recipe and its preview decoder."""
    from converters.convert import convert

    return convert(tmp_path_factory.mktemp("bundles") / "tiny-int4-preview", model_dir=tiny_checkpoint,
                   quant="int4", preview=preview_run)


def test_conversion_adds_the_signature_and_the_manifest_validates(preview_bundle: Path, preview_run: Path) -> None:
    manifest = load_manifest(preview_bundle)
    sig, vae = manifest["signatures"][PREVIEW_DECODE], manifest["signatures"]["vae_decode"]
    assert sig["file"] == "preview_decode.tflite" and "preview_decode.tflite" in manifest["files"]
    assert sig["inputs"] == vae["inputs"] and sig["outputs"] == vae["outputs"]
    assert manifest["quantization"]["per_signature"][PREVIEW_DECODE] == {"CONV_2D": {"int8_channelwise": 7}}
    assert manifest["gate"][PREVIEW_DECODE]["psnr_db"] >= 20.0  # the int4 recipe's gate
    cfg, vae_sha, _ = read_preview_config(preview_run)
    assert manifest["preview"]["signature"] == PREVIEW_DECODE and manifest["preview"]["vae_sha256"] == vae_sha
    assert manifest["preview"]["config"] == cfg.to_dict()
    typed = Manifest.from_dict(manifest)
    assert Manifest.from_dict(typed.to_dict()) == typed
    bad = json.loads(json.dumps(manifest))
    bad["signatures"][PREVIEW_DECODE]["outputs"][0]["shape"] = [1, 32, 32, 3]
    with pytest.raises(ManifestError, match="signatures.preview_decode output image"):
        Manifest.from_dict(bad)
    del bad["signatures"][PREVIEW_DECODE]["outputs"][0]["name"]
    bad["signatures"][PREVIEW_DECODE]["outputs"] = []
    with pytest.raises(ManifestError, match="signatures.preview_decode.outputs lacks"):
        Manifest.from_dict(bad)


def test_litert_preview_matches_torch_within_the_gate(preview_bundle: Path, preview_run: Path) -> None:
    from banana_sdk.runtime.litert import LiteRTPipeline
    from converters.gate import gate_signature
    from converters.preview import PreviewDecodeSignature
    from converters.recipes import DEFAULT_GATE, Quant
    from converters.signatures import torch_outputs

    pipe = LiteRTPipeline.load(preview_bundle)
    assert pipe.has_preview
    latent = np.random.default_rng(7).standard_normal((1, 4, 8, 8)).astype(np.float32)
    got = pipe.decode_preview(latent)
    want = torch_outputs(PreviewDecodeSignature(load_preview(preview_run)), {"latent": latent})
    assert got.shape == (1, 64, 64, 3)
    result = gate_signature(PREVIEW_DECODE, want, {"image": got}, DEFAULT_GATE[Quant.INT4])
    assert result.passed, result
    pipe.set_preview(True)
    assert np.array_equal(pipe.decode(latent), got)  # `decode` follows the switch (what generate --preview uses)
    pipe.set_preview(False)
    assert not np.array_equal(pipe.decode(latent), got)


def test_preflight_gpu_takes_the_whole_preview_decoder(preview_bundle: Path) -> None:
    from converters.preflight.run import PreflightRequest, preflight_bundle

    report = preflight_bundle(preview_bundle, PreflightRequest.parse("gpu"))
    sig = next(s for s in report.signatures if s.signature == PREVIEW_DECODE)
    assert sig.full and sig.partitions == 1 and sig.delegated == sig.total and sig.fallbacks == []
    plan = load_manifest(preview_bundle)["delegate_plan"][PREVIEW_DECODE]
    assert plan["gpu"]["delegated"] == plan["gpu"]["total"] and plan["order"][0] == "gpu"


def test_foreign_preview_is_refused_before_any_work(tmp_path: Path, preview_run: Path) -> None:
    from converters.convert import convert

    with pytest.raises(PreviewError, match="distilled from another VAE decoder"):
        convert(tmp_path / "b", preset="tiny", seed=1, quant="fp32", preview=preview_run)
    assert not (tmp_path / "b").exists()
    result = run_cli("convert", "--preset", "tiny", "--out", tmp_path / "c", "--preview", tmp_path / "none",
                     in_process=True)
    assert_one_line_error(result, "holds no preview decoder")


def test_generate_with_the_preview_decoder(tmp_path: Path, preview_bundle: Path, tiny_bundle: Path) -> None:
    ok = run_cli("generate", "--bundle", preview_bundle, "--prompt", "a red circle", "--steps", "1", "--preview",
                 "--out", tmp_path / "p.png", in_process=True)
    assert ok.code == 0 and "preview decoder" in ok.out and (tmp_path / "p.png").is_file()
    missing = run_cli("generate", "--bundle", tiny_bundle, "--prompt", "a red circle", "--preview",
                      "--out", tmp_path / "q.png", in_process=True)
    assert_one_line_error(missing, "has no preview decoder", "--preview")
    assert not (tmp_path / "q.png").exists()
    no_bundle = run_cli("generate", "--preset", "tiny", "--prompt", "a red circle", "--preview",
                        "--out", tmp_path / "r.png", in_process=True)
    assert_one_line_error(no_bundle, "--preview needs --bundle")

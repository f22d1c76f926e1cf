"""Export-time rewrites (converters/rewrites.py): same function, the model untouched, the gate against the original."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from banana_sdk.bundle.flatbuffer import read_graph
from banana_sdk.bundle.reader import load_manifest
from banana_sdk.models.model import build_model
from banana_sdk.models.vae import GroupNorm, Upsample
from banana_sdk.presets import get_preset
from converters.convert import convert
from converters.errors import ConversionError
from converters.recipes import Quant
from converters.rewrites import (
    HIRES_UPSAMPLES,
    SubPixelUpsample,
    export_rewrite,
    subpixel_upsampling,
    subpixel_upsampling_hires,
)
from converters.signatures import VAEDecodeSignature


@pytest.mark.parametrize(("channels", "height", "width"), [(8, 4, 4), (16, 5, 7), (3, 1, 2)])
def test_subpixel_upsample_is_nearest_then_conv(channels: int, height: int, width: int) -> None:
    torch.manual_seed(channels)
    up = Upsample(channels).eval()
    x = torch.randn(2, channels, height, width)
    with torch.no_grad():
        expected, got = up(x), SubPixelUpsample(up)(x)
    assert got.shape == expected.shape == (2, channels, 2 * height, 2 * width)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_rewrite_copies_and_leaves_the_model_alone() -> None:
    vae = build_model(get_preset("tiny"), seed=3).vae.eval()
    module = VAEDecodeSignature(vae).eval()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    rewritten = subpixel_upsampling(module)
    assert not any(isinstance(m, SubPixelUpsample) for m in module.modules())
    assert sum(isinstance(m, Upsample) for m in module.modules()) == sum(
        isinstance(m, SubPixelUpsample) for m in rewritten.modules()) == 3
    assert not any(isinstance(m, Upsample) for m in rewritten.modules())
    assert module.state_dict().keys() == before.keys()
    assert all(torch.equal(module.state_dict()[k], v) for k, v in before.items())
    latent = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(rewritten(latent)["image"], module(latent)["image"], rtol=1e-4, atol=1e-5)


def test_fp32_rewrites_every_upsample_and_quantized_decoders_the_full_size_one(bundle_factory) -> None:  # noqa: ANN001
    assert {q: getattr(export_rewrite("vae_decode", q), "__name__", None) for q in Quant} == {
        Quant.FP32: "subpixel_upsampling", Quant.FP16: None, Quant.INT8: "subpixel_upsampling_hires",
        Quant.INT4: "subpixel_upsampling_hires"}
    assert export_rewrite("denoise", Quant.FP32) is None and export_rewrite("text_encoder", Quant.FP32) is None
    module = VAEDecodeSignature(build_model(get_preset("tiny"), seed=3).vae.eval()).eval()
    kinds = [type(m).__name__ for m in subpixel_upsampling_hires(module).modules()
             if isinstance(m, (Upsample, SubPixelUpsample))]
    assert kinds == ["Upsample", "Upsample", "SubPixelUpsample"]  # the one nearest the output
    for last, rewritten in ((2, 2), (5, 3), (0, 0)):
        modules = subpixel_upsampling(module, last=last).modules()
        assert sum(isinstance(m, SubPixelUpsample) for m in modules) == rewritten
    latent = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(subpixel_upsampling_hires(module)(latent)["image"], module(latent)["image"],
                                   rtol=1e-4, atol=1e-5)
    for quant, resizes in (("fp32", 0), ("int8", 3 - HIRES_UPSAMPLES)):
        bundle = bundle_factory(quant)
        ops = read_graph(bundle / "vae_decode.tflite").signatures["vae_decode"].op_counts()
        assert ops.get("RESIZE_NEAREST_NEIGHBOR", 0) == resizes, (quant, ops)
        assert ops.get("TRANSPOSE", 0) == 1, (quant, ops)  # only the NCHW latent input: the interleave adds none
        assert ops.get("SLICE", 0) == 3 - resizes, (quant, ops)  # one border crop per subpixel upsample
    # GroupNorm statistics: 2 means x 2 single-axis MEANs per norm (W then H, split across threads by XNNPACK)
    sig = read_graph(bundle_factory("fp32") / "vae_decode.tflite").signatures["vae_decode"]
    means = [op for op in sig.ops if op.name == "MEAN"]
    norms = sum(isinstance(m, GroupNorm) for m in build_model(get_preset("tiny"), "meta").vae.decoder.modules())
    assert len(means) == 4 * norms == 44
    assert all(sig.tensors[op.inputs[1]].shape in ((1,), ()) for op in means)
    assert load_manifest(bundle_factory("fp32"))["gate"]["vae_decode"]["psnr_db"] >= 100  # vs the original decoder


def test_gate_compares_the_rewrite_with_the_original(tiny_checkpoint: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong rewrite is caught: the gate's reference is the unrewritten decoder, not the exported module."""
    import converters.rewrites as rewrites

    monkeypatch.setattr(rewrites, "_TAPS", rewrites._TAPS.flip(-1))  # mirrored taps: a different function
    with pytest.raises(ConversionError, match="accuracy gate failed for vae_decode"):
        convert(tmp_path / "bad", model_dir=tiny_checkpoint, quant="fp32")
    assert not (tmp_path / "bad").exists()

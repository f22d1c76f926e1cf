"""The memory budget of diffusers conversions: published configs counted right, refusal before any work, and
big signatures exported in a child process with the diffusers forward as the gate's reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli

from converters.byom import budget
from converters.byom.budget import GIB, check_budget, estimate
from converters.byom.convert_diffusers import plan_diffusers, signature_estimates
from converters.byom.diffusers import PipelineFolder, read_pipeline
from converters.byom.families import detect_family
from converters.byom.fixtures import build_pipeline
from converters.byom.published import load, names
from converters.engine import convert_one
from converters.errors import ConversionError
from converters.recipes import Quant

# parameters of published components as their model cards / papers give them (millions), and our count's tolerance
PUBLISHED_MILLIONS = {
    ("sd-1.5", "text_encoder"): 123.1, ("sd-1.5", "unet"): 859.5, ("sd-1.5", "vae"): 83.7,
    ("sd-turbo", "text_encoder"): 340.4, ("sd-turbo", "unet"): 865.9,
    ("sdxl-turbo", "text_encoder_2"): 694.7, ("sdxl-turbo", "unet"): 2567.5,
    ("sd3.5-medium", "text_encoder_3"): 4762.3, ("pixart-sigma", "transformer"): 610.9,
    ("sana-0.6b", "text_encoder"): 2614.3, ("sana-0.6b", "transformer"): 591.7,
    ("flux-schnell", "transformer"): 11891.2,
}


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_pipeline(tmp_path_factory.mktemp("pipes") / "tiny-sd", "tiny-sd")


def test_published_configs_count_the_published_parameters() -> None:
    assert set(names()) >= {"sd-1.5", "sd-turbo", "sdxl-turbo", "sd3.5-medium", "pixart-sigma", "sana-0.6b",
                            "flux-schnell"}
    for (name, key), millions in PUBLISHED_MILLIONS.items():
        assert load(name).parameters(key) / 1e6 == pytest.approx(millions, rel=2e-3), (name, key)
    with pytest.raises(ConversionError, match="choose from: .*sd-1.5"):
        load("sd-9")


def test_what_does_not_fit_this_machine_is_refused_with_its_estimate_and_a_way_out() -> None:
    limit = 22 * GIB  # this machine: 24 GiB less headroom
    sd3 = load("sd3.5-medium")
    text = estimate("text_encoder", tuple(sd3.part(k) for k in ("text_encoder", "text_encoder_2", "text_encoder_3")),
                    Quant.INT4)
    assert text.isolated and text.parameters > 5.5e9
    with pytest.raises(ConversionError) as info:
        check_budget([text], limit, {"text_encoder_3": "drop text_encoder_3"})
    message = str(info.value)
    assert "\n" not in message and "nothing was converted" in message
    assert "T5EncoderModel 4.76B" in message and "drop text_encoder_3" in message and "GiB of memory" in message
    assert f"{text.export_bytes / GIB:.1f} GiB" in message  # the estimate per phase
    without_t5 = estimate("text_encoder", tuple(sd3.part(k) for k in ("text_encoder", "text_encoder_2")), Quant.INT4)
    check_budget([without_t5], limit, {})  # the hint works
    denoise = estimate("denoise", (sd3.part("transformer"),), Quant.INT4)
    check_budget([denoise], limit, {})  # a 2.2B MMDiT fits
    with pytest.raises(ConversionError, match="FluxTransformer2DModel 11.89B"):
        check_budget([estimate("denoise", (load("flux-schnell").part("transformer"),), Quant.INT4)], limit, {})
    # the phases: an isolated signature peaks at its larger phase, a small one holds both
    small = estimate("vae_decode", (sd3.part("vae"),), Quant.INT4)
    assert not small.isolated and small.peak_bytes > max(small.export_bytes, small.quantize_bytes)
    assert denoise.peak_bytes == max(denoise.export_bytes, denoise.quantize_bytes)


def test_the_cli_refuses_before_reading_a_weight(sd_folder: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def no_loading(self: PipelineFolder, role: str) -> None:
        raise AssertionError(f"{role} was loaded")

    monkeypatch.setattr(PipelineFolder, "load", no_loading)
    out = tmp_path / "bundle"
    result = run_cli("convert", "--diffusers", sd_folder, "--quant", "int4", "--out", out, "--max-memory", "0.5",
                     in_process=True)
    line = assert_one_line_error(result, "does not fit the memory limit of 0.5 GiB", "nothing was converted")
    assert "vae_decode (vae AutoencoderKL" in line  # the largest estimate: a 64 px decoder's activations
    assert not out.exists() and not list(tmp_path.glob(".*"))
    for bad, fragment in (("-1", "positive"), ("nan", "--max-memory")):
        result = run_cli("convert", "--diffusers", sd_folder, "--out", out, "--max-memory", bad, in_process=True)
        assert_one_line_error(result, fragment)
    result = run_cli("convert", "--preset", "tiny", "--out", out, "--max-memory", "8", in_process=True)
    assert_one_line_error(result, "--max-memory only goes with --diffusers")


def test_an_isolated_signature_is_gated_against_the_diffusers_forward(sd_folder: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = read_pipeline(sd_folder)
    estimates = signature_estimates(pipe, detect_family(pipe), Quant.FP32)
    assert not any(e.isolated for e in estimates.values())  # tiny: all in-process
    monkeypatch.setattr(budget, "ISOLATE_PARAMS", 0)  # as a > 200M component would be
    plan = plan_diffusers(sd_folder, quant="fp32")
    job = next(j for j in plan.jobs if j.name == "vae_decode")
    assert job.isolated is not None and job.isolated_reference
    record = convert_one(job, plan.quant, plan.block_size, plan.threshold, tmp_path)
    assert (tmp_path / "vae_decode.tflite").is_file()
    assert record["gate"]["psnr_db"] > 100  # fp32 file vs the VAE's own decode, computed in the child


def test_big_channelwise_conv_weights_quantize_like_small_ones() -> None:
    """ai-edge-quantizer chunks tensors over 32 MiB through a 2-D view and could not broadcast a 4-D weight's
    (O, 1, 1, 1) scales (every real-size UNet conv was refused); the shim must give the unchunked numbers."""
    import numpy as np
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer.algorithms.uniform_quantize import uniform_quantize_tensor as uqt

    from converters.recipes import _patch_quantizer

    _patch_quantizer()
    _patch_quantizer()  # idempotent
    original = uqt.uniform_quantize.wrapped
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((1280, 3, 3, 1280)).astype(np.float32)  # 59 MB: the chunked path
    scale = (np.abs(weight).max(axis=(1, 2, 3), keepdims=True) / 127).astype(np.float32)
    params = qtyping.UniformQuantParams(num_bits=8, quantized_dimension=0, scale=scale,
                                        zero_point=np.zeros_like(scale, dtype=np.int32), symmetric=True)
    with pytest.raises(ValueError, match="axis remapping"):
        original(weight, params)  # the bug, still there upstream
    ours = uqt.uniform_quantize(weight, params)
    step = 160  # slices under 32 MiB take the unchunked path
    expected = np.concatenate([original(weight[i:i + step], qtyping.UniformQuantParams(
        num_bits=8, quantized_dimension=0, scale=scale[i:i + step], zero_point=np.zeros_like(scale[i:i + step],
                                                                                              dtype=np.int32),
        symmetric=True)) for i in range(0, 1280, step)])
    assert ours.shape == weight.shape and ours.dtype == expected.dtype
    np.testing.assert_array_equal(ours, expected)


def test_convolution_weights_stored_nhwc_give_the_same_numbers() -> None:
    """Big exports store k x k conv weights as (out, kh, kw, in) so the lowering's permutation cancels instead of
    copying every weight once more (the UNet export's memory); 1 x 1 convs keep their modules (and names). The
    same weights and arithmetic; PyTorch may pick another summation order for the strided view (float rounding)."""
    import torch
    from torch import nn

    from converters.export import OHWIConv2d, channels_last_conv_weights

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.Conv2d(16, 16, 3, stride=2, groups=4, padding=1),
                          nn.Conv2d(16, 8, 1), nn.Sequential(nn.Conv2d(8, 8, (3, 1), padding=(1, 0), dilation=1)))
    x = torch.randn(1, 8, 12, 12)
    before = model(x)
    assert channels_last_conv_weights(model) == 3
    assert [type(m) for m in model] == [OHWIConv2d, OHWIConv2d, nn.Conv2d, nn.Sequential]
    assert isinstance(model[3][0], OHWIConv2d) and model[0].weight.shape == (16, 3, 3, 8)
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-6)


def test_quantizing_from_the_file_streams_the_weights_and_writes_the_same_model(tmp_path: Path) -> None:
    """`quantize_file` reads the fp32 weights through a map and drops each one once quantized (the quantize
    phase no longer holds the fp32 model: SDXL's UNet 17 -> see DESIGN §8.4); the file it writes is the model
    `quantize_model` builds in memory, byte for byte, for every recipe."""
    import numpy as np
    import torch
    from torch import nn

    from banana_sdk.bundle.flatbuffer import read_graph
    from converters.export import export_signature
    from converters.int4_fallback import plan_fallbacks
    from converters.recipes import quantize_file, quantize_model

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(256, 256, 3, padding=1)  # INT8: 590 KB, the quantizer's external-buffer serializer
            self.fc = nn.Linear(256, 1000)  # 1000 x 256: block 32 divides it
            self.odd = nn.Linear(1000, 24)  # width 1000: no block divides it -> an INT8 fallback layer

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.odd(self.fc(self.conv(x).mean(dim=(2, 3))))

    torch.manual_seed(0)
    float_path = tmp_path / "model.export.tflite"
    export_signature(Block().eval(), "run", {"x": np.random.default_rng(0).standard_normal((1, 256, 8, 8),
                                                                                            dtype=np.float32)},
                     float_path)
    weights = (256 * 256 * 9 + 256 * 1000 + 1000 * 24) * 4
    fallbacks = plan_fallbacks(read_graph(float_path), 32)
    assert [f.width for f in fallbacks] == [1000]
    for quant, extra in ((Quant.INT4, [f.rule() for f in fallbacks]), (Quant.INT8, []), (Quant.FP16, []),
                         (Quant.FP32, [])):
        out = tmp_path / f"model.{quant.value}.tflite"
        released = quantize_file(float_path, out, quant, 32, extra)
        assert out.read_bytes() == quantize_model(float_path.read_bytes(), quant, 32, extra), quant
        if quant in (Quant.INT4, Quant.INT8):  # every weight quantized was dropped
            assert weights - 3 * 2 * 4096 <= released <= weights, (quant, released)  # ends: partial pages

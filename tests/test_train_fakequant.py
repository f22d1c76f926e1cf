"""DQAT fake-quant == ai-edge-quantizer's math == the weights read back from a converted `.tflite`, bit for bit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from ai_edge_litert import schema_py_generated as schema
from ai_edge_quantizer import qtyping
from ai_edge_quantizer.algorithms.uniform_quantize import uniform_quantize_tensor as uqt
from torch.func import functional_call

from banana_sdk.bundle.reader import load_manifest
from banana_sdk.checkpoint import load_checkpoint, save_checkpoint
from banana_sdk.config import DenoiserConfig, TextEncoderConfig
from banana_sdk.models.model import build_model
from banana_sdk.presets import get_preset
from banana_sdk.training.common import TrainingError
from banana_sdk.training.fakequant import (
    Layout,
    QuantSpec,
    WeightScheme,
    check_block_size,
    fake_quant,
    graph_fake_quant,
    graph_weight,
    int4_blockwise,
    int8_channelwise,
    project_,
    quant_plan,
    quantized_parameters,
)
from converters.convert import convert
from converters.rewrites import SubPixelUpsample, subpixel_upsampling_hires


def _weights(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Awkward weights: varied magnitudes per row, exact .5 ties, an all-zero block, a lone extreme value."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal(shape) * np.exp(rng.uniform(-6, 1, (shape[0],) + (1,) * (len(shape) - 1))))
    w = w.astype(np.float32)
    flat = w.reshape(shape[0], -1)
    flat[0, :32] = 0.0
    flat[1, :32] = np.arange(32, dtype=np.float32) - 16.0  # multiples of scale/2 -> rounding ties
    flat[2, 5] = 1e4
    return flat.reshape(shape)


def test_int4_blockwise_is_ai_edge_quantizer_bit_for_bit():
    for seed, shape in enumerate([(64, 128), (96, 256), (8, 512)]):
        w = _weights(shape, seed)
        blocks = w.reshape(shape[0], -1, 32)
        zp, scale = uqt.tensor_zp_scale_from_min_max(blocks.min(axis=2), blocks.max(axis=2), 4, True,
                                                      qtyping.QuantGranularity.BLOCKWISE_32)
        params = qtyping.UniformQuantParams(num_bits=4, quantized_dimension=1, scale=scale, zero_point=zp,
                                            symmetric=True, block_size=32)
        q_ref = uqt.uniform_quantize(w, params, is_blockwise_quant=True)
        deq_ref = uqt.uniform_dequantize(q_ref, params).astype(np.float32)
        q, s = int4_blockwise(torch.from_numpy(w), 32)
        np.testing.assert_array_equal(q.numpy(), q_ref)
        np.testing.assert_array_equal(s.numpy(), scale)
        np.testing.assert_array_equal(fake_quant(torch.from_numpy(w), WeightScheme.INT4_BLOCKWISE).numpy(), deq_ref)
        assert q.min() >= -8 and q.max() <= 7


def test_int4_channelwise_is_ai_edge_quantizer_bit_for_bit():
    """Block size 0 (`--block-size 0`): one float32 scale per output row, no bf16 rounding of the scale."""
    for seed, shape in enumerate([(64, 128), (96, 256), (8, 512)]):
        w = _weights(shape, seed + 20)
        zp, scale = uqt.tensor_zp_scale_from_min_max(w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True), 4,
                                                      True, qtyping.QuantGranularity.CHANNELWISE)
        params = qtyping.UniformQuantParams(num_bits=4, quantized_dimension=0, scale=scale, zero_point=zp,
                                            symmetric=True)
        q_ref = uqt.uniform_quantize(w, params)
        deq_ref = uqt.uniform_dequantize(q_ref, params).astype(np.float32)
        q, s = int4_blockwise(torch.from_numpy(w), 0)
        np.testing.assert_array_equal(q.numpy(), q_ref)
        np.testing.assert_array_equal(s.numpy(), scale)
        np.testing.assert_array_equal(fake_quant(torch.from_numpy(w), WeightScheme.INT4_BLOCKWISE, 0).numpy(), deq_ref)
        assert q.abs().max() == 7  # symmetric: bound / 7, so -8 is never used
        assert (s.shape, s.dtype) == ((shape[0], 1), torch.float32)


def test_int8_channelwise_is_ai_edge_quantizer_bit_for_bit():
    for seed, shape in enumerate([(16, 8, 3, 3), (64, 32, 1, 1), (4, 64, 2, 2)]):
        w = _weights(shape, seed + 10)
        axes = tuple(range(1, w.ndim))
        zp, scale = uqt.tensor_zp_scale_from_min_max(w.min(axis=axes, keepdims=True), w.max(axis=axes, keepdims=True),
                                                      8, True, qtyping.QuantGranularity.CHANNELWISE)
        params = qtyping.UniformQuantParams(num_bits=8, quantized_dimension=0, scale=scale, zero_point=zp,
                                            symmetric=True)
        q_ref = uqt.uniform_quantize(w, params)
        deq_ref = uqt.uniform_dequantize(q_ref, params).astype(np.float32)
        q, s = int8_channelwise(torch.from_numpy(w))
        np.testing.assert_array_equal(q.numpy(), q_ref)
        np.testing.assert_array_equal(fake_quant(torch.from_numpy(w), WeightScheme.INT8_CHANNELWISE).numpy(), deq_ref)
        assert q.min() >= -127  # narrow range at 8 bits


def test_straight_through_gradients_and_untouched_weights():
    model = build_model(get_preset("tiny"))
    spec = QuantSpec(storage_dtype=torch.float16)
    before = {k: v.clone() for k, v in model.denoiser.state_dict().items()}
    params = quantized_parameters(model.denoiser, spec)
    item = next(i for i in quant_plan(model.denoiser) if i.param == "blocks.0.mlp.fc1.weight")
    weight = model.denoiser.get_parameter(item.param)
    expected = fake_quant(weight.detach().half().float(), WeightScheme.INT4_BLOCKWISE)
    assert torch.equal(params[item.param].detach(), expected)  # fp16 storage, then INT4
    assert not torch.equal(params[item.param].detach(), weight.detach())
    params[item.param].sum().backward()
    assert torch.equal(weight.grad, torch.ones_like(weight))  # straight through
    assert all(torch.equal(before[k], v) for k, v in model.denoiser.state_dict().items())
    # the quantized forward is a different but close function
    x = torch.randn(1, 4, 8, 8)
    args = (x, torch.tensor([0.5]), torch.randn(1, 32, 32), torch.ones(1, 32), torch.zeros(1, 5, 32), torch.zeros(1, 5))
    with torch.no_grad():
        ref, quant = model.denoiser(*args), functional_call(model.denoiser, params, args)
    assert 0 < (ref - quant).abs().max() < 0.05 * ref.abs().max()  # measured 0.009-0.021 (20 unseeded runs)


def test_block_size_must_divide_input_dims():
    model = build_model(get_preset("tiny"))
    check_block_size(model.denoiser, 32)
    with pytest.raises(TrainingError, match="not a multiple of --block-size 48"):
        check_block_size(model.denoiser, 48)


def _fold_test_model(tmp_path: Path, patch: int, extra: dict | None = None) -> Path:
    """A small model whose folding is observable: head_dim 32 (scale 32^-1/4, not a power of two), random
    LayerNorm weights, saved in fp16 like the demo weights."""
    base = get_preset("tiny")
    cfg = dataclasses.replace(
        base, name="fold-test", text=TextEncoderConfig(width=64, depth=1, num_heads=2, num_kv_heads=1),
        denoiser=DenoiserConfig(width=64, depth=1, num_heads=2, num_kv_heads=1, patch_size=patch, timestep_dim=32),
    )
    model = build_model(cfg, seed=3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.LayerNorm) and mod.weight is not None:
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=gen) + 0.5)
    return save_checkpoint(model, tmp_path / f"fold-p{patch}", dtype=torch.float16, extra=extra)


def _read_quantized(path: Path) -> list[np.ndarray]:
    """Every quantized constant of a .tflite, dequantized independently of the converter's own reader."""
    buf = path.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(buf, 0)
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    sub = model.subgraphs[model.signatureDefs[0].subgraphIndex]
    out = []
    for t in sub.tensors:
        quant, data = t.quantization, model.buffers[t.buffer].data
        if types[t.type] not in ("INT4", "INT8") or data is None or quant is None:
            continue
        raw, shape = np.asarray(data, dtype=np.uint8), tuple(t.shape)
        if types[t.type] == "INT4":  # two values per byte, low nibble first
            v = np.stack([raw & 0x0F, raw >> 4], axis=1).reshape(-1).astype(np.int8)
            q = np.where(v > 7, v - 16, v)[: int(np.prod(shape))].reshape(shape).astype(np.float32)
        else:
            q = raw.view(np.int8).reshape(shape).astype(np.float32)
        if quant.details is not None and getattr(quant.details, "blockSize", 0):
            st = sub.tensors[quant.details.scales]
            scales = np.asarray(model.buffers[st.buffer].data, np.uint8).view(
                np.float16 if types[st.type] == "FLOAT16" else np.float32).astype(np.float32)
            block = quant.details.blockSize
            out.append((q.reshape(shape[0], -1, block) * scales.reshape(shape[0], -1, 1)).reshape(shape))
        elif quant.scale is not None:
            assert not np.any(quant.zeroPoint), "symmetric quantization has zero points of 0"
            scale = np.asarray(quant.scale, np.float32)
            bshape = [1] * len(shape)
            bshape[quant.quantizedDimension] = scale.size
            out.append(q * scale.reshape(bshape))
    return out


def _assert_plan_matches(bundle: Path, ckpt: Path, block_size: int = 32) -> None:
    """Every weight `quant_plan` names is, bit for bit, a quantized tensor of the bundle, and (text encoder
    and denoiser) every quantized tensor of the bundle is such a weight."""
    model, _ = load_checkpoint(ckpt)  # the weights as the converter read them
    # vae_decode is exported with its full-size upsample as two derived 2x2 convs (converters.rewrites), and the
    # converter quantizes those kernels: the VAE is never DQAT-trained, so its plan is the rewritten module's
    decoder = subpixel_upsampling_hires(model.vae.decoder)
    components = {"text_encoder": model.text_encoder, "denoise": model.denoiser, "vae_decode": decoder}
    for signature, module in components.items():
        stored = _read_quantized(bundle / f"{signature}.tflite")
        params = dict(module.named_parameters())
        expected = []
        for item in quant_plan(module):
            gamma = params[item.gamma].detach() if item.gamma else None
            expected.append((f"{item.param} ({item.scheme.value}, {item.layout.value})", graph_fake_quant(
                graph_weight(params[item.param].detach(), item, gamma), item, block_size)))
        for name, sub in module.named_modules():
            if isinstance(sub, SubPixelUpsample):
                expected += [(f"{name}.{k} (derived)", fake_quant(getattr(sub, k), WeightScheme.INT8_CHANNELWISE))
                             for k in ("weight_odd", "weight_even")]
        assert signature != "vae_decode" or len(expected) > len(quant_plan(module))  # the rewrite is modelled
        matched = set()
        for what, fq in expected:
            fq = fq.numpy()
            if fq.ndim == 4:
                fq = fq.transpose(0, 2, 3, 1)  # OIHW -> the graph's OHWI
            hits = [k for k, d in enumerate(stored) if d.shape == fq.shape and np.array_equal(d, fq)]
            assert hits, f"{signature}: {what} has no bit-exact twin"
            matched.update(hits)
        # the GroupNorm group averages are fp16 (converters.recipes.GROUP_NORM_FP16), so nothing else is quantized
        assert matched == set(range(len(stored))), f"{signature}: quantized tensors the plan does not model"


def test_fake_quant_equals_the_converted_tflite_with_folding(tmp_path):
    """head_dim 32, random LayerNorm weights, fp16 checkpoint, patch 2 (the demo's layout)."""
    ckpt = _fold_test_model(tmp_path, patch=2)
    _assert_plan_matches(convert(tmp_path / "bundle", model_dir=ckpt, quant="int4", block_size=32), ckpt)
    plan = quant_plan(load_checkpoint(ckpt)[0])
    assert any(i.gamma and i.scale != 1.0 for i in plan)  # folding really exercised
    assert any(i.param.endswith("embed.weight") and i.layout is Layout.EMBEDDING_AS_FC for i in plan)


def test_channelwise_fake_quant_equals_the_converted_tflite(tmp_path):
    """A checkpoint DQAT-trained for `--block-size 0` converts, by default, to INT4 with one scale per output
    channel; DQAT's fake-quant with block size 0 is those weights, bit for bit (folding included). An explicit
    --block-size still wins."""
    ckpt = _fold_test_model(tmp_path, patch=2, extra={"quantization_aware": {"recipe": "int4", "block_size": 0}})
    bundle = convert(tmp_path / "bundle", model_dir=ckpt, quant="int4")  # no block size: the checkpoint's
    _assert_plan_matches(bundle, ckpt, block_size=0)
    manifest = load_manifest(bundle)
    assert manifest["quantization"]["block_size"] == 0
    for signature in ("text_encoder", "denoise"):
        assert set(manifest["quantization"]["per_signature"][signature]["FULLY_CONNECTED"]) == {"int4_channelwise"}
    explicit = load_manifest(convert(tmp_path / "b64", model_dir=ckpt, quant="int4", block_size=64))
    assert explicit["quantization"]["block_size"] == 64
    assert "int4_blockwise_64" in explicit["quantization"]["per_signature"]["denoise"]["FULLY_CONNECTED"]


def test_projected_weights_convert_without_weight_error(tmp_path):
    """`project_` (what `train qat` exports): the fp16 checkpoint of projected weights converts to INT4 tensors
    equal to its own (folded) weights up to the fp16 rounding of the scales - PyTorch runs what the bundle runs."""
    ckpt = _fold_test_model(tmp_path, patch=2)
    model, _ = load_checkpoint(ckpt)
    for module in (model.text_encoder, model.denoiser):
        project_(module, QuantSpec(block_size=0))
    projected = save_checkpoint(model, tmp_path / "projected", dtype=torch.float16,
                                extra={"quantization_aware": {"recipe": "int4", "block_size": 0}})
    bundle = convert(tmp_path / "bundle", model_dir=projected, quant="int4")
    model, _ = load_checkpoint(projected)  # as the converter read it (fp16)
    for signature, module in (("text_encoder", model.text_encoder), ("denoise", model.denoiser)):
        stored = _read_quantized(bundle / f"{signature}.tflite")
        params = dict(module.named_parameters())
        for item in quant_plan(module):
            gamma = params[item.gamma].detach() if item.gamma else None
            graph = graph_weight(params[item.param].detach(), item, gamma).numpy()
            if graph.ndim == 4:
                graph = graph.transpose(0, 2, 3, 1)
            peak = max(np.abs(graph).max(), 1e-12)
            errors = [np.abs(d - graph).max() / peak for d in stored if d.shape == graph.shape]
            assert errors and min(errors) < 2e-3, f"{signature}: {item.param} lost {min(errors, default=1):.2e}"
    # the latent weights of the same model do lose precision (the check above can fail)
    latent, _ = load_checkpoint(ckpt)
    item = next(i for i in quant_plan(latent.denoiser) if i.scheme is WeightScheme.INT4_BLOCKWISE)
    w = graph_weight(dict(latent.denoiser.named_parameters())[item.param].detach(), item, None)
    assert (graph_fake_quant(w, item, 0) - w).abs().max() / w.abs().max() > 1e-2


def test_fake_quant_equals_the_converted_tiny_bundle(bundle_factory, tiny_checkpoint):
    """The tiny preset (patch 1: its 1x1 transposed convolution becomes an INT8 CONV_2D)."""
    _assert_plan_matches(bundle_factory("int4"), tiny_checkpoint)
    kinds = {(i.scheme, i.layout) for i in quant_plan(load_checkpoint(tiny_checkpoint)[0].denoiser)}
    assert (WeightScheme.INT8_CHANNELWISE, Layout.TRANSPOSE_CONV_1X1) in kinds

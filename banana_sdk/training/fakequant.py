"""Fake quantization identical to the converter's `int4` recipe (ai-edge-quantizer 0.10), for DQAT.

The converter (`converters/recipes.py`) stores, per op type:
    FULLY_CONNECTED (and the token embedding, exported as a one-hot FULLY_CONNECTED)
                                       dynamic INT4, blockwise along the input dim (block 32 by default)
    CONV_2D                            dynamic INT8, per output channel (the VAE GroupNorm averages: fp16)
    everything else                    fp32
The VAE is never DQAT-trained: its decoder's full-size upsample is exported as two derived 2x2 convolutions
(`converters/rewrites.py`), and the converter quantizes those kernels, which no 3x3 fake-quant can reproduce.
ai-edge-quantizer computes (algorithms/uniform_quantize/uniform_quantize_tensor.py, all in float32):
    bound = max(|min(block)|, |max(block)|, 1e-9)        symmetric, zero point 0
    scale = bound / qmax                                  qmax = 7 (int4) or 127 (int8)
    blockwise only: scale = float32(float16(bfloat16(scale)))   (7-bit mantissa, round to nearest even);
                    block size 0 (`--block-size 0`, INT4 channelwise): one float32 scale per output row
    q     = clip(rint(w / scale), qmin, qmax)             rint = round half to even;
                                                          int4: [-8, 7] (no narrow range below 8 bits),
                                                          int8: [-127, 127] (narrow range)
    w'    = q * scale
PyTorch's float32 division, `round` (half to even) and bf16/fp16 casts (round to nearest even) give the
same bits. The converted graph quantizes weights after constant folding (see `quant_plan`: LayerNorm
weights and attention's q/k scaling are folded into the following linear layers), so the fake-quant is
applied to the folded weight and unfolded again; `tests/test_train_fakequant.py` checks the math against
the quantizer's own functions and, weight by weight, against what a converted `.tflite` holds.

Training uses a straight-through estimator (forward w', backward identity) with scales recomputed from
the current weights at every step (dynamic). With `storage_dtype=float16` every parameter is first
rounded to float16, because the demo weights ship as fp16 safetensors and the converter quantizes those.
Runtime activations are quantized dynamically by the kernels (int8 per row); that is not simulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import nn

from banana_sdk.training.common import TrainingError


class WeightScheme(str, Enum):
    INT4_BLOCKWISE = "int4_blockwise"  # FULLY_CONNECTED weights (block size 0: channelwise, one scale per row)
    INT8_CHANNELWISE = "int8_channelwise"  # CONV_2D weights


class Layout(str, Enum):
    """How the converted graph holds a PyTorch weight before quantizing it."""

    SAME = "same"  # nn.Linear (out, in) -> FULLY_CONNECTED (INT4 blocks along `in`); nn.Conv2d -> CONV_2D,
    #                scales per output channel (dim 0)
    EMBEDDING_AS_FC = "embedding_as_fc"  # nn.Embedding (vocab, dim) -> FULLY_CONNECTED (dim, vocab): the export
    #                                      form `Lookup.ONE_HOT`, so INT4 blocks run along the vocabulary
    TRANSPOSE_CONV_1X1 = "transpose_conv_1x1"  # 1x1 stride-1 nn.ConvTranspose2d (in, out, 1, 1) -> CONV_2D


MIN_BOUND = 1e-9  # ai-edge-quantizer's floor on the range, avoids a zero scale


@dataclass(frozen=True)
class QuantizedWeight:
    """One weight the converter quantizes, and the constant folding it applies first."""

    param: str  # parameter name inside the module
    scheme: WeightScheme  # storage in the .tflite
    layout: Layout  # PyTorch -> graph layout
    gamma: str | None = None  # LayerNorm weight folded along the input dim (the norm right before the linear)
    scale: float = 1.0  # scalar folded in: attention's head_dim ** -0.25 on q and k (SDPA scales q and k)


@dataclass(frozen=True)
class QuantSpec:
    block_size: int = 32  # INT4 block along the input dimension (the converter's --block-size; 0 = channelwise)
    storage_dtype: torch.dtype | None = torch.float16  # weights are rounded to this first (the shipped dtype)


def int4_blockwise(weight: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float32 -> q (out, in) int8 in [-8, 7], scale (out, in // block_size) float32.

    Block size 0 is channelwise: scale (out, 1), kept float32 (the quantizer rounds only block scales).
    """
    out_dim, in_dim = weight.shape
    if block_size == 0:
        bound = torch.clamp(weight.float().abs().amax(dim=1, keepdim=True), min=MIN_BOUND)
        scale = bound / 7.0
        return torch.clamp(torch.round(weight.float() / scale), -8, 7).to(torch.int8), scale
    if in_dim % block_size:
        raise TrainingError(f"input dim {in_dim} of a {tuple(weight.shape)} weight is not a multiple of "
                            f"block size {block_size}")
    blocks = weight.float().reshape(out_dim, in_dim // block_size, block_size)
    bound = torch.clamp(blocks.abs().amax(dim=2), min=MIN_BOUND)
    scale = (bound / 7.0).to(torch.bfloat16).to(torch.float16).to(torch.float32)
    q = torch.clamp(torch.round(blocks / scale[..., None]), -8, 7)
    return q.reshape(out_dim, in_dim).to(torch.int8), scale


def int8_channelwise(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, ...) float32 -> q int8 in [-127, 127] (same shape), scale (out,) float32."""
    flat = weight.float().reshape(weight.shape[0], -1)
    bound = torch.clamp(flat.abs().amax(dim=1), min=MIN_BOUND)
    scale = bound / 127.0
    q = torch.clamp(torch.round(flat / scale[:, None]), -127, 127)
    return q.reshape(weight.shape).to(torch.int8), scale


def dequantize(q: torch.Tensor, scale: torch.Tensor, scheme: WeightScheme, block_size: int = 32) -> torch.Tensor:
    """q * scale (float32), broadcasting block or channel scales."""
    if scheme is WeightScheme.INT4_BLOCKWISE:
        out_dim, in_dim = q.shape
        if block_size == 0:
            return q.float() * scale
        blocks = q.float().reshape(out_dim, in_dim // block_size, block_size) * scale[..., None]
        return blocks.reshape(out_dim, in_dim)
    return (q.float().reshape(q.shape[0], -1) * scale[:, None]).reshape(q.shape)


def fake_quant(weight: torch.Tensor, scheme: WeightScheme, block_size: int = 32) -> torch.Tensor:
    """The weight as the converted model stores it (dequantized), float32, no gradient."""
    with torch.no_grad():
        if scheme is WeightScheme.INT4_BLOCKWISE:
            q, scale = int4_blockwise(weight, block_size)
        else:
            q, scale = int8_channelwise(weight)
        return dequantize(q, scale, scheme, block_size)


def straight_through(weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Forward `target`, backward identity into `weight`."""
    return weight + (target.to(weight.dtype) - weight).detach()


def quant_plan(module: nn.Module) -> list[QuantizedWeight]:
    """Every weight inside `module` that the `int4` recipe quantizes, with the folding the converter applies.

    Measured on litert-torch 0.10 (and proven per weight by `tests/test_train_fakequant.py`): the lowering
    folds an affine LayerNorm's weight into the linear layers that read its output (text blocks: norm1 ->
    attn q/k/v, norm2 -> mlp.fc1; DiT blocks: norm2 -> cross q), folds attention's sqrt(1/sqrt(head_dim))
    into the q and k projections, holds the token embedding as a (width, vocab) FULLY_CONNECTED (the one-hot
    export form; blocks along the vocabulary),
    and turns a 1x1 stride-1 transposed convolution into a CONV_2D. Other transposed convolutions stay fp32.
    """
    from banana_sdk.models.denoiser import DiTBlock
    from banana_sdk.models.layers import Attention
    from banana_sdk.models.text_encoder import TextBlock

    gammas: dict[str, str] = {}
    scales: dict[str, float] = {}
    for name, sub in module.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(sub, TextBlock) and sub.norm1.weight is not None:
            for proj in ("q", "k", "v"):
                gammas[f"{prefix}attn.{proj}.weight"] = f"{prefix}norm1.weight"
        if isinstance(sub, TextBlock) and sub.norm2.weight is not None:
            gammas[f"{prefix}mlp.fc1.weight"] = f"{prefix}norm2.weight"
        if isinstance(sub, DiTBlock) and sub.norm2.weight is not None:
            gammas[f"{prefix}cross.q.weight"] = f"{prefix}norm2.weight"
        if isinstance(sub, Attention):
            for proj in ("q", "k"):
                scales[f"{prefix}{proj}.weight"] = sub.head_dim ** -0.25
    plan = []
    for name, sub in module.named_modules():
        param = f"{name}.weight" if name else "weight"
        if isinstance(sub, nn.Linear):
            plan.append(QuantizedWeight(param, WeightScheme.INT4_BLOCKWISE, Layout.SAME, gammas.get(param),
                                        scales.get(param, 1.0)))
        elif isinstance(sub, nn.Embedding):
            plan.append(QuantizedWeight(param, WeightScheme.INT4_BLOCKWISE, Layout.EMBEDDING_AS_FC))
        elif isinstance(sub, nn.Conv2d):
            plan.append(QuantizedWeight(param, WeightScheme.INT8_CHANNELWISE, Layout.SAME))
        elif isinstance(sub, nn.ConvTranspose2d) and sub.kernel_size == (1, 1) and sub.stride == (1, 1):
            plan.append(QuantizedWeight(param, WeightScheme.INT8_CHANNELWISE, Layout.TRANSPOSE_CONV_1X1))
    return plan


def graph_weight(weight: torch.Tensor, item: QuantizedWeight, gamma: torch.Tensor | None) -> torch.Tensor:
    """The float32 weight as the converted graph holds it (layout and folding applied), before quantizing."""
    w = weight.float()
    if item.layout in (Layout.TRANSPOSE_CONV_1X1, Layout.EMBEDDING_AS_FC):
        w = w.transpose(0, 1)
    if gamma is not None:
        w = w * gamma.float()[None, :]
    if item.scale != 1.0:
        w = w * item.scale
    return w.contiguous()


def graph_fake_quant(graph: torch.Tensor, item: QuantizedWeight, block_size: int) -> torch.Tensor:
    """Dequantized graph weight: what the .tflite holds, read back as float32 (conv layout: PyTorch's)."""
    return fake_quant(graph, item.scheme, block_size)


def _unfold(dequantized: torch.Tensor, item: QuantizedWeight, gamma: torch.Tensor | None) -> torch.Tensor:
    """Graph weight -> the PyTorch weight that makes the PyTorch layer compute the converted graph."""
    w = dequantized
    factor = None
    if gamma is not None:
        factor = gamma.float()[None, :] * item.scale
    elif item.scale != 1.0:
        factor = torch.full((1, w.shape[1]), item.scale, dtype=w.dtype, device=w.device)
    if factor is not None:  # a zero gamma column contributes nothing either way
        w = torch.where(factor != 0, w / torch.where(factor != 0, factor, 1.0), torch.zeros_like(w))
    if item.layout in (Layout.TRANSPOSE_CONV_1X1, Layout.EMBEDDING_AS_FC):
        w = w.transpose(0, 1)
    return w.contiguous()


def check_block_size(module: nn.Module, block_size: int) -> None:
    """Raise TrainingError naming the first INT4 weight whose input dim the block size does not divide."""
    if block_size < 0:
        raise TrainingError(f"--block-size must be positive (or 0 for channelwise INT4), got {block_size}")
    if block_size == 0:
        return
    params = dict(module.named_parameters())
    for item in quant_plan(module):
        if item.scheme is WeightScheme.INT4_BLOCKWISE:
            in_dim = graph_weight(params[item.param].detach(), item, None).shape[1]
            if in_dim % block_size:
                raise TrainingError(f"{item.param} has input dim {in_dim}, not a multiple of --block-size {block_size}")


def quantized_parameters(module: nn.Module, spec: QuantSpec) -> dict[str, torch.Tensor]:
    """All parameters of `module` as the converted model computes with them, with straight-through gradients.

    Use with `torch.func.functional_call(module, quantized_parameters(module, spec), args)`; the module's
    own parameters are untouched (they stay the latent full-precision weights that training updates).
    """
    out = {}
    for name, param in module.named_parameters():
        value = param
        if spec.storage_dtype is not None and param.is_floating_point():
            value = straight_through(param, param.detach().to(spec.storage_dtype).float())
        out[name] = value
    for item in quant_plan(module):
        weight = out[item.param]
        gamma = out[item.gamma].detach() if item.gamma else None
        with torch.no_grad():
            target = _unfold(graph_fake_quant(graph_weight(weight.detach(), item, gamma), item, spec.block_size),
                             item, gamma)
        out[item.param] = straight_through(weight, target)
    return out


@torch.no_grad()
def project_(module: nn.Module, spec: QuantSpec) -> None:
    """Replace, in place, every parameter of `module` by the value the converted model computes with: the
    storage rounding and, for the weights `quant_plan` names, the dequantized INT4 / INT8 weight (unfolded).

    The result is a fixed point of the recipe: quantizing it again reproduces the same integers (stored as
    fp16, the scales move by at most the fp16 rounding of the largest weight, ~5e-4 relative), so a checkpoint
    of projected weights converts to `--quant int4` without weight error and PyTorch runs what the phone runs.
    """
    values = quantized_parameters(module, spec)
    for name, param in module.named_parameters():
        param.copy_(values[name].detach().to(param.dtype))


@torch.no_grad()
def dither_project_(module: nn.Module, spec: QuantSpec, params: set[str], generator: torch.Generator) -> None:
    """Move the named INT4 weights of `module` (names relative to it) onto the grid the converter will compute
    for them, by unbiased stochastic rounding: each element goes to the grid point below or above with the
    probabilities that keep its expected value.

    For a weight that was on the grid and then received a small dense change (a peel merged into DQAT's
    quantized weights), deterministic rounding would snap most of the change back to the old grid point and
    lose it; dithering keeps it in expectation. The result is a fixed point of the recipe like `project_`'s.
    """
    values = dict(module.named_parameters())
    for item in quant_plan(module):
        if item.param not in params or item.scheme is not WeightScheme.INT4_BLOCKWISE:
            continue
        param = values[item.param]
        weight = param.detach().float()
        gamma = values[item.gamma].detach().float() if item.gamma else None
        if spec.storage_dtype is not None:
            weight = weight.to(spec.storage_dtype).float()
            gamma = gamma.to(spec.storage_dtype).float() if gamma is not None else None
        graph = graph_weight(weight, item, gamma)
        _, scale = int4_blockwise(graph, spec.block_size)
        per = scale if spec.block_size == 0 else scale.repeat_interleave(spec.block_size, dim=1)
        x = graph / per
        low = torch.floor(x)
        up = torch.rand(x.shape, generator=generator, device=x.device) < (x - low)
        q = torch.clamp(low + up.float(), -8, 7).to(torch.int8)
        param.copy_(_unfold(dequantize(q, scale, item.scheme, spec.block_size), item, gamma).to(param.dtype))

"""Model size facts computed on the meta device: parameters, FLOPs per step, weight memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from banana_sdk.config import ModelConfig, check_image_size
from banana_sdk.models.model import COMPONENTS, build_model

BYTES_PER_PARAM = {"fp32": 4.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}  # storage of one weight


@dataclass(frozen=True)
class ModelInfo:
    name: str  # preset or model name
    params: dict[str, int]  # parameters per component (text_encoder, denoiser, vae)
    total_params: int  # sum over components
    size: int  # image side in pixels the FLOPs refer to
    denoise_flops: int  # FLOPs of one denoiser evaluation (batch 1) at `size`
    decode_flops: int  # FLOPs of one VAE decode at `size`
    weight_bytes: dict[str, float]  # all weights stored at fp32 / fp16 / int8 / int4


def _flops(fn, *args: torch.Tensor) -> int:  # noqa: ANN001
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops())


def model_info(config: ModelConfig, size: int | None = None) -> ModelInfo:
    """Count everything on the meta device: no weights are allocated, any preset is instant."""
    size = config.image_size if size is None else size
    check_image_size(config, size)
    model = build_model(config, "meta")
    params = {name: sum(p.numel() for p in getattr(model, name).parameters()) for name in COMPONENTS}
    total = sum(params.values())
    meta = {"device": "meta"}
    lat = size // config.downsample
    ctx_len, ctx_dim, slots = config.tokenizer.context_length, config.text.width, config.denoiser.max_subjects
    latent = torch.zeros(1, config.vae.latent_channels, lat, lat, **meta)
    with torch.no_grad():
        denoise = _flops(
            model.denoiser, latent, torch.zeros(1, **meta), torch.zeros(1, ctx_len, ctx_dim, **meta),
            torch.zeros(1, ctx_len, **meta), torch.zeros(1, slots, ctx_dim, **meta),
            torch.zeros(1, slots, **meta),
        )
        decode = _flops(model.vae.decode, latent)
    return ModelInfo(
        name=config.name, params=params, total_params=total, size=size, denoise_flops=denoise,
        decode_flops=decode, weight_bytes={k: total * v for k, v in BYTES_PER_PARAM.items()},
    )


def count_params(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


def format_info(info: ModelInfo) -> str:
    """Human-readable table for `banana info`."""
    lines = [f"model {info.name}: {info.total_params / 1e6:,.2f}M parameters"]
    for name, count in info.params.items():
        lines.append(f"  {name:<13} {count / 1e6:>12,.3f}M  ({100 * count / info.total_params:5.1f}%)")
    lines.append(f"FLOPs per denoising step at {info.size}x{info.size}: {info.denoise_flops / 1e9:,.2f} GFLOP")
    lines.append(f"FLOPs of the VAE decode at {info.size}x{info.size}: {info.decode_flops / 1e9:,.2f} GFLOP")
    lines.append("weight memory (all parameters at one precision):")
    for dtype, nbytes in info.weight_bytes.items():
        lines.append(f"  {dtype:<5} {nbytes / 2**20:>12,.1f} MiB")
    return "\n".join(lines)

"""Every rewrite a real diffusers model needs to become a delegate-friendly LiteRT signature, in one place.

Each rewrite keeps the math and is checked by the converter's gate: the reference is the model's *own*
forward, called the way its diffusers pipeline calls it (int64 timesteps, CFG batch of 2, its attention
processor, nn.GroupNorm), and the LiteRT file made from the rewritten signature must match it.

- Attention processors -> diffusers' default (explicit matmul + softmax) processor: whatever processor the
  model carries (SDPA, fused QKV, xformers, LoRA/IP-adapter processors) is replaced before tracing; SD3's
  joint attention -> `converters/byom/joint_attention.ExplicitJointAttnProcessor` (the same, for MMDiT).
- nn.GroupNorm -> a reshape-based group norm with the same parameters: litert-torch lowers nn.GroupNorm
  with BROADCAST_TO ops (two per norm) that GPU delegates handle poorly; the reshape form has none.
- Timesteps: pipelines pass int64 timestep tensors (and CLIP int64 ids). Signatures take float32
  `t = k / T` and int32 `tokens`; the graph computes `k = t * T` in float, so no int64 tensor or cast
  reaches the device.
- Guidance: a CFG pipeline runs its denoiser at batch 2 (unconditional, conditional). The signature is
  batch 1 and the host runs it twice and combines `u + s (c - u)` (half the activation memory, the same
  file serves s = 1 with one pass). Guidance-distilled UNets (LCM, `time_cond_proj_dim`) are batch 1 with
  the scale as a `guidance` input; its sinusoidal embedding is computed inside the graph.
- PixArt's learned-sigma output channels are dropped in the graph; the VAE's latent scaling is folded in.
- DC-AE decoders (Sana's AutoencoderDC): channel `repeat_interleave` (rank-5 RESHAPE + BROADCAST_TO) -> a rank-4
  concatenation (`converters/byom/dc_ae.py`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from banana_sdk.runtime.guidance import GuidanceMode
from converters.byom.dc_ae import ExportDCDecoder, ExportDCUpBlock2d, rewrite_dc_decoders

GUIDANCE_SCALE_GATE = 8.5  # guidance scale fed to embedded-guidance denoisers by the gate


def guidance_mode(class_name: str, config: dict) -> GuidanceMode:
    """How guidance reaches this denoiser."""
    if class_name == "UNet2DConditionModel" and config.get("time_cond_proj_dim"):
        return GuidanceMode.EMBEDDED
    if class_name == "FluxTransformer2DModel" and config.get("guidance_embeds"):  # FLUX.1-dev
        return GuidanceMode.EMBEDDED
    return GuidanceMode.CFG


class ReshapeGroupNorm(nn.Module):
    """nn.GroupNorm as reshape -> mean/variance -> reshape -> per-channel affine (same parameters)."""

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.groups = norm.num_groups
        self.eps = norm.eps
        self.weight = norm.weight
        self.bias = norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        grouped = x.reshape(shape[0], self.groups, -1)  # (B, G, C/G * spatial)
        centered = grouped - grouped.mean(-1, keepdim=True)
        var = (centered * centered).mean(-1, keepdim=True)
        x = (centered * torch.rsqrt(var + self.eps)).reshape(shape)
        if self.weight is None:
            return x
        affine = [1, shape[1]] + [1] * (len(shape) - 2)
        return x * self.weight.reshape(affine) + self.bias.reshape(affine)


def rewrite_group_norms(module: nn.Module) -> int:
    """Replace every nn.GroupNorm in place; returns how many."""
    count = 0
    for name, child in module.named_children():
        if isinstance(child, nn.GroupNorm):
            setattr(module, name, ReshapeGroupNorm(child))
            count += 1
        else:
            count += rewrite_group_norms(child)
    return count


def pin_attention_processors(module: nn.Module) -> int:
    """Set diffusers' default attention processor everywhere; returns how many attention layers."""
    processors = getattr(module, "attn_processors", None)
    if not processors:
        return 0
    if not hasattr(module, "set_default_attn_processor"):  # SD3's MMDiT: joint attention
        from converters.byom.joint_attention import pin_joint_processors

        return pin_joint_processors(module)
    module.set_default_attn_processor()
    return len(processors)


def apply_rewrites(module: nn.Module) -> nn.Module:
    """The in-place rewrites of a diffusers model (returns it)."""
    pin_attention_processors(module)
    rewrite_group_norms(module)
    rewrite_dc_decoders(module)
    return module


def describe_rewrites(module: nn.Module) -> dict[str, int]:
    """What a rewritten module holds: {rewrite: layers} (recorded per signature in the manifest). Works without
    diffusers installed (a `--module` of plain torch or transformers code): no attention processors then."""
    try:
        from diffusers.models.attention_processor import AttnProcessor

        from converters.byom.joint_attention import ExplicitJointAttnProcessor
        explicit = (AttnProcessor, ExplicitJointAttnProcessor)
    except ImportError:
        explicit = ()  # isinstance(x, ()) is False

    layers = list(module.modules())
    repeats = sum(isinstance(m, (ExportDCDecoder, ExportDCUpBlock2d)) for m in layers)
    return {"attention_processor": sum(isinstance(getattr(m, "processor", None), explicit) for m in layers),
            "group_norm": sum(isinstance(m, ReshapeGroupNorm) for m in layers),
            "nn_group_norm_left": sum(isinstance(m, nn.GroupNorm) for m in layers),
            **({"dc_channel_repeat": repeats} if repeats else {})}  # DC-AE decoders only


def guidance_embedding(scale: torch.Tensor, dim: int) -> torch.Tensor:
    """(1,) guidance scale -> (1, dim) sin/cos embedding of (scale - 1) * 1000 (the LCM pipeline's)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    angles = ((scale - 1.0) * 1000.0)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return nn.functional.pad(emb, (0, 1)) if dim % 2 else emb


class TextEncoderSignature(nn.Module):
    """tokens (1, L) int32 [, attention_mask (1, L) f32] -> context (1, L, Ct): the last hidden state."""

    def __init__(self, text_encoder: nn.Module, masked: bool) -> None:
        super().__init__()
        self.text_encoder = text_encoder
        self.masked = masked

    def forward(self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        mask = attention_mask.to(torch.int32) if self.masked and attention_mask is not None else None
        return {"context": self.text_encoder(input_ids=tokens, attention_mask=mask)[0]}


class DenoiseSignature(nn.Module):
    """latent, t = k / T, context [, context_mask] [, guidance] -> prediction (epsilon, v or x0)."""

    def __init__(self, denoiser: nn.Module, class_name: str, timesteps: int, latent_channels: int,
                 guidance_dim: int | None, size: int) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.unet = class_name == "UNet2DConditionModel"
        self.timesteps = float(timesteps)
        self.channels = latent_channels
        self.guidance_dim = guidance_dim
        extra = getattr(denoiser.config, "sample_size", 0) == 128  # PixArt-alpha 1024px size conditioning
        self.register_buffer("resolution", torch.tensor([[float(size), float(size)]]) if extra else None)
        self.register_buffer("aspect_ratio", torch.tensor([[1.0]]) if extra else None)

    def forward(
        self, latent: torch.Tensor, t: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor | None = None,
        guidance: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        timestep = t * self.timesteps  # float timestep: no int64 tensor, no cast
        if self.unet:
            cond = guidance_embedding(guidance, self.guidance_dim) if self.guidance_dim else None
            out = self.denoiser(latent, timestep, encoder_hidden_states=context, timestep_cond=cond,
                                return_dict=False)[0]
        else:
            out = self.denoiser(latent, encoder_hidden_states=context, timestep=timestep,
                                encoder_attention_mask=context_mask, return_dict=False,
                                added_cond_kwargs={"resolution": self.resolution, "aspect_ratio": self.aspect_ratio})[0]
        return {"prediction": out[:, : self.channels]}  # learned-sigma channels (if any) dropped


class VAEDecodeSignature(nn.Module):
    """latent (1, C, h, w) in diffusion space -> image (1, H, W, 3) in about [-1, 1], NHWC."""

    def __init__(self, vae: nn.Module, scaling: float, shift: float) -> None:
        super().__init__()
        self.vae = vae
        self.scaling = float(scaling)
        self.shift = float(shift)

    def forward(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        image = self.vae.decode(latent / self.scaling + self.shift, return_dict=False)[0]
        return {"image": image.permute(0, 2, 3, 1)}


# --- the model's own forward, called the way its pipeline calls it (the gate's reference) ---------------

def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


@torch.no_grad()
def reference_text(model: nn.Module, inputs: dict[str, np.ndarray], masked: bool) -> dict[str, np.ndarray]:
    ids = _tensor(inputs["tokens"]).long()
    mask = _tensor(inputs["attention_mask"]).long() if masked else None
    return {"context": model(ids, attention_mask=mask)[0].numpy()}


@torch.no_grad()
def reference_denoise(model: nn.Module, class_name: str, inputs: dict[str, np.ndarray], timesteps: int,
                      channels: int, mode: GuidanceMode, uncond: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """The pipeline's call: int64 timestep; CFG at batch 2 (uncond, cond) -> the conditional half."""
    k = torch.tensor([int(round(float(inputs["t"][0]) * timesteps))], dtype=torch.long)
    latent, context = _tensor(inputs["latent"]), _tensor(inputs["context"])
    if class_name == "UNet2DConditionModel":
        if mode is GuidanceMode.EMBEDDED:
            from diffusers import LatentConsistencyModelPipeline

            w = torch.tensor(float(inputs["guidance"][0]) - 1.0).repeat(1)
            cond = LatentConsistencyModelPipeline.get_guidance_scale_embedding(
                None, w, embedding_dim=model.config.time_cond_proj_dim)
            return {"prediction": model(latent, k, encoder_hidden_states=context, timestep_cond=cond).sample.numpy()}
        batch = torch.cat([_tensor(uncond), context])
        out = model(torch.cat([latent, latent]), k.expand(2), encoder_hidden_states=batch).sample
        return {"prediction": out[1:].numpy()}
    mask = _tensor(inputs["context_mask"])
    extra = model.config.sample_size == 128
    added = {"resolution": torch.tensor([[size, size]]).float() if extra else None,
             "aspect_ratio": torch.tensor([[1.0]]) if extra else None}
    batch, masks = torch.cat([_tensor(uncond), context]), torch.cat([torch.ones_like(mask), mask])
    out = model(torch.cat([latent, latent]), encoder_hidden_states=batch, timestep=k.expand(2),
                encoder_attention_mask=masks, added_cond_kwargs=added).sample
    return {"prediction": out[1:].chunk(2, dim=1)[0].numpy() if out.shape[1] == 2 * channels
            else out[1:].numpy()}


@torch.no_grad()
def reference_decode(vae: nn.Module, inputs: dict[str, np.ndarray], scaling: float, shift: float) -> dict:
    image = vae.decode(_tensor(inputs["latent"]) / scaling + shift).sample
    return {"image": image.permute(0, 2, 3, 1).numpy()}

"""The Flux family (`Family.FLUX`, docs/DESIGN.md §8): FLUX.1-schnell / FLUX.1-dev (`FluxTransformer2DModel`).

Signatures (a fixed image size, so every position id is a constant):
- `text_encoder`: tokens (1, 77) int32 (CLIP), tokens_2 (1, R) int32 (T5, R = the pipeline's `max_sequence_length`)
  -> context (1, R, J): T5's last hidden state (unmasked); pooled (1, P): CLIPTextModel's pooled output.
- `denoise`: latent (1, C, h, w), t (1,) = sigma, context (1, R, J), pooled (1, P) [, guidance (1,) for FLUX.1-dev,
  `guidance_embeds=True`] -> prediction (1, C, h, w): the flow velocity. The graph packs the latent into 2x2 patches
  (h/2 * w/2 tokens of 4C channels, FluxPipeline's `_pack_latents`), runs the transformer at timestep
  sigma * T / 1000 (the pipeline's `timestep / 1000`) and unpacks (`_unpack_latents`).

Rewrites (checked by the gate against the unrewritten transformer, called the way FluxPipeline calls it):
- RoPE: `FluxPosEmbed` computes its frequencies in float64 (`tfl.pow` on float64 does not lower). The ids are
  fixed for a fixed size (text rows: zeros; image tokens: (0, row, column)), so its cos/sin tables are computed
  once on the host by diffusers' own module and stored as float32 constants (`ConstantRoPE`).
- Attention: `FluxAttnProcessor` (SDPA through diffusers' dispatcher) -> `ExplicitFluxAttnProcessor`, the same math
  as BATCH_MATMUL + SOFTMAX.

Sampler: `flow-match-euler` on FluxPipeline's grid (sigmas linspace(1, 1/N, N), the `uniform` grid) with one shift:
the scheduler's static `shift`, or with `use_dynamic_shifting` the pipeline's `mu = calculate_shift(image tokens)`
resolved for the bundle's size (exponential time shift = the static formula with shift exp(mu); linear: mu).
Defaults are FluxPipeline.__call__'s: 28 steps; FLUX.1-dev embeds `guidance_scale` (3.5) in one pass; FLUX.1-schnell
has no guidance embedding and runs one pass at `true_cfg_scale` 1.0 (above 1: true CFG against the empty prompt).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from banana_sdk.runtime.guidance import GuidanceMode
from banana_sdk.sampling.flow_match import FlowMatchSchedule
from converters.byom.diffusers import PipelineFolder, call_default
from converters.byom.rewrites import describe_rewrites
from converters.byom.scheduler import FLOW_MATCH, FLOW_MATCH_DEFAULTS, TEACHER_STEPS, SamplerPlan, call_defaults
from converters.errors import ConversionError

TRANSFORMER = "FluxTransformer2DModel"  # the denoiser class of the family
PACK = 2  # FluxPipeline packs 2x2 latent pixels into one token (4x the latent channels)
DEFAULT_SAMPLE_SIZE = 128  # FluxPipeline.default_sample_size: latent pixels per side when no size is given
TIMESTEP_DIVISOR = 1000.0  # FluxPipeline calls the transformer at `timestep / 1000` (it multiplies back inside)
EMBEDDED_SCALE = 3.5  # FluxPipeline.__call__'s guidance_scale, when the pipeline class names none
SHIFTS = ("exponential", "linear")  # `time_shift_type`s of dynamic shifting (both are one static shift per size)


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


# --- geometry ------------------------------------------------------------------------------------------------------

def flux_widths(pipe: PipelineFolder) -> tuple[int, int]:
    """(context width J, pooled width P): T5's `d_model` must be the transformer's `joint_attention_dim`, CLIP's
    hidden size its `pooled_projection_dim`; ConversionError names the mismatch."""
    den = pipe["denoiser"]
    joint = int(den.config.get("joint_attention_dim", 4096))
    pooled = int(den.config.get("pooled_projection_dim", 768))
    t5 = int(pipe["text_encoder_2"].config.get("d_model") or 0)
    clip = int(pipe["text_encoder"].config.get("hidden_size") or 0)
    if t5 != joint:
        raise ConversionError(f"{den.folder} expects {joint}-wide text features (joint_attention_dim) but "
                              f"{pipe['text_encoder_2'].folder} gives {t5}; not one pipeline")
    if clip != pooled:
        raise ConversionError(f"{den.folder} expects {pooled}-wide pooled text (pooled_projection_dim) but "
                              f"{pipe['text_encoder'].folder} gives {clip}; not one pipeline")
    return joint, pooled


def latent_channels(pipe: PipelineFolder) -> int:
    """Latent channels C = the transformer's `in_channels` / 4 (2x2 packing); ConversionError unless it packs."""
    den = pipe["denoiser"]
    packed = int(den.config.get("in_channels", 64))
    out = den.config.get("out_channels")
    if packed % (PACK * PACK) or (out is not None and int(out) != packed):
        raise ConversionError(f"{den.folder}: in_channels {packed} / out_channels {out} do not hold 2x2-packed "
                              f"latents (FluxPipeline needs in_channels = out_channels = 4 x the latent channels)")
    return packed // (PACK * PACK)


def image_tokens(latent_size: int) -> int:
    """Tokens of the packed latent: (h / 2) * (w / 2)."""
    return (latent_size // PACK) ** 2


# --- packing (FluxPipeline._pack_latents / _unpack_latents at batch 1, at most 5-D tensors) -----------------------

def pack(latent: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) -> (1, h/2 * w/2, 4C): token (i, j) holds the 2x2 patch at rows 2i.., columns 2j.. per channel."""
    _, channels, height, width = latent.shape
    patches = latent.reshape(channels, height // PACK, PACK, width // PACK, PACK)  # (C, h/2, 2, w/2, 2)
    patches = patches.permute(1, 3, 0, 2, 4)  # (h/2, w/2, C, 2, 2)
    return patches.reshape(1, (height // PACK) * (width // PACK), channels * PACK * PACK)


def unpack(tokens: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """(1, h/2 * w/2, 4C) -> (1, C, h, w), the inverse of `pack`."""
    patches = tokens.reshape(height // PACK, width // PACK, channels, PACK, PACK)  # (h/2, w/2, C, 2, 2)
    patches = patches.permute(2, 0, 3, 1, 4)  # (C, h/2, 2, w/2, 2)
    return patches.reshape(1, channels, height, width)


def position_ids(text_rows: int, latent_size: int) -> torch.Tensor:
    """(R + N, 3) float32 ids FluxPipeline gives the transformer: R text rows of zeros, then (0, row, column) of
    each packed image token (its `_prepare_latent_image_ids`)."""
    from diffusers import FluxPipeline

    half = latent_size // PACK
    image = FluxPipeline._prepare_latent_image_ids(1, half, half, "cpu", torch.float32)
    return torch.cat([torch.zeros(text_rows, 3), image])


# --- rewrites --------------------------------------------------------------------------------------------------------

class ConstantRoPE(nn.Module):
    """FluxPosEmbed for one fixed id table: its (S, D) cos/sin, computed by the original module (float64 inside),
    kept as float32 constants. Only the id count is checked at trace time: the ids of a fixed size never change."""

    def __init__(self, pos_embed: nn.Module, ids: torch.Tensor) -> None:
        super().__init__()
        with torch.no_grad():
            cos, sin = pos_embed(ids)
        self.register_buffer("cos", cos.float().contiguous())
        self.register_buffer("sin", sin.float().contiguous())

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if ids.shape[0] != self.cos.shape[0]:
            raise ValueError(f"ConstantRoPE holds {self.cos.shape[0]} positions, got {ids.shape[0]} ids")
        return self.cos, self.sin


class ExplicitFluxAttnProcessor:
    """FluxAttnProcessor (unfused projections) with attention = softmax(q k^T / sqrt(d)) v spelled out."""

    def __call__(self, attn: nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
                 ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        from diffusers.models.embeddings import apply_rotary_emb

        if attention_mask is not None:
            raise ValueError("ExplicitFluxAttnProcessor takes no attention mask (FluxPipeline passes none)")
        # 1. image (or joint, in single-stream blocks) projections (B, N, heads, d) with their RMS norms
        query, key, value = (proj(hidden_states).unflatten(-1, (-1, attn.head_dim))
                             for proj in (attn.to_q, attn.to_k, attn.to_v))
        query, key = attn.norm_q(query), attn.norm_k(key)
        # 2. double-stream blocks: text projections go before the image tokens
        text_rows = 0
        if encoder_hidden_states is not None and attn.added_kv_proj_dim is not None:
            text = [proj(encoder_hidden_states).unflatten(-1, (-1, attn.head_dim))
                    for proj in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj)]
            text[0], text[1] = attn.norm_added_q(text[0]), attn.norm_added_k(text[1])
            query, key, value = (torch.cat([a, b], dim=1) for a, b in zip(text, (query, key, value), strict=True))
            text_rows = encoder_hidden_states.shape[1]
        # 3. rotary positions over all tokens (sequence on dim 1)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
        # 4. attention (B, heads, M + N, d) -> (B, M + N, heads * d)
        query, key, value = (x.transpose(1, 2) for x in (query, key, value))
        scores = torch.matmul(query, key.transpose(-1, -2)) * (query.shape[-1] ** -0.5)
        out = torch.matmul(scores.softmax(dim=-1), value).transpose(1, 2).flatten(2, 3)
        # 5. single-stream blocks return the joint states; double-stream ones split and project both
        if not text_rows:
            return out
        text_out, image = out[:, :text_rows], out[:, text_rows:]
        return attn.to_out[1](attn.to_out[0](image)), attn.to_add_out(text_out)


def apply_flux_rewrites(transformer: nn.Module, text_rows: int, latent_size: int) -> nn.Module:
    """In place: explicit attention processors, RoPE tables as constants for R text rows and a latent of
    `latent_size` pixels per side; returns the transformer."""
    from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

    procs = transformer.attn_processors
    transformer.set_attn_processor({name: ExplicitFluxAttnProcessor() if isinstance(proc, FluxAttnProcessor) else proc
                                    for name, proc in procs.items()})
    transformer.pos_embed = ConstantRoPE(transformer.pos_embed, position_ids(text_rows, latent_size))
    return transformer


def describe_flux_rewrites(module: nn.Module) -> dict[str, int]:
    """`describe_rewrites` plus the Flux rewrites: explicit Flux attention layers, RoPE tables made constant."""
    notes = describe_rewrites(module)
    layers = list(module.modules())
    notes["attention_processor"] += sum(isinstance(getattr(m, "processor", None), ExplicitFluxAttnProcessor)
                                        for m in layers)
    notes["rope_constants"] = sum(isinstance(m, ConstantRoPE) for m in layers)
    return notes


# --- signatures ----------------------------------------------------------------------------------------------------

class FluxTextSignature(nn.Module):
    """tokens (1, 77) int32, tokens_2 (1, R) int32 -> context (1, R, J) (T5), pooled (1, P) (CLIP pooled output)."""

    def __init__(self, encoders: nn.ModuleDict) -> None:
        super().__init__()
        self.clip = encoders["text_encoder"]
        self.t5 = encoders["text_encoder_2"]

    def forward(self, tokens: torch.Tensor, tokens_2: torch.Tensor) -> dict[str, torch.Tensor]:
        pooled = self.clip(input_ids=tokens).pooler_output  # (1, P): final-norm state at the EOS token
        context = self.t5(input_ids=tokens_2)[0]  # (1, R, J), no attention mask (as the pipeline)
        return {"context": context, "pooled": pooled}


class FluxDenoiseSignature(nn.Module):
    """latent (1, C, h, w), t (1,) = sigma, context (1, R, J), pooled (1, P) [, guidance (1,)] -> prediction
    (1, C, h, w), the flow velocity. Expects a transformer after `apply_flux_rewrites` for this geometry."""

    def __init__(self, transformer: nn.Module, timesteps: int, text_rows: int, latent_size: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.scale = float(timesteps) / TIMESTEP_DIVISOR  # sigma -> the pipeline's `timestep / 1000`
        ids = position_ids(text_rows, latent_size)
        self.register_buffer("txt_ids", ids[:text_rows].contiguous())  # (R, 3) zeros
        self.register_buffer("img_ids", ids[text_rows:].contiguous())  # (N, 3) (0, row, column)

    def forward(self, latent: torch.Tensor, t: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor,
                guidance: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        _, channels, height, width = latent.shape
        out = self.transformer(hidden_states=pack(latent), timestep=t * self.scale, guidance=guidance,
                               pooled_projections=pooled, encoder_hidden_states=context, txt_ids=self.txt_ids,
                               img_ids=self.img_ids, return_dict=False)[0]  # (1, N, 4C)
        return {"prediction": unpack(out, channels, height, width)}


@torch.no_grad()
def reference_flux_text(encoders: nn.ModuleDict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """FluxPipeline.encode_prompt: int64 ids, CLIPTextModel's `pooler_output`, T5's last hidden state."""
    pooled = encoders["text_encoder"](_tensor(inputs["tokens"]).long(), output_hidden_states=False).pooler_output
    context = encoders["text_encoder_2"](_tensor(inputs["tokens_2"]).long(), output_hidden_states=False)[0]
    return {"context": context.numpy(), "pooled": pooled.numpy()}


@torch.no_grad()
def reference_flux_denoise(transformer: nn.Module, inputs: dict[str, np.ndarray], timesteps: int,
                           downsample: int) -> dict[str, np.ndarray]:
    """FluxPipeline's transformer call at batch 1 (it never batches CFG): its own packing and ids, float64 RoPE,
    timestep (sigma * T) / 1000, guidance as given."""
    from diffusers import FluxPipeline

    latent = _tensor(inputs["latent"])
    _, channels, height, width = latent.shape
    context = _tensor(inputs["context"])
    timestep = torch.tensor([float(inputs["t"][0]) * timesteps], dtype=torch.float32)
    guidance = torch.full([1], float(inputs["guidance"][0]), dtype=torch.float32) if "guidance" in inputs else None
    out = transformer(hidden_states=FluxPipeline._pack_latents(latent, 1, channels, height, width),
                      timestep=timestep / TIMESTEP_DIVISOR, guidance=guidance,
                      pooled_projections=_tensor(inputs["pooled"]), encoder_hidden_states=context,
                      txt_ids=torch.zeros(context.shape[1], 3),
                      img_ids=FluxPipeline._prepare_latent_image_ids(1, height // PACK, width // PACK, "cpu",
                                                                     torch.float32),
                      return_dict=False)[0]
    image = FluxPipeline._unpack_latents(out, height * downsample, width * downsample, downsample)
    return {"prediction": image.numpy()}


# --- sampler ---------------------------------------------------------------------------------------------------------

def flux_shift(config: dict[str, Any], tokens: int) -> float:
    """The one shift of FluxPipeline's schedule for `tokens` packed image tokens: the static `shift`, or with
    `use_dynamic_shifting` the pipeline's mu = calculate_shift(tokens, ...) as exp(mu) (exponential) or mu (linear)."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    if not config.get("use_dynamic_shifting", False):
        return float(config.get("shift", 1.0))
    mu = calculate_shift(tokens, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
                         config.get("base_shift", 0.5), config.get("max_shift", 1.15))
    return math.exp(mu) if config.get("time_shift_type", SHIFTS[0]) == SHIFTS[0] else float(mu)


def plan_flux_sampler(pipe: PipelineFolder, guidance: GuidanceMode, latent_size: int) -> SamplerPlan:
    """`flow-match-euler` on FluxPipeline's uniform grid with the shift resolved for `latent_size`, and the pipeline's
    `__call__` defaults (embedded: `guidance_scale`; otherwise one pass at `true_cfg_scale`)."""
    import diffusers

    comp = pipe["scheduler"]
    cfg = comp.config
    if comp.class_name != FLOW_MATCH:
        raise ConversionError(f"{comp.folder}: {comp.class_name} is not supported yet for {pipe.pipeline_class} "
                              f"(flux family); it needs {FLOW_MATCH} (flow matching)")
    for option, value in FLOW_MATCH_DEFAULTS.items():
        if option != "use_dynamic_shifting" and cfg.get(option, value) != value:
            raise ConversionError(f"{comp.folder}: {comp.class_name} with {option}={cfg[option]!r} is not "
                                  f"supported yet; supported: {option}={value!r}")
    if cfg.get("use_dynamic_shifting") and cfg.get("time_shift_type", SHIFTS[0]) not in SHIFTS:
        raise ConversionError(f"{comp.folder}: time_shift_type={cfg['time_shift_type']!r} is not supported; "
                              f"supported: {', '.join(SHIFTS)}")
    try:
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(cfg)
        schedule = FlowMatchSchedule(int(scheduler.config.num_train_timesteps),
                                     flux_shift(dict(scheduler.config), image_tokens(latent_size)),
                                     float(scheduler.sigma_min), float(scheduler.sigma_max), grid="uniform")
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConversionError(f"{comp.folder}: cannot build {comp.class_name} from its config ({exc})") from None
    steps, scale = call_defaults(pipe.pipeline_class)
    if guidance is not GuidanceMode.EMBEDDED:
        true_cfg = call_default(pipe.pipeline_class, "true_cfg_scale")
        scale = float(true_cfg) if isinstance(true_cfg, (int, float)) else 1.0
    return SamplerPlan("flow-match-euler", schedule, steps or TEACHER_STEPS, guidance,
                       EMBEDDED_SCALE if scale is None else scale, comp.class_name)

"""Signature wrappers (and the gate's references) of the SD3 family (`Family.SD3`, docs/DESIGN.md §8).

- `text_encoder`: tokens, tokens_2 (1, 77) int32 [, tokens_3 (1, R) int32] -> context (1, 77 + R, J), pooled
  (1, P1 + P2). The penultimate hidden states of both CLIP encoders side by side (1, 77, C1 + C2), zero-padded or
  cut to the transformer's `joint_attention_dim` J (the pipeline's `F.pad` by J - C1 - C2, which crops when
  negative), then the R rows of T5's last hidden state (unmasked, padded to R = `max_sequence_length`), or R rows of
  zeros without text_encoder_3; pooled = both CLIPs' projected `text_embeds` side by side.
- `denoise`: latent (1, C, h, w), t (1,) = sigma, context (1, 77 + R, J), pooled (1, P) -> prediction (1, C, h, w):
  the flow velocity, the transformer called at timestep sigma * T in float.

The references call the components the way `StableDiffusion3Pipeline` does (int64 ids, `output_hidden_states`,
CFG batch of 2 with the unconditional row first).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


def _fit_width(states: torch.Tensor, width: int) -> torch.Tensor:
    """(1, L, C) -> (1, L, width): zero-padded or cut on the right (the pipeline's F.pad with a signed amount)."""
    channels = states.shape[-1]
    if width <= channels:
        return states[..., :width]
    return nn.functional.pad(states, (0, width - channels))


class SD3TextSignature(nn.Module):
    """tokens, tokens_2 (1, 77) int32 [, tokens_3 (1, R) int32] -> context (1, 77 + R, J), pooled (1, P1 + P2)."""

    def __init__(self, encoders: nn.ModuleDict, joint_dim: int, t5_rows: int) -> None:
        super().__init__()
        self.first = encoders["text_encoder"]
        self.second = encoders["text_encoder_2"]
        self.third = encoders["text_encoder_3"] if "text_encoder_3" in encoders else None
        self.joint_dim = joint_dim
        self.t5_rows = t5_rows

    def forward(self, tokens: torch.Tensor, tokens_2: torch.Tensor,
                tokens_3: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        first = self.first(input_ids=tokens, output_hidden_states=True)
        second = self.second(input_ids=tokens_2, output_hidden_states=True)
        clip = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)  # (1, 77, C1 + C2)
        if self.third is not None:
            t5 = self.third(input_ids=tokens_3)[0]  # (1, R, J), no attention mask (as the pipeline)
        else:
            t5 = torch.zeros(1, self.t5_rows, self.joint_dim, dtype=clip.dtype)
        context = torch.cat([_fit_width(clip, self.joint_dim), t5], dim=1)
        return {"context": context, "pooled": torch.cat([first.text_embeds, second.text_embeds], dim=-1)}


class SD3DenoiseSignature(nn.Module):
    """latent (1, C, h, w), t (1,) = sigma, context (1, L, J), pooled (1, P) -> prediction (the flow velocity)."""

    def __init__(self, transformer: nn.Module, timesteps: int) -> None:
        super().__init__()
        self.transformer = transformer
        self.timesteps = float(timesteps)

    def forward(self, latent: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.transformer(hidden_states=latent, timestep=t * self.timesteps, encoder_hidden_states=context,
                               pooled_projections=pooled, return_dict=False)[0]
        return {"prediction": out}


@torch.no_grad()
def reference_sd3_text(encoders: nn.ModuleDict, inputs: dict[str, np.ndarray], joint_dim: int,
                       t5_rows: int) -> dict[str, np.ndarray]:
    """The pipeline's `encode_prompt`: int64 ids, CLIP penultimate states padded by F.pad, T5 rows or zeros."""
    first = encoders["text_encoder"](_tensor(inputs["tokens"]).long(), output_hidden_states=True)
    second = encoders["text_encoder_2"](_tensor(inputs["tokens_2"]).long(), output_hidden_states=True)
    clip = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
    if "text_encoder_3" in encoders:
        t5 = encoders["text_encoder_3"](_tensor(inputs["tokens_3"]).long())[0]
    else:
        t5 = torch.zeros(1, t5_rows, joint_dim)
    clip = nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
    return {"context": torch.cat([clip, t5], dim=-2).numpy(),
            "pooled": torch.cat([first[0], second[0]], dim=-1).numpy()}


@torch.no_grad()
def reference_sd3_denoise(transformer: nn.Module, inputs: dict[str, np.ndarray], timesteps: int,
                          uncond: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The pipeline's transformer call: float timestep sigma * T, CFG batch 2 (uncond, cond) -> the conditional half."""
    timestep = torch.tensor([float(inputs["t"][0]) * timesteps], dtype=torch.float32).expand(2)
    latent = _tensor(inputs["latent"])
    pair = {name: torch.cat([_tensor(uncond[name]), _tensor(inputs[name])]) for name in ("context", "pooled")}
    out = transformer(hidden_states=torch.cat([latent, latent]), timestep=timestep,
                      encoder_hidden_states=pair["context"], pooled_projections=pair["pooled"]).sample
    return {"prediction": out[1:].numpy()}

"""Signature wrappers (and the gate's references) for families with two text encoders and pooled conditioning.

SDXL (`Family.SDXL`, docs/DESIGN.md §8):
- `text_encoder`: tokens, tokens_2 (1, L) int32 -> context (1, L, C1 + C2): the penultimate hidden states of
  both CLIP encoders side by side; pooled (1, P): the projected `text_embeds` of the second encoder.
- `denoise`: latent, t = k / T, context, pooled, time_ids (1, 6) -> prediction; the UNet's `text_time` added
  conditions (`added_cond_kwargs`) are `{"text_embeds": pooled, "time_ids": time_ids}`.

The references call the components the way `StableDiffusionXLPipeline` does (int64 ids,
`output_hidden_states=True`, int64 timestep, CFG batch of 2 with the unconditional row first).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


class ClipPairSignature(nn.Module):
    """tokens, tokens_2 (1, L) int32 -> context (1, L, C1 + C2), pooled (1, P)."""

    def __init__(self, encoders: nn.ModuleDict) -> None:
        super().__init__()
        self.first = encoders["text_encoder"]
        self.second = encoders["text_encoder_2"]

    def forward(self, tokens: torch.Tensor, tokens_2: torch.Tensor) -> dict[str, torch.Tensor]:
        first = self.first(input_ids=tokens, output_hidden_states=True).hidden_states[-2]  # (1, L, C1)
        second = self.second(input_ids=tokens_2, output_hidden_states=True)
        return {"context": torch.cat([first, second.hidden_states[-2]], dim=-1), "pooled": second.text_embeds}


class TextTimeDenoiseSignature(nn.Module):
    """latent (1, C, h, w), t (1,) = k / T, context (1, L, Ct), pooled (1, P), time_ids (1, 6) -> prediction."""

    def __init__(self, unet: nn.Module, timesteps: int) -> None:
        super().__init__()
        self.unet = unet
        self.timesteps = float(timesteps)

    def forward(self, latent: torch.Tensor, t: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor,
                time_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.unet(latent, t * self.timesteps, encoder_hidden_states=context,  # float timestep: no int64
                        added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}, return_dict=False)[0]
        return {"prediction": out}


@torch.no_grad()
def reference_clip_pair(encoders: nn.ModuleDict, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The pipeline's `encode_prompt`: int64 ids, penultimate states concatenated, pooled from the second."""
    first = encoders["text_encoder"](_tensor(inputs["tokens"]).long(), output_hidden_states=True)
    second = encoders["text_encoder_2"](_tensor(inputs["tokens_2"]).long(), output_hidden_states=True)
    context = torch.concat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
    return {"context": context.numpy(), "pooled": second[0].numpy()}


@torch.no_grad()
def reference_text_time_denoise(unet: nn.Module, inputs: dict[str, np.ndarray], timesteps: int,
                                uncond: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The pipeline's UNet call: int64 timestep, CFG batch 2 (uncond, cond) -> the conditional half."""
    k = torch.tensor([int(round(float(inputs["t"][0]) * timesteps))], dtype=torch.long)
    latent = _tensor(inputs["latent"])
    pair = {name: torch.cat([_tensor(uncond[name]), _tensor(inputs[name])]) for name in ("context", "pooled")}
    time_ids = _tensor(inputs["time_ids"]).repeat(2, 1)
    out = unet(torch.cat([latent, latent]), k.expand(2), encoder_hidden_states=pair["context"],
               added_cond_kwargs={"text_embeds": pair["pooled"], "time_ids": time_ids}).sample
    return {"prediction": out[1:].numpy()}

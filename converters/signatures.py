"""The bundle's signatures: wrapper modules with named I/O and their seeded example inputs.

Names, shapes and dtypes follow docs/DESIGN.md §1; the runtime and the Kotlin SDK rely on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from banana_sdk.config import ModelConfig
from banana_sdk.models.text_encoder import Lookup
from banana_sdk.sampling.noise import gaussian
from banana_sdk.tokenizer import Tokenizer

GATE_PROMPTS = (  # prompts whose encodings feed the text-encoder gate
    "a small red circle top left and a large blue square bottom right",
    "Pip and Zed on a beach, 🍌 ünïcode",
)


class TextEncoderSignature(nn.Module):
    """The text encoder with its embedding table exported as a one-hot matmul (`Lookup.ONE_HOT`)."""

    def __init__(self, text_encoder: nn.Module) -> None:
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor) -> dict[str, torch.Tensor]:
        context, context_mask = self.text_encoder(tokens, segments, lookup=Lookup.ONE_HOT)
        return {"context": context, "context_mask": context_mask}


class DenoiseSignature(nn.Module):
    def __init__(self, denoiser: nn.Module) -> None:
        super().__init__()
        self.denoiser = denoiser

    def forward(
        self, latent: torch.Tensor, t: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor,
        subjects: torch.Tensor, subject_mask: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        return {"velocity": self.denoiser(latent, t, context, context_mask, subjects, subject_mask)}


class VAEDecodeSignature(nn.Module):
    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image": self.vae.decode(latent).permute(0, 2, 3, 1)}


@dataclass(frozen=True)
class SignatureSpec:
    name: str  # signature key and file stem
    component: str  # BananaModel submodule it wraps
    wrap: Callable[[nn.Module], nn.Module]  # component -> signature module
    inputs: Callable[[ModelConfig, int, int], dict[str, np.ndarray]]  # (config, size, seed) -> example inputs


def text_inputs(config: ModelConfig, size: int, seed: int) -> dict[str, np.ndarray]:
    """Encoded gate prompt (seed picks which), tokens (1, L) int32 and segments (1, L) float32."""
    tok = Tokenizer(config.tokenizer.context_length, config.tokenizer.vocab_size)
    prompt = GATE_PROMPTS[seed % len(GATE_PROMPTS)]
    try:
        enc = tok.encode(prompt)
    except ValueError:
        enc = tok.encode("a red circle")
    return {"tokens": enc.ids[None], "segments": enc.segments[None].astype(np.float32)}


def denoise_inputs(config: ModelConfig, size: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded latent, t = 0.7, unit-variance context with 12 valid tokens, two active subject slots."""
    lat = size // config.downsample
    length, width, slots = config.tokenizer.context_length, config.text.width, config.denoiser.max_subjects
    mask = np.zeros((1, length), np.float32)
    mask[0, : min(12, length)] = 1.0
    subject_mask = np.zeros((1, slots), np.float32)
    subject_mask[0, : min(2, slots)] = 1.0
    return {
        "latent": gaussian(seed, 0, (1, config.vae.latent_channels, lat, lat)),
        "t": np.array([0.7], np.float32),
        "context": gaussian(seed, 1, (1, length, width)),
        "context_mask": mask,
        "subjects": gaussian(seed, 2, (1, slots, width)),
        "subject_mask": subject_mask,
    }


def decode_inputs(config: ModelConfig, size: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded unit-variance latent for the image size."""
    lat = size // config.downsample
    return {"latent": gaussian(seed, 3, (1, config.vae.latent_channels, lat, lat))}


SIGNATURES: dict[str, SignatureSpec] = {
    "text_encoder": SignatureSpec("text_encoder", "text_encoder", TextEncoderSignature, text_inputs),
    "denoise": SignatureSpec("denoise", "denoiser", DenoiseSignature, denoise_inputs),
    "vae_decode": SignatureSpec("vae_decode", "vae", VAEDecodeSignature, decode_inputs),
}


def torch_outputs(module: nn.Module, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a signature module eagerly in fp32 on numpy inputs."""
    with torch.no_grad():
        out = module(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()})
    return {k: v.detach().float().numpy() for k, v in out.items()}

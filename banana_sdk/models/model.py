"""The Nano-Banana model: text encoder + denoiser + VAE, built from one `ModelConfig`.

Each component is built under its own seed (`seed * 16 + index`), so one component can be built alone
(the converter builds, exports and frees them one at a time) with exactly the weights it has in the
full model.
"""

from __future__ import annotations

import torch
from torch import nn

from banana_sdk.config import ModelConfig
from banana_sdk.models.denoiser import Denoiser
from banana_sdk.models.subject_encoder import SubjectEncoder
from banana_sdk.models.text_encoder import TextEncoder
from banana_sdk.models.vae import VAE

COMPONENTS = ("text_encoder", "denoiser", "vae")  # submodule names, in pipeline order
PARTS = (*COMPONENTS, "subject_encoder")  # everything a checkpoint may hold (the last is host-only, optional)


def _make(config: ModelConfig, name: str) -> nn.Module:
    if name == "text_encoder":
        return TextEncoder(config.text, config.tokenizer)
    if name == "denoiser":
        return Denoiser(config.denoiser, config.vae.latent_channels, config.text.width)
    if name == "vae":
        return VAE(config.vae)
    if name == "subject_encoder":
        if config.subject_encoder is None:
            raise ValueError(f"model {config.name!r} has no subject encoder")
        return SubjectEncoder(config.subject_encoder, config.text.width)
    raise ValueError(f"unknown component {name!r}; choose from {PARTS}")


def build_component(
    config: ModelConfig, name: str, device: str | torch.device = "cpu", seed: int = 0
) -> nn.Module:
    """One component with seeded random weights ("meta" allocates nothing), in eval mode."""
    if str(device) == "meta":
        with torch.device("meta"):
            return _make(config, name).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 16 + PARTS.index(name))
        return _make(config, name).to(device).eval()


class BananaModel(nn.Module):
    def __init__(self, config: ModelConfig, device: str | torch.device = "cpu", seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.text_encoder: TextEncoder = build_component(config, "text_encoder", device, seed)
        self.denoiser: Denoiser = build_component(config, "denoiser", device, seed)
        self.vae: VAE = build_component(config, "vae", device, seed)
        self.subject_encoder: SubjectEncoder | None = None  # host-side only: not a bundle signature
        if config.subject_encoder is not None:
            self.subject_encoder = build_component(config, "subject_encoder", device, seed)


def build_model(config: ModelConfig, device: str | torch.device = "cpu", seed: int = 0) -> BananaModel:
    """A model with seeded random weights on `device` ("meta" allocates nothing), in eval mode."""
    return BananaModel(config, device, seed).eval()

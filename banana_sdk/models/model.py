"""The Nano-Banana model: text encoder + denoiser + VAE, built from one `ModelConfig`."""

from __future__ import annotations

import torch
from torch import nn

from banana_sdk.config import ModelConfig
from banana_sdk.models.denoiser import Denoiser
from banana_sdk.models.text_encoder import TextEncoder
from banana_sdk.models.vae import VAE

COMPONENTS = ("text_encoder", "denoiser", "vae")  # submodule names, in pipeline order


class BananaModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.text_encoder = TextEncoder(config.text, config.tokenizer)
        self.denoiser = Denoiser(config.denoiser, config.vae.latent_channels, config.text.width)
        self.vae = VAE(config.vae)


def build_model(config: ModelConfig, device: str | torch.device = "cpu", seed: int = 0) -> BananaModel:
    """A model with seeded random weights on `device` ("meta" allocates nothing)."""
    if str(device) == "meta":
        with torch.device("meta"):
            return BananaModel(config).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BananaModel(config).to(device).eval()

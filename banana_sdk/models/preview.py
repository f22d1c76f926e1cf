"""The preview decoder: a small convolutional decoder distilled from a model's VAE decoder (the TAESD idea).

In live mode at 1 denoising step the VAE decoder, not the denoiser, sets the frame rate. The preview decoder
takes the same input as `vae_decode` (the *scaled* latent the sampler produces, (B, C, h, w)) and is trained
(`banana_sdk.training.preview`) to reproduce the full decoder's image from it:

    latent (B, C, h, w)
      -> 3x3 conv to channels[0] + ReLU                               at h x w
      -> per level: `blocks[k]` residual blocks (3x3 conv, ReLU, 3x3 conv, + skip, ReLU)
         then (except after the last level) nearest 2x upsampling + 3x3 conv to channels[k+1] + ReLU
      -> 3x3 conv to RGB                                             at (2^(levels-1) h) x (2^(levels-1) w)
    image (B, 3, H, W) in about [-1, 1]

Only ops the GPU delegates take whole: CONV_2D, RELU (fused into the conv), ADD, RESIZE_NEAREST_NEIGHBOR (the
same nearest upsampling the VAE decoder exports). No normalisation layer and no global operation, unlike the VAE
decoder's GroupNorm (converters/preflight/README.md "Rewrites"), so nothing needs a delegate-friendly rewrite.

Weights directory (`banana_sdk/weights/preview/` ships one trained for the demo weights' VAE):
    config.json           {"format": "banana-preview", "schema_version": 1, "preview": {...config...},
                           "vae_sha256": "<the VAE decoder it was distilled from>", "extra": {...training...}}
    preview.safetensors   the state dict (float16 or float32; loaded as float32)
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save
from torch import nn

from banana_sdk.errors import BananaError
from banana_sdk.fileio import atomic_write_bytes, atomic_write_json, read_versioned_json, sha256_file
from banana_sdk.models.weights import load_weights

PREVIEW_FORMAT = "banana-preview"
PREVIEW_SCHEMA_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "preview.safetensors"
PREVIEW_DECODE = "preview_decode"  # the bundle signature (and file stem) that runs it
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "preview"  # shipped, for the demo VAE


class PreviewError(BananaError):
    """A preview decoder that cannot be built, loaded or used with this model (bad config, foreign VAE)."""


@dataclass(frozen=True)
class PreviewDecoderConfig:
    latent_channels: int = 8  # C of the latent it decodes (the model's `vae.latent_channels`)
    channels: tuple[int, ...] = (64, 48, 32, 16)  # feature channels per level, latent resolution first; each
    # ^ level after the first doubles the resolution, so len(channels) - 1 upsamplings (4 levels = 8x)
    blocks: tuple[int, ...] = (2, 1, 1, 0)  # residual blocks (two 3x3 convs each) per level
    out_channels: int = 3  # RGB

    @property
    def upsample(self) -> int:
        """Output pixels per latent pixel along one side."""
        return 2 ** (len(self.channels) - 1)

    def validate(self) -> PreviewDecoderConfig:
        """Return self or raise PreviewError naming the bad field."""
        if not 1 <= self.latent_channels <= 64:
            raise PreviewError(f"preview latent_channels must be 1-64, got {self.latent_channels}")
        if not 1 <= len(self.channels) <= 6 or any(not 1 <= c <= 512 for c in self.channels):
            raise PreviewError(f"preview channels must be 1-6 levels of 1-512, got {list(self.channels)}")
        if len(self.blocks) != len(self.channels) or any(not 0 <= b <= 8 for b in self.blocks):
            raise PreviewError(f"preview blocks must give 0-8 blocks for each of the {len(self.channels)} levels, "
                               f"got {list(self.blocks)}")
        if self.out_channels != 3:
            raise PreviewError(f"preview out_channels must be 3 (RGB), got {self.out_channels}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> PreviewDecoderConfig:
        try:
            fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
            return PreviewDecoderConfig(**fixed).validate()
        except TypeError as exc:
            raise PreviewError(f"invalid preview decoder config {data!r}: {exc}") from None


def tiny_preview_config(latent_channels: int) -> PreviewDecoderConfig:
    """A few-thousand-parameter preview decoder (tests, the `tiny` preset)."""
    return PreviewDecoderConfig(latent_channels=latent_channels, channels=(16, 8, 8, 8), blocks=(1, 0, 0, 0))


class Block(nn.Module):
    """relu(x + conv(relu(conv(x)))): two 3x3 convolutions, no normalisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class PreviewDecoder(nn.Module):
    """scaled latent (B, C, h, w) -> image (B, 3, u*h, u*w) in about [-1, 1], u = `cfg.upsample`."""

    def __init__(self, cfg: PreviewDecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        ch = cfg.channels
        self.conv_in = nn.Conv2d(cfg.latent_channels, ch[0], 3, padding=1)
        self.levels = nn.ModuleList(nn.Sequential(*(Block(c) for c in [ch[k]] * cfg.blocks[k]))
                                    for k in range(len(ch)))
        self.up = nn.ModuleList(nn.Conv2d(ch[k], ch[k + 1], 3, padding=1) for k in range(len(ch) - 1))
        self.conv_out = nn.Conv2d(ch[-1], cfg.out_channels, 3, padding=1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv_in(latent))
        for k, level in enumerate(self.levels):
            h = level(h)
            if k < len(self.up):
                h = F.relu(self.up[k](F.interpolate(h, scale_factor=2.0, mode="nearest")))
        return self.conv_out(h)


def build_preview(cfg: PreviewDecoderConfig | None = None, seed: int = 0) -> PreviewDecoder:
    """A preview decoder with seeded initial weights, in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PreviewDecoder(cfg or PreviewDecoderConfig()).eval()


def vae_identity(vae: nn.Module) -> str:
    """sha256 of what a preview decoder imitates: the VAE decoder's weights (as float32, by sorted name) and
    the latent scale. A preview decoder is valid for any model whose VAE has this identity (the text encoder
    and denoiser may differ: a peel merge or a denoiser fine-tune keeps the latent space)."""
    digest = hashlib.sha256(f"latent_scale={float(vae.cfg.latent_scale)!r}".encode())
    state = vae.decoder.state_dict()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_preview(model: PreviewDecoder, directory: str | Path, vae_sha256: str, extra: dict[str, Any] | None = None,
                 dtype: torch.dtype = torch.float32) -> Path:
    """Write weights (as `dtype`), then config (each atomically) into `directory`."""
    directory = Path(directory)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_FILE, save(state, metadata={"format": PREVIEW_FORMAT}))
    atomic_write_json(directory / CONFIG_FILE, {
        "format": PREVIEW_FORMAT, "schema_version": PREVIEW_SCHEMA_VERSION, "preview": model.cfg.to_dict(),
        "vae_sha256": vae_sha256, "extra": extra or {},
    })
    return directory


def read_preview_config(directory: str | Path) -> tuple[PreviewDecoderConfig, str, dict[str, Any]]:
    """(config, vae_sha256, extra) of a preview directory; PreviewError says what is wrong."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise PreviewError(f"{directory} holds no preview decoder ({CONFIG_FILE} is missing); train one with "
                           "`banana train preview --model MODEL --out DIR`")
    meta = read_versioned_json(path, fmt=PREVIEW_FORMAT, max_version=PREVIEW_SCHEMA_VERSION, error=PreviewError,
                               what="preview decoder config")
    vae = meta.get("vae_sha256")
    if not isinstance(vae, str) or len(vae) != 64:
        raise PreviewError(f"{path}: vae_sha256 must be the 64-digit sha256 of the VAE it was distilled from")
    return PreviewDecoderConfig.from_dict(meta.get("preview") or {}), vae, dict(meta.get("extra") or {})


def load_preview(directory: str | Path = DEFAULT_WEIGHTS) -> PreviewDecoder:
    """The preview decoder saved in `directory` (default: the shipped one), float32, eval mode."""
    directory = Path(directory)
    cfg, _, _ = read_preview_config(directory)
    return load_weights(PreviewDecoder(cfg), directory / WEIGHTS_FILE, PreviewError, str(cfg.to_dict()))


def copy_preview(source: str | Path, target: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write the preview decoder of `source` (a `banana train preview` run) to `target` with weights as `dtype`
    (how the shipped one was made: float16, half the bytes), its VAE identity and training facts kept."""
    _, vae_sha, extra = read_preview_config(source)
    return save_preview(load_preview(source), target, vae_sha, extra, dtype=dtype)


def check_preview_for(directory: str | Path, vae: nn.Module, latent_channels: int, downsample: int) -> str:
    """The preview's vae_sha256 if `directory` holds a preview decoder made for this VAE, else PreviewError."""
    cfg, vae_sha, _ = read_preview_config(directory)
    if cfg.latent_channels != latent_channels or cfg.upsample != downsample:
        raise PreviewError(f"the preview decoder in {directory} decodes {cfg.latent_channels}-channel latents "
                           f"{cfg.upsample}x; this model has {latent_channels} channels, {downsample}x")
    own = vae_identity(vae)
    if vae_sha != own:
        raise PreviewError(f"the preview decoder in {directory} was distilled from another VAE decoder "
                           f"({vae_sha[:12]}, this model's is {own[:12]}); train one for this model with "
                           "`banana train preview --model MODEL --out DIR`")
    return vae_sha


def preview_identity(directory: str | Path) -> str:
    """sha256 of the weights file (recorded in bundle manifests and job keys)."""
    return sha256_file(Path(directory) / WEIGHTS_FILE)

"""The 4x upscaler: a small fully convolutional net, plus its weights directory.

    image (B, 3, H, W) in [-1, 1]
      -> `depth` 3x3 convs + ReLU at input resolution            (receptive radius = depth input pixels)
      -> ConvTranspose2d(kernel = stride = scale): each input pixel paints its own scale x scale block
      +  bilinear upsampling of the input (the net learns only the residual: edges)
      -> image (B, 3, scale*H, scale*W)

No normalisation layer and no global operation, so a tile computes exactly what the whole image computes
wherever the tile edge is further than the receptive radius (the tiling relies on this). It converts to
CONV_2D x depth, TRANSPOSE_CONV, RESIZE_BILINEAR, ADD - all supported by the GPU delegates.

Weights directory (`banana_sdk/weights/upscaler/` ships a trained one):
    config.json            {"format": "banana-upscaler", "schema_version": 1, "upscaler": {...}, "extra": {...}}
    upscaler.safetensors   the state dict (fp32)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save
from torch import nn

from banana_sdk.fileio import atomic_write_bytes, atomic_write_json, read_versioned_json, sha256_file
from banana_sdk.models.weights import load_weights
from banana_sdk.upscale.config import UpscaleError, UpscalerConfig

UPSCALER_FORMAT = "banana-upscaler"
UPSCALER_SCHEMA_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "upscaler.safetensors"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "upscaler"  # the shipped upscaler


class Upscaler(nn.Module):
    """image (B, 3, H, W) -> (B, 3, scale*H, scale*W), both in about [-1, 1]."""

    def __init__(self, cfg: UpscalerConfig) -> None:
        super().__init__()
        self.cfg = cfg.validate()
        c = cfg.channels
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else c, c, 3, padding=1) for i in range(cfg.depth))
        self.to_pixels = nn.ConvTranspose2d(c, 3, kernel_size=cfg.scale, stride=cfg.scale)
        nn.init.zeros_(self.to_pixels.weight)  # starts as plain bilinear upsampling
        nn.init.zeros_(self.to_pixels.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = image
        for conv in self.convs:
            h = F.relu(conv(h))
        base = F.interpolate(image, scale_factor=float(self.cfg.scale), mode="bilinear", align_corners=False)
        return self.to_pixels(h) + base


def build_upscaler(cfg: UpscalerConfig | None = None, seed: int = 0) -> Upscaler:
    """An upscaler with seeded initial weights (the residual head starts at zero), in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Upscaler(cfg or UpscalerConfig()).eval()


def save_upscaler(model: Upscaler, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write weights, then config (each atomically) into `directory`."""
    directory = Path(directory)
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_FILE, save(state, metadata={"format": UPSCALER_FORMAT}))
    atomic_write_json(directory / CONFIG_FILE, {
        "format": UPSCALER_FORMAT, "schema_version": UPSCALER_SCHEMA_VERSION,
        "upscaler": model.cfg.to_dict(), "extra": extra or {},
    })
    return directory


def read_upscaler_config(directory: str | Path) -> tuple[UpscalerConfig, dict[str, Any]]:
    """(config, extra) of an upscaler directory; UpscaleError says what is wrong."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise UpscaleError(f"{directory} holds no upscaler ({CONFIG_FILE} is missing); train one with "
                           "`banana upscale train --out DIR`")
    meta = read_versioned_json(path, fmt=UPSCALER_FORMAT, max_version=UPSCALER_SCHEMA_VERSION, error=UpscaleError,
                               what="upscaler config", require_version=False)
    return UpscalerConfig.from_dict(meta.get("upscaler") or {}), dict(meta.get("extra") or {})


def load_upscaler(directory: str | Path = DEFAULT_WEIGHTS) -> Upscaler:
    """The upscaler saved in `directory` (default: the shipped one), fp32, eval mode."""
    directory = Path(directory)
    cfg, _ = read_upscaler_config(directory)
    return load_weights(Upscaler(cfg), directory / WEIGHTS_FILE, UpscaleError, str(cfg))


def upscaler_identity(directory: str | Path) -> str:
    """sha256 of the weights file (recorded in bundle manifests and job keys)."""
    return sha256_file(Path(directory) / WEIGHTS_FILE)

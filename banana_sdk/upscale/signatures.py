"""The bundle's tile signature: `upscale_tile`, fixed shape, NHWC like `vae_decode`'s output.

| signature      | inputs                          | outputs                                   |
|----------------|---------------------------------|-------------------------------------------|
| `upscale_tile` | `image: [1, T, T, 3] f32`       | `upscaled: [1, s*T, s*T, 3] f32`, about [-1, 1] |

T = the bundle's tile side (manifest `upscale.tile`), s = `upscale.scale`. The app runs it over
overlapping tiles and blends them (`banana_sdk.upscale.tiling` is the reference implementation).
This module mirrors `converters/signatures.py`: a wrapper module, seeded example inputs, a spec list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from banana_sdk.data.render import render_scene
from banana_sdk.data.world import DEMO_WORLD, sample_scene
from banana_sdk.upscale.config import TileConfig
from banana_sdk.upscale.model import Upscaler, load_upscaler

UPSCALE_TILE = "upscale_tile"  # signature key and file stem
EXAMPLE_WORLD_SEED = 4_242  # ShapeWorld seed of the example tiles (a scene crop is a realistic gate input)


class UpscaleTileSignature(nn.Module):
    """NHWC in, NHWC out (the permutes fold into the converted graph: no TRANSPOSE ops remain)."""

    def __init__(self, upscaler: Upscaler) -> None:
        super().__init__()
        self.upscaler = upscaler

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"upscaled": self.upscaler(image.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)}


def tile_inputs(tiles: TileConfig, seed: int) -> dict[str, np.ndarray]:
    """A (1, T, T, 3) float32 crop of a rendered ShapeWorld scene in [-1, 1] (seed picks scene and crop)."""
    side = max(128, tiles.tile)
    image = render_scene(sample_scene(DEMO_WORLD, EXAMPLE_WORLD_SEED, seed), side)
    rng = np.random.default_rng(seed)
    y, x = rng.integers(0, side - tiles.tile + 1, size=2)
    crop = image[y:y + tiles.tile, x:x + tiles.tile].astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return {"image": np.ascontiguousarray(crop[None])}


@dataclass(frozen=True)
class TileSignatureSpec:
    name: str  # signature key and file stem
    load: Callable[[], nn.Module]  # the bare component (the upscaler)
    wrap: Callable[[nn.Module], nn.Module]  # component -> signature module
    inputs: Callable[[int], dict[str, np.ndarray]]  # seed -> example inputs (export trace and gate)


def tile_signature_specs(upscaler_dir: str | Path, tiles: TileConfig) -> list[TileSignatureSpec]:
    """The tile signatures a bundle with 4K output carries (today: `upscale_tile`)."""
    upscaler_dir = Path(upscaler_dir)
    tiles.validate(load_upscaler(upscaler_dir).cfg)  # refuse a tiling that would not match untiled
    return [TileSignatureSpec(
        name=UPSCALE_TILE, load=lambda: load_upscaler(upscaler_dir), wrap=UpscaleTileSignature,
        inputs=lambda seed: tile_inputs(tiles, seed),
    )]

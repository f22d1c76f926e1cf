"""Run a bundle's tile signature on this host: the manifest's `upscale` section and `LiteRTTileRunner`.

The section (written by `converters.tiles`) tells a runtime how to tile and blend:

    "upscale": {"signature": "upscale_tile", "scale": 4, "tile": 80, "overlap": 16, "margin": 4,
                "stride": 64, "blend": "separable-linear-ramp", "base_size": 128, "max_size": 4096,
                "sizes": [256, 512, 1024, 2048, 4096], "upscaler": {"config": {...}, "weights_sha256": "..."}}

`LiteRTTileRunner` runs `upscale_tile` with ai-edge-litert and plugs into `banana_sdk.upscale.chain`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from banana_sdk.bundle.reader import load_manifest
from banana_sdk.errors import BundleError, ConfigError
from banana_sdk.upscale.config import TileConfig, UpscaleError, UpscalerConfig
from banana_sdk.upscale.signatures import UPSCALE_TILE

UPSCALE_SECTION = "upscale"  # manifest key
BLEND = "separable-linear-ramp"  # the blend `banana_sdk.upscale.tiling` implements


def bundle_tiles(manifest: dict[str, Any], bundle: Path | str = "bundle") -> tuple[TileConfig, int]:
    """(tile config, scale) from a manifest; BundleError if the bundle has no tile signature."""
    section = manifest.get(UPSCALE_SECTION)
    if not isinstance(section, dict) or UPSCALE_TILE not in manifest.get("signatures", {}):
        raise BundleError(f"{bundle} has no {UPSCALE_TILE} signature, so it cannot upscale; convert it again "
                          "with the upscaler (tile signatures) to generate above its base size")
    try:  # validated against the upscaler's receptive radius, as the app does (tiles must match untiled)
        upscaler = UpscalerConfig.from_dict(section["upscaler"]["config"])
        return TileConfig.from_dict(section).validate(upscaler), int(section["scale"])
    except (UpscaleError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle}: manifest section {UPSCALE_SECTION!r} is invalid ({exc})") from None


class LiteRTTileRunner:
    """A `banana_sdk.upscale.chain.TileRunner` over a bundle's `upscale_tile` signature (ai-edge-litert)."""

    def __init__(self, path: Path, tiles: TileConfig, scale: int, threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {threads}")
        self.tiles, self.scale = tiles, scale
        try:
            self._runner = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner(UPSCALE_TILE)
        except (RuntimeError, ValueError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise BundleError(f"{path}: LiteRT cannot load it ({first_line})") from None

    @classmethod
    def from_bundle(cls, bundle: str | Path, threads: int = 2) -> LiteRTTileRunner:
        bundle = Path(bundle)
        manifest = load_manifest(bundle)
        tiles, scale = bundle_tiles(manifest, bundle)
        return cls(bundle / manifest["signatures"][UPSCALE_TILE]["file"], tiles, scale, threads)

    def __call__(self, tile: np.ndarray) -> np.ndarray:
        return np.array(self._runner(image=np.ascontiguousarray(tile, dtype=np.float32))["upscaled"])

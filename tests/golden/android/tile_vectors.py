"""Golden vectors for tiled upscaling (`tiles.json`): tile grid, blend weights, pass chain, blending, refusals.

Everything comes from the real Python code: `banana_sdk.upscale.config` (TileConfig validation and side
checks, default_tiles), `banana_sdk.upscale.tiling` (tile_starts, axis_weights, tiled_apply),
`banana_sdk.upscale.chain` (plan_chain, reachable_sizes, box_down2) and `converters.tiles.upscale_manifest`
(the manifest section). Weights are computed in float64 and cast once, so they match exactly; the blend
accumulates in float32 in the same order, so it matches exactly too; the 2x2 box mean allows 1e-6.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from golden_util import f32_list

from banana_sdk.upscale.chain import box_down2, plan_chain, reachable_sizes
from banana_sdk.upscale.config import TileConfig, UpscaleError, UpscalerConfig, default_tiles
from banana_sdk.upscale.model import DEFAULT_WEIGHTS
from banana_sdk.upscale.tiling import axis_weights, tile_count, tile_starts, tiled_apply

CONFIGS = [TileConfig(80, 16, 4), TileConfig(48, 16, 4), TileConfig(12, 4, 1)]
SIDES = [12, 16, 24, 32, 48, 64, 80, 96, 100, 128, 192, 256, 1024, 1000, 0, -64]
WEIGHT_CASES = [(0, 128, 4), (0, 256, 4), (0, 192, 4), (1, 96, 2), (2, 24, 2), (2, 40, 3)]
BAD_CONFIGS = [(80, 15, 4), (80, 0, 0), (16, 16, 4), (80, 16, 8), (80, 16, -1), (80, 16, 3)]
CHAINS = [(128, 128), (128, 256), (128, 512), (128, 1024), (128, 2048), (128, 4096), (128, 384), (128, 8192),
          (128, 64), (64, 256), (64, 4096), (64, 128), (96, 384), (96, 192), (100, 400)]
BLEND_TILES = TileConfig(12, 4, 1)
BLEND_SCALE = 2
BOX_TOLERANCE = 1e-6


def _tile_fn(tile: np.ndarray) -> np.ndarray:
    """A stand-in upscaler the Kotlin test mirrors: nearest-neighbour x2 plus 0.01 per output row of the tile
    (depends on the position inside the tile, so the blend weights show in the result)."""
    up = np.repeat(np.repeat(tile, BLEND_SCALE, axis=1), BLEND_SCALE, axis=2)
    ramp = np.arange(up.shape[1], dtype=np.float32) * np.float32(0.01)
    return (up + ramp[None, :, None, None]).astype(np.float32)


def _error(fn: Any) -> str | None:
    try:
        fn()
    except UpscaleError as exc:
        return str(exc)
    return None


def tile_vectors() -> dict[str, Any]:
    from converters.tiles import upscale_manifest

    starts = []
    for k, cfg in enumerate(CONFIGS):
        for side in SIDES:
            message = _error(lambda cfg=cfg, side=side: tile_starts(side, cfg))
            if message is None:
                starts.append({"config": k, "side": side, "starts": tile_starts(side, cfg),
                               "count": tile_count(side, side, cfg)})
            else:
                starts.append({"config": k, "side": side, "error": message})
    weights = [{"config": k, "side": side, "scale": scale,
                "windows": [{"out_start": start, "weights": f32_list(w)} for start, w in
                            axis_weights(side, CONFIGS[k], scale)]} for k, side, scale in WEIGHT_CASES]
    invalid = []
    for tile, overlap, margin in BAD_CONFIGS:
        invalid.append({"tile": tile, "overlap": overlap, "margin": margin,
                        "message": _error(lambda t=tile, o=overlap, m=margin: TileConfig(t, o, m).validate())})
    radius = {"tile": 80, "overlap": 16, "margin": 3, "receptive_radius": UpscalerConfig().receptive_radius,
              "message": _error(lambda: TileConfig(80, 16, 3).validate(UpscalerConfig()))}
    chains = []
    for base, target in CHAINS:
        tiles = default_tiles(base) if _error(lambda base=base: default_tiles(base)) is None else CONFIGS[0]
        case: dict[str, Any] = {"base": base, "target": target, "tiles": tiles.to_dict(), "scale": 4,
                                "reachable": reachable_sizes(base, tiles, 4)}
        message = _error(lambda b=base, t=target, c=tiles: plan_chain(b, t, c, 4))
        if message is None:
            case["steps"] = [[s.kind.value, s.in_size, s.out_size] for s in plan_chain(base, target, tiles, 4)]
        else:
            case["error"] = message
        chains.append(case)
    defaults = []
    for base in (32, 48, 64, 96, 100, 128, 192, 512):
        message = _error(lambda b=base: default_tiles(b))
        defaults.append({"base": base, **({"error": message} if message else {"tiles": default_tiles(base).to_dict()})})
    rng = np.random.default_rng(3)
    image = rng.uniform(-1, 1, (24, 16, 3)).astype(np.float32)
    blended = tiled_apply(image, _tile_fn, BLEND_TILES, BLEND_SCALE)
    box_in = rng.uniform(-1, 1, (6, 4, 3)).astype(np.float32)
    return {
        "about": "tile grid, blend weights (exact), pass chain and refusals of banana_sdk.upscale; tiled_apply "
                 "with a stand-in tile function (exact); box_down2 within box_tolerance",
        "configs": [c.to_dict() for c in CONFIGS],
        "starts": starts,
        "axis_weights": weights,
        "invalid_configs": invalid,
        "receptive_radius": radius,
        "chains": chains,
        "default_tiles": defaults,
        "blend": {"tiles": BLEND_TILES.to_dict(), "scale": BLEND_SCALE, "height": 24, "width": 16,
                  "image": f32_list(image), "tile_fn": "nearest x2 + 0.01 * output row inside the tile",
                  "out": f32_list(blended)},
        "box_down2": {"height": 6, "width": 4, "image": f32_list(box_in), "out": f32_list(box_down2(box_in)),
                      "tolerance": BOX_TOLERANCE},
        "manifest_section": upscale_manifest(DEFAULT_WEIGHTS, default_tiles(128), 128),
    }

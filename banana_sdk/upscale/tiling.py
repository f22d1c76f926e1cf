"""Tiled upscaling: fixed-shape overlapping tiles, blended with separable linear ramps.

For one axis of side N (a multiple of the stride S = tile - overlap, N >= tile), tile k's window starts at
k * S - overlap / 2, clamped into [0, N - tile], so border tiles sit on the image edge (their zero padding
is the image's) and every core [k S, (k + 1) S) lies at least overlap / 2 from an inner window edge.

Blend weight of a tile along one axis, at output position X (input coordinate u = (X + 0.5) / scale):
    0                          within `margin` of an inner window edge (padding-affected pixels),
    linear ramp 0 -> 1         over the next overlap - 2 * margin input pixels,
    1                          elsewhere; image-border edges get no ramp.
The 2-D weight is the product of the two axes' weights, normalised by the per-axis sums (the sum of
products of a grid is the product of sums), so the weights of all tiles add up to 1 everywhere. With a
margin >= the upscaler's receptive radius every blended value equals the untiled result: tiling changes
memory, not pixels. Memory: one input tile, one output tile and the output canvas.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from banana_sdk.upscale.config import TileConfig, UpscaleError

TileFn = Callable[[np.ndarray], np.ndarray]  # (1, tile, tile, 3) float32 -> (1, s*tile, s*tile, 3) float32


def tile_starts(side: int, cfg: TileConfig) -> list[int]:
    """Window starts along one axis of `side` input pixels (validated)."""
    cfg.check_side(side)
    half = cfg.overlap // 2
    starts = [min(max(k * cfg.stride - half, 0), side - cfg.tile) for k in range(side // cfg.stride)]
    return list(dict.fromkeys(starts))  # a side of exactly one tile has one window


def _ramp_weights(side: int, cfg: TileConfig, scale: int) -> list[np.ndarray]:
    """Unnormalised 1-D weights over each window's output positions (length tile * scale)."""
    u = (np.arange(cfg.tile * scale, dtype=np.float64) + 0.5) / scale  # input coordinate within the window
    ramp = float(cfg.overlap - 2 * cfg.margin)
    weights = []
    for start in tile_starts(side, cfg):
        w = np.ones_like(u)
        if start > 0:  # inner left/top edge
            w *= np.clip((u - cfg.margin) / ramp, 0.0, 1.0)
        if start + cfg.tile < side:  # inner right/bottom edge
            w *= np.clip((cfg.tile - cfg.margin - u) / ramp, 0.0, 1.0)
        weights.append(w)
    return weights


def axis_weights(side: int, cfg: TileConfig, scale: int) -> list[tuple[int, np.ndarray]]:
    """[(output start, normalised float32 weights)] per window along one axis; the weights sum to 1."""
    starts = tile_starts(side, cfg)
    raw = _ramp_weights(side, cfg, scale)
    total = np.zeros(side * scale, dtype=np.float64)
    for start, w in zip(starts, raw, strict=True):
        total[start * scale:(start + cfg.tile) * scale] += w
    if total.min() <= 0:  # cannot happen for a validated config; guards future edits
        raise UpscaleError(f"tile config {cfg} leaves output pixels without weight at side {side}")
    return [(start * scale, (w / total[start * scale:(start + cfg.tile) * scale]).astype(np.float32))
            for start, w in zip(starts, raw, strict=True)]


def tile_count(height: int, width: int, cfg: TileConfig) -> int:
    """How many tiles an image of this size takes."""
    return len(tile_starts(height, cfg)) * len(tile_starts(width, cfg))


def tiled_apply(image: np.ndarray, fn: TileFn, cfg: TileConfig, scale: int,
                out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) float32 -> (scale H, scale W, 3) float32 by running `fn` on every tile and blending.

    `out` (optional) is a preallocated output buffer; it is overwritten.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise UpscaleError(f"expected an (H, W, 3) image, got shape {image.shape}")
    height, width = image.shape[:2]
    rows, cols = axis_weights(height, cfg, scale), axis_weights(width, cfg, scale)
    out_tile = cfg.tile * scale
    if out is None:
        out = np.zeros((height * scale, width * scale, 3), dtype=np.float32)
    else:
        out[...] = 0.0
    for y0, wy in rows:
        y = y0 // scale
        for x0, wx in cols:
            x = x0 // scale
            tile = np.ascontiguousarray(image[y:y + cfg.tile, x:x + cfg.tile], dtype=np.float32)[None]
            result = fn(tile)
            if result.shape != (1, out_tile, out_tile, 3):
                raise UpscaleError(f"tile function returned {result.shape}, expected (1, {out_tile}, {out_tile}, 3)")
            out[y0:y0 + out_tile, x0:x0 + out_tile] += result[0] * (wy[:, None, None] * wx[None, :, None])
    return out


def overlap_mask(side: int, cfg: TileConfig, scale: int) -> np.ndarray:
    """(side * scale,) bool: output positions covered by two or more tile windows (where seams could be)."""
    cover = np.zeros(side * scale, dtype=np.int32)
    for start in tile_starts(side, cfg):
        cover[start * scale:(start + cfg.tile) * scale] += 1
    return cover >= 2

"""Configs of the 4x upscaler and of its tiling, and the one error type of this layer.

Tiling (all sizes in *input* pixels of one upscaling pass):

    tile     the fixed side of the `upscale_tile` signature's input (delegate-friendly: one shape)
    overlap  pixels shared by neighbouring tiles; stride = tile - overlap
    margin   pixels next to a tile edge inside the image that the blend ignores (weight 0): the upscaler's
             receptive radius, so every pixel that is blended is exactly what an untiled pass computes

An image side must be a multiple of the stride and at least one tile: tile k covers the core
[k * stride, (k + 1) * stride) plus overlap / 2 on each side, shifted inwards at the image border.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from banana_sdk.errors import BananaError

MAX_SIZE = 4096  # the largest output side `generate --size` accepts (the product's 4K)


class UpscaleError(BananaError):
    """An upscaling request that cannot run: unreachable size, bad tiling, missing or foreign weights."""


@dataclass(frozen=True)
class UpscalerConfig:
    scale: int = 4  # output pixels per input pixel along one side
    channels: int = 32  # feature channels of the hidden 3x3 convolutions
    depth: int = 4  # 3x3 convolutions at input resolution (each widens the receptive field by one pixel)

    @property
    def receptive_radius(self) -> int:
        """Input pixels on each side that one output block depends on (convs; the bilinear skip needs 1)."""
        return max(self.depth, 1)

    def validate(self) -> UpscalerConfig:
        if self.scale not in (2, 4):
            raise UpscaleError(f"upscaler scale must be 2 or 4, got {self.scale}")
        if not 1 <= self.depth <= 16 or not 4 <= self.channels <= 256:
            raise UpscaleError(f"upscaler depth must be 1-16 and channels 4-256, got {self.depth}, {self.channels}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> UpscalerConfig:
        try:
            return UpscalerConfig(**data).validate()
        except TypeError as exc:
            raise UpscaleError(f"invalid upscaler config {data!r}: {exc}") from None


@dataclass(frozen=True)
class TileConfig:
    tile: int = 80  # input side of one tile (the tile signature's fixed input shape)
    overlap: int = 16  # input pixels shared by neighbouring tiles (even)
    margin: int = 4  # input pixels at an inner tile edge that get zero blend weight (>= receptive radius)

    @property
    def stride(self) -> int:
        """Distance between tile cores; image sides must be multiples of it."""
        return self.tile - self.overlap

    def validate(self, upscaler: UpscalerConfig | None = None) -> TileConfig:
        """Return self, or raise UpscaleError naming the bad field."""
        if self.overlap % 2 or self.overlap < 2 or self.tile <= self.overlap:
            raise UpscaleError(f"tile overlap must be even, >= 2 and < tile, got tile {self.tile}, "
                               f"overlap {self.overlap}")
        if not 0 <= self.margin < self.overlap // 2:
            raise UpscaleError(f"tile margin must be in [0, overlap / 2), got {self.margin} for overlap "
                               f"{self.overlap}: widen the overlap")
        if upscaler is not None and self.margin < upscaler.receptive_radius:
            raise UpscaleError(f"tile margin {self.margin} is below the upscaler's receptive radius "
                               f"{upscaler.receptive_radius}: tiles would not match an untiled pass")
        return self

    def check_side(self, side: int, what: str = "image") -> None:
        """Raise UpscaleError unless `side` can be tiled (a multiple of the stride, at least one tile)."""
        if not isinstance(side, int) or side < self.tile or side % self.stride:
            first = -(-self.tile // self.stride) * self.stride
            raise UpscaleError(f"{what} side {side} must be a multiple of the tile stride {self.stride} and at "
                               f"least one tile ({self.tile} px): {first}, {first + self.stride}, ...")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "stride": self.stride}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> TileConfig:
        try:
            return TileConfig(tile=int(data["tile"]), overlap=int(data["overlap"]), margin=int(data["margin"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UpscaleError(f"invalid tile config {data!r}: {exc}") from None


def default_tiles(base_size: int) -> TileConfig:
    """The tile config for a model of `base_size` pixels: stride 64 (tile 80) when the base allows, else 32."""
    for tile in (TileConfig(80, 16, 4), TileConfig(48, 16, 4)):
        if base_size >= tile.tile and base_size % tile.stride == 0:
            return tile
    raise UpscaleError(f"no tile config fits a {base_size} px base image (need a multiple of 32, >= 48)")

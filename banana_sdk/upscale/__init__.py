"""4K output: a small 4x upscaler trained on ShapeWorld, run as fixed-shape overlapping tiles.

`generate_4k(pipe, prompt, 4096)` generates at the model's base size and upscales through the tiled chain
(`chain.py` says why this chain); `tiling.py` is the reference tiling/blending every runtime follows.
"""

from banana_sdk.upscale.chain import (
    ChainStep,
    StepKind,
    TorchTileRunner,
    UpscaledGeneration,
    generate_4k,
    generate_upscaled,
    plan_chain,
    reachable_sizes,
    torch_runner,
    upscale_image,
)
from banana_sdk.upscale.config import MAX_SIZE, TileConfig, UpscaleError, UpscalerConfig, default_tiles
from banana_sdk.upscale.model import DEFAULT_WEIGHTS, Upscaler, build_upscaler, load_upscaler, save_upscaler
from banana_sdk.upscale.tiling import tiled_apply

__all__ = [
    "DEFAULT_WEIGHTS", "MAX_SIZE", "ChainStep", "StepKind", "TileConfig", "TorchTileRunner", "UpscaleError",
    "UpscaledGeneration", "Upscaler", "UpscalerConfig", "build_upscaler", "default_tiles", "generate_4k",
    "generate_upscaled", "load_upscaler", "plan_chain", "reachable_sizes", "save_upscaler", "tiled_apply",
    "torch_runner", "upscale_image",
]

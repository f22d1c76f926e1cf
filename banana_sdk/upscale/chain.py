"""From the base image to 4K: the chain of tiled 4x passes, and `generate_upscaled` (prompt -> 4096 px).

Why this chain: the model generates and its VAE decodes at the base size (128 px for `demo`), untiled: the
decoder's GroupNorm statistics span the whole image, so decoder tiles would never match an untiled decode
and would seam, while at the base size it costs what the bundle's `vae_decode` already costs. All growth
past the base is done by the upscaler, which has no global operation, so its fixed-shape tiles reproduce
an untiled pass exactly. From base B to target N = B * 2^k:
    k even:  k/2 passes of 4x                                   (64 -> 256 -> 1024 -> 4096)
    k odd:   one 4x pass box-filtered 2x down (a supersampled 2x), then (k-1)/2 passes of 4x
             (128 -> 512 -> 256 -> 1024 -> 4096;  512 -> 2048 -> 1024 -> 4096)
The odd step goes first, where the image is smallest (cheap), and its 2x box filter turns a 4x output
back into exactly the kind of anti-aliased image the upscaler was trained on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image

from banana_sdk.pipeline import Backend, Generation, generate_with
from banana_sdk.upscale.config import MAX_SIZE, TileConfig, UpscaleError
from banana_sdk.upscale.model import Upscaler
from banana_sdk.upscale.tiling import tiled_apply


class StepKind(str, Enum):
    UP = "up"  # one tiled pass: x scale
    UP_HALF = "up_half"  # one tiled pass, then a 2x2 box filter: x scale / 2 (supersampled)


@dataclass(frozen=True)
class ChainStep:
    kind: StepKind  # what the pass does
    in_size: int  # input side in pixels
    out_size: int  # output side after the pass


class TileRunner(Protocol):
    """Runs the `upscale_tile` signature: (1, tile, tile, 3) float32 -> (1, scale*tile, scale*tile, 3)."""

    tiles: TileConfig
    scale: int

    def __call__(self, tile: np.ndarray) -> np.ndarray: ...


class TorchTileRunner:
    """A `TileRunner` over an eager `Upscaler` (fp32, no grad)."""

    def __init__(self, model: Upscaler, tiles: TileConfig) -> None:
        self.model = model.eval()
        self.scale = model.cfg.scale
        self.tiles = tiles.validate(model.cfg)

    @torch.no_grad()
    def __call__(self, tile: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tile)).permute(0, 3, 1, 2)
        return self.model(x).permute(0, 2, 3, 1).contiguous().numpy()


def _step_sizes(base: int, target: int, scale: int) -> list[tuple[StepKind, int, int]]:
    """[(kind, in, out)] from base to target = base * 2^k (ValueError if target is not that)."""
    if base <= 0 or target % base or (target // base) & (target // base - 1):
        raise ValueError
    k = int(math.log2(target // base))
    per = int(math.log2(scale))  # doublings per pass: 2 for the 4x upscaler, 1 for a 2x one
    steps, size = [], base
    if k % per:  # odd number of doublings with a 4x upscaler: one supersampled 2x pass first
        steps.append((StepKind.UP_HALF, size, size * scale // 2))
        size, k = size * scale // 2, k - 1
    for _ in range(k // per):
        steps.append((StepKind.UP, size, size * scale))
        size *= scale
    return steps


def _try_plan(base: int, target: int, tiles: TileConfig, scale: int) -> tuple[list, str | None]:
    """(steps, None) or ([], what is wrong)."""
    if not isinstance(target, int) or isinstance(target, bool) or target > MAX_SIZE or target < base:
        return [], f"must be between the base {base} and {MAX_SIZE}"
    try:
        steps = _step_sizes(base, target, scale)
    except ValueError:
        return [], "is not the base size times a power of two"
    for _, side, _ in steps:
        try:
            tiles.check_side(side, "an upscaling pass's input")
        except UpscaleError as exc:
            return [], f"needs {exc}"
    return steps, None


def reachable_sizes(base: int, tiles: TileConfig, scale: int = 4) -> list[int]:
    """Output sides the chain reaches from `base` with these tiles (up to MAX_SIZE)."""
    sizes = [base * 2**k for k in range(1, 13) if base * 2**k <= MAX_SIZE]
    return [s for s in sizes if _try_plan(base, s, tiles, scale)[1] is None]


def plan_chain(base: int, target: int, tiles: TileConfig, scale: int = 4) -> tuple[ChainStep, ...]:
    """The passes from a `base` px image to `target` px; UpscaleError lists the reachable sizes."""
    if target == base:
        return ()
    steps, problem = _try_plan(base, target, tiles, scale)
    if problem is not None:
        raise UpscaleError(f"size {target} {problem}; from a {base} px image choose one of "
                           f"{reachable_sizes(base, tiles, scale)}")
    return tuple(ChainStep(kind, a, b) for kind, a, b in steps)


def box_down2(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H/2, W/2, 3): mean of each 2x2 block."""
    h, w, c = image.shape
    return image.reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3), dtype=np.float32)


def upscale_image(image: np.ndarray, target: int, runner: TileRunner,
                  on_step: list[float] | None = None) -> np.ndarray:
    """(B, B, 3) float32 in [-1, 1] -> (target, target, 3) float32 through the tiled chain.

    `on_step`, if given, receives each pass's wall time in ms.
    """
    if image.ndim != 3 or image.shape[0] != image.shape[1] or image.shape[2] != 3:
        raise UpscaleError(f"expected a square (S, S, 3) image, got {image.shape}")
    steps = plan_chain(image.shape[0], target, runner.tiles, runner.scale)
    x = image.astype(np.float32, copy=False)
    for step in steps:
        start = time.perf_counter()
        x = tiled_apply(x, runner, runner.tiles, runner.scale)
        if step.kind is StepKind.UP_HALF:
            x = box_down2(x)
        if on_step is not None:
            on_step.append((time.perf_counter() - start) * 1e3)
    return x


def pil_to_float(image: Image.Image) -> np.ndarray:
    """RGB PIL image -> (H, W, 3) float32 in [-1, 1] (the inverse of DESIGN §4 up to rounding)."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(127.5) - np.float32(1.0)


def float_to_pil_inplace(image: np.ndarray) -> Image.Image:
    """`imageio.to_pil` (DESIGN §4 rounding) for a large float32 (H, W, 3) array, reusing its memory: a 4K
    image would otherwise need three more 200 MB temporaries. `image` is clobbered."""
    image += np.float32(1.0)
    image *= np.float32(127.5)
    image += np.float32(0.5)
    np.floor(image, out=image)
    np.clip(image, 0, 255, out=image)
    return Image.fromarray(image.astype(np.uint8), mode="RGB")


@dataclass
class UpscaledGeneration:
    image: Image.Image  # the RGB result at the requested size
    base: Generation  # the base-size generation (its image, latent and timings)
    chain: tuple[ChainStep, ...]  # the passes that were run
    pass_ms: list[float] = field(default_factory=list)  # wall time of each pass (tiles + blend)
    e2e_ms: float = 0.0  # prompt in -> final image out


def base_size_of(backend: Backend) -> int:
    """The side a backend generates at: a bundle's converted size, else the model's image size."""
    return int(getattr(backend, "size", None) or backend.config.image_size)


def generate_upscaled(
    backend: Backend, runner: TileRunner, prompt: str, size: int = MAX_SIZE, steps: int | None = None,
    seed: int = 0, sampler: str | None = None, guidance_scale: float | None = None,
    subjects: np.ndarray | None = None, subject_mask: np.ndarray | None = None,
) -> UpscaledGeneration:
    """Generate at the backend's base size, then upscale through the tiled chain to `size` px."""
    start = time.perf_counter()
    base = base_size_of(backend)
    chain = plan_chain(base, size, runner.tiles, runner.scale)  # refuse before any work
    result = generate_with(backend, prompt, steps, seed, base, sampler, guidance_scale,
                           subjects=subjects, subject_mask=subject_mask)
    pass_ms: list[float] = []
    image = float_to_pil_inplace(upscale_image(pil_to_float(result.image), size, runner, pass_ms))
    return UpscaledGeneration(image=image, base=result, chain=chain, pass_ms=pass_ms,
                              e2e_ms=(time.perf_counter() - start) * 1e3)


def torch_runner(base_size: int, upscaler_dir: str | Path | None = None) -> TorchTileRunner:
    """The shipped (or given) upscaler on PyTorch, tiled like a bundle for a `base_size` model."""
    from banana_sdk.upscale.config import default_tiles
    from banana_sdk.upscale.model import DEFAULT_WEIGHTS, load_upscaler

    return TorchTileRunner(load_upscaler(upscaler_dir or DEFAULT_WEIGHTS), default_tiles(base_size))


def generate_4k(
    pipe: Any, prompt: str, size: int = MAX_SIZE, *, steps: int | None = None, seed: int = 0,
    sampler: str | None = None, guidance_scale: float | None = None, subjects: np.ndarray | None = None,
    subject_mask: np.ndarray | None = None, threads: int = 2, upscaler_dir: str | Path | None = None,
) -> UpscaledGeneration:
    """`banana generate --size N` above the base size, for a `Pipeline` (PyTorch + the shipped upscaler)
    or a `LiteRTPipeline` (its bundle's `upscale_tile` signature)."""
    if getattr(pipe, "kind", "banana") != "banana":
        raise UpscaleError(f"upscaled output needs a Banana model or bundle, not a {pipe.kind!r} bundle")
    if hasattr(pipe, "tile_runner"):  # a LiteRT bundle: tiles come from the bundle, nothing else is loaded
        backend, runner = pipe, pipe.tile_runner(threads)
    else:
        backend = pipe.backend
        runner = torch_runner(base_size_of(backend), upscaler_dir)
    return generate_upscaled(backend, runner, prompt, size, steps, seed, sampler, guidance_scale,
                             subjects, subject_mask)

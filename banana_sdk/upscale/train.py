"""Train the 4x upscaler on ShapeWorld, and measure it against bicubic.

Pairs: a scene rendered at a high resolution S (256, 512 or 1024 px: objects at many pixel scales, as the
chain's passes see them) is the target; its 4x4 box filter (an S/4 render, anti-aliased like the model's
own output) is the input. Crops are centred on object edges (flat background teaches nothing). A fraction
of inputs is blurred and noised, because the first pass sees VAE-decoded images, which are softer than
renders. Loss: L1 on the [-1, 1] pixels. Evaluation uses scenes of another world seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from banana_sdk.data.render import render_scene
from banana_sdk.data.world import WorldConfig, sample_scene
from banana_sdk.upscale.config import UpscaleError, UpscalerConfig
from banana_sdk.upscale.model import Upscaler, build_upscaler, save_upscaler

TRAIN_WORLD = WorldConfig(min_objects=1, max_objects=5, character_prob=0.3, texture_prob=0.3)  # varied edges
TRAIN_WORLD_SEED = 77  # ShapeWorld seed of the training scenes
EVAL_WORLD_SEED = 2_000_077  # held-out scenes for the PSNR figure


@dataclass(frozen=True)
class UpscaleTrainConfig:
    steps: int = 3000  # optimizer steps
    batch: int = 16  # crops per step
    crop: int = 32  # input crop side (the target crop is crop * scale)
    lr: float = 2e-3  # AdamW peak learning rate (100 warm-up steps, cosine decay to 5%)
    scenes: int = 500  # scenes rendered for the crop pool
    crops_per_scene: int = 4  # edge-centred crops kept per scene
    hr_sizes: tuple[int, ...] = (256, 512, 1024)  # target render sides (inputs are 1/scale of them)
    degrade_prob: float = 0.5  # chance an input crop is blurred and noised
    max_blur: float = 1.0  # largest Gaussian blur sigma, input pixels
    noise: float = 0.01  # std of the added Gaussian noise, [-1, 1] units
    seed: int = 0  # init, scene sizes, crops, degradations

    def validate(self) -> UpscaleTrainConfig:
        if self.steps < 1 or self.batch < 1 or self.scenes < 1 or self.crops_per_scene < 1:
            raise UpscaleError("steps, batch, scenes and crops_per_scene must be >= 1")
        if self.crop < 8 or not math.isfinite(self.lr) or self.lr <= 0:
            raise UpscaleError(f"crop must be >= 8 and lr positive, got {self.crop}, {self.lr}")
        if any(s < 64 for s in self.hr_sizes) or not self.hr_sizes:
            raise UpscaleError(f"hr_sizes must be sides >= 64, got {self.hr_sizes}")
        return self


def box_down(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (H/f, W/f, 3) float32 0-255, mean of each f x f block."""
    h, w, c = image.shape
    return image.reshape(h // factor, factor, w // factor, factor, c).astype(np.float32).mean(axis=(1, 3))


def _edge_crops(hr: np.ndarray, count: int, side: int, scale: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` crops of hr (side x side, aligned to `scale`) centred on random edge pixels."""
    grad = (np.abs(np.diff(hr.astype(np.int16), axis=0)).sum(axis=2)[:, :-1]
            + np.abs(np.diff(hr.astype(np.int16), axis=1)).sum(axis=2)[:-1, :])
    ys, xs = np.nonzero(grad > 30)
    limit = hr.shape[0] - side
    crops = []
    for _ in range(count):
        if len(ys) and rng.random() < 0.9:
            k = int(rng.integers(len(ys)))
            y, x = ys[k] - side // 2, xs[k] - side // 2
        else:
            y, x = rng.integers(0, limit + 1, size=2)
        y = int(np.clip(y, 0, limit)) // scale * scale
        x = int(np.clip(x, 0, limit)) // scale * scale
        crops.append(hr[y:y + side, x:x + side].copy())
    return crops


def build_pool(cfg: UpscaleTrainConfig, scale: int) -> np.ndarray:
    """(N, crop*scale, crop*scale, 3) uint8 target crops from freshly rendered training scenes."""
    rng = np.random.default_rng([cfg.seed, 1])
    side = cfg.crop * scale
    crops = []
    for i in range(cfg.scenes):
        size = int(rng.choice(cfg.hr_sizes))
        size = max(size, side)
        crops += _edge_crops(render_scene(sample_scene(TRAIN_WORLD, TRAIN_WORLD_SEED, i), size),
                             cfg.crops_per_scene, side, scale, rng)
    return np.stack(crops)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample separable Gaussian blur of x (B, 3, H, W), sigma (B,) in pixels (reflect padding)."""
    radius = 3
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps[None] / sigma[:, None].clamp(min=1e-3)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, K)
    b, c, h, w = x.shape
    flat = x.reshape(1, b * c, h, w)
    k = kernel.repeat_interleave(c, dim=0)  # (B*C, K)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), k[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), k[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, h, w)


def make_batch(pool: np.ndarray, cfg: UpscaleTrainConfig, scale: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (B, 3, crop, crop), targets (B, 3, crop*scale, crop*scale)), both in [-1, 1]."""
    rng = np.random.default_rng([cfg.seed, 2, step])
    picks = rng.integers(0, len(pool), size=cfg.batch)
    hr = pool[picks]
    flips = rng.integers(0, 4, size=cfg.batch)  # random flips/transposes: no preferred direction
    hr = np.stack([np.flip(im, axis=int(f % 2)) if f >= 2 else (im.transpose(1, 0, 2) if f else im)
                   for im, f in zip(hr, flips, strict=True)])
    lr = np.stack([box_down(im, scale) for im in hr])
    target = torch.from_numpy(hr.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)
    inputs = torch.from_numpy(np.ascontiguousarray(lr.transpose(0, 3, 1, 2)) / 127.5 - 1.0).float()
    degrade = torch.from_numpy(rng.random(cfg.batch) < cfg.degrade_prob)
    if degrade.any():
        sigma = torch.from_numpy(rng.uniform(0.3, cfg.max_blur, size=cfg.batch)).float()
        noisy = _gaussian_blur(inputs, sigma)
        noisy = noisy + cfg.noise * torch.from_numpy(rng.standard_normal(inputs.shape).astype(np.float32))
        inputs = torch.where(degrade[:, None, None, None], noisy, inputs)
    return inputs, target


def train_upscaler(cfg: UpscaleTrainConfig, out: str | Path, model_cfg: UpscalerConfig | None = None,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train from scratch, save to `out` (config.json + upscaler.safetensors); returns a summary."""
    cfg.validate()
    model = build_upscaler(model_cfg, cfg.seed).train()
    scale = model.cfg.scale
    start = time.perf_counter()
    pool = build_pool(cfg, scale)
    render_s = time.perf_counter() - start
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    smooth = None
    for step in range(cfg.steps):
        warm = min(1.0, (step + 1) / 100)
        progress = step / max(1, cfg.steps - 1)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        inputs, target = make_batch(pool, cfg, scale, step)
        loss = (model(inputs) - target).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise UpscaleError(f"upscaler loss became {value} at step {step + 1}; lower --lr")
        smooth = value if smooth is None else 0.98 * smooth + 0.02 * value
        if log is not None and ((step + 1) % 100 == 0 or step + 1 == cfg.steps):
            log(f"step {step + 1}/{cfg.steps} l1 {smooth:.4f} ({time.perf_counter() - start:.0f} s)")
    model.eval()
    summary = {"steps": cfg.steps, "l1": round(float(smooth), 5), "render_s": round(render_s, 1),
               "train_s": round(time.perf_counter() - start, 1),
               "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}}
    save_upscaler(model, out, extra={"trained": True, "training": summary})
    return summary


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (peak 255)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@torch.no_grad()
def evaluate_upscaler(model: Upscaler, scenes: int = 24, in_size: int = 128, seed: int = EVAL_WORLD_SEED,
                      blur: float = 0.0) -> dict[str, float]:
    """Mean PSNR (dB) vs the true high-resolution render: upscaler, bicubic and bilinear, held-out scenes.

    Input = the scale x box filter of a render at scale * in_size (optionally Gaussian-blurred by `blur`
    input pixels, like a soft VAE output). Everything is rounded to uint8 as an app would show it.
    """
    scale = model.cfg.scale
    totals = {"upscaler": 0.0, "bicubic": 0.0, "bilinear": 0.0}
    for i in range(scenes):
        hr = render_scene(sample_scene(TRAIN_WORLD, seed, i), in_size * scale)
        lr = box_down(hr, scale)
        x = torch.from_numpy(lr.transpose(2, 0, 1)[None] / 127.5 - 1.0).float()
        if blur > 0:
            x = _gaussian_blur(x, torch.tensor([blur]))
        lr_u8 = np.clip(np.floor((x[0].permute(1, 2, 0).numpy() + 1) * 127.5 + 0.5), 0, 255).astype(np.uint8)
        x = torch.from_numpy(lr_u8.transpose(2, 0, 1)[None] / 127.5 - 1.0).float()
        up = model(x)[0].permute(1, 2, 0).numpy()
        up_u8 = np.clip(np.floor((up + 1) * 127.5 + 0.5), 0, 255).astype(np.uint8)
        totals["upscaler"] += psnr(up_u8, hr)
        side = in_size * scale
        for name, method in (("bicubic", Image.Resampling.BICUBIC), ("bilinear", Image.Resampling.BILINEAR)):
            totals[name] += psnr(np.asarray(Image.fromarray(lr_u8).resize((side, side), method)), hr)
    return {k: round(v / scenes, 3) for k, v in totals.items()}

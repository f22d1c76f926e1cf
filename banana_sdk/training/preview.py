"""Stage `preview`: distil a model's VAE decoder into a small preview decoder (`banana_sdk.models.preview`).

Data (built once, cached): latents and the full decoder's image of each, in the model's diffusion space (the
scaled latents `vae_decode` takes):
1. `scenes` ShapeWorld training scenes (world seed `data_seed`) encoded by the model's VAE encoder;
2. `samples` latents of the model's own LCM samples at `sample_steps` steps (cycled), for captions of the
   training scenes after those of 1.: the latents a live session decodes, which are softer than encodings.
Targets are the full decoder's fp32 output as the app shows it (clamped to [-1, 1], stored as 8-bit RGB:
DESIGN §4's conversion), so nothing below the display's precision is asked of the preview.

Loss = mean weighted L1 (pixels of objects, where the target differs from the background by more than
`OBJECT_DISTANCE`, weigh `object_weight`, the background 1: objects are a few percent of a scene and are all
ShapeEval scores) + `edge_weight` x the L1 of finite differences (crisp shape corners). Only the preview
decoder trains; the model is frozen and exported unchanged (the run directory receives the preview decoder:
`config.json` + `preview.safetensors`, plus the loop's resumable state).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from banana_sdk.checkpoint import weights_hash
from banana_sdk.data.dataset import image_to_tensor
from banana_sdk.data.render import render_scene
from banana_sdk.data.world import BACKGROUND
from banana_sdk.fileio import atomic_open
from banana_sdk.models.model import BananaModel
from banana_sdk.models.preview import (
    PreviewDecoder,
    PreviewDecoderConfig,
    PreviewError,
    build_preview,
    save_preview,
    vae_identity,
)
from banana_sdk.sampling.schedule import time_grid
from banana_sdk.tokenizer import Tokenizer
from banana_sdk.training.common import TrainingError
from banana_sdk.training.data import epoch_indices, train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.loop import Stage
from banana_sdk.training.teacher import load_stage_model, zero_subjects
from banana_sdk.training.vae import _grad_l1, object_weight

CHUNK = 32  # latents encoded / sampled / decoded per batch while building the data


@dataclass(frozen=True)
class PreviewStageConfig:
    model: Path  # trained model run (any stage with a VAE) whose decoder is distilled; its student makes samples
    channels: tuple[int, ...] | None = None  # preview channels per level (None: PreviewDecoderConfig's)
    blocks: tuple[int, ...] | None = None  # preview residual blocks per level (None: PreviewDecoderConfig's)
    scenes: int = 1500  # training scenes encoded by the model's VAE
    samples: int = 1500  # latents of the model's own samples (0 = encoded scenes only)
    sample_steps: tuple[int, ...] = (1, 2, 4)  # LCM steps of those samples, cycled
    object_weight: float = 4.0  # L1 weight of object pixels (background pixels weigh 1)
    edge_weight: float = 0.5  # weight of the finite-difference edge term
    character_prob: float = 0.5  # chance an object is a character in the scenes and captions (their small
    # ^ features, eyes and outlines, are what a small decoder loses first; the demo world draws 0.2)
    data_seed: int = 0  # ShapeWorld seed of the scenes and captions (evaluation uses seeds from 1,000,000)
    cache: Path | None = Path("out/cache")  # where the built (latent, target) set is cached (None: not cached)

    def preview_config(self, latent_channels: int, levels: int) -> PreviewDecoderConfig:
        """The preview decoder's config for a model with this many latent channels and VAE levels."""
        base = PreviewDecoderConfig(latent_channels=latent_channels)
        channels = tuple(self.channels) if self.channels is not None else base.channels
        blocks = tuple(self.blocks) if self.blocks is not None else base.blocks
        if len(channels) != levels:
            raise TrainingError(f"--channels needs {levels} levels for this model's {2 ** (levels - 1)}x VAE, "
                                f"got {list(channels)}")
        try:
            return dataclasses.replace(base, channels=channels, blocks=blocks).validate()
        except PreviewError as exc:
            raise TrainingError(str(exc)) from None

    def validate(self) -> PreviewStageConfig:
        if self.scenes < 0 or self.samples < 0 or self.scenes + self.samples < 1:
            raise TrainingError(f"--scenes and --samples must be >= 0 with at least one latent, got "
                                f"{self.scenes} and {self.samples}")
        if not self.sample_steps or any(not 1 <= s <= 8 for s in self.sample_steps):
            raise TrainingError(f"--sample-steps must be LCM steps in 1-8, got {list(self.sample_steps)}")
        if not 0.0 <= self.character_prob <= 1.0:
            raise TrainingError(f"--character-prob must be in [0, 1], got {self.character_prob}")
        if self.object_weight < 1 or self.edge_weight < 0:
            raise TrainingError(f"--object-weight must be >= 1 and --edge-weight >= 0, got {self.object_weight} "
                                f"and {self.edge_weight}")
        return self


class PreviewSet:
    """This process's share of the distillation data: latents (N, C, h, w) fp16, targets (N, 3, H, W) uint8."""

    def __init__(self, latents: torch.Tensor, targets: torch.Tensor, sampled: int) -> None:
        self.latents, self.targets, self.sampled = latents, targets, sampled

    def __len__(self) -> int:
        return self.latents.shape[0]

    def batch(self, step: int, local_batch: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Batch `step`: epochs walk a fresh seeded permutation of the set."""
        idx = epoch_indices(len(self), step, local_batch, seed)
        target = self.targets[idx].float() / 127.5 - 1.0
        return {"latent": self.latents[idx].float().to(device), "target": target.to(device)}


def _to_u8(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in about [-1, 1] -> uint8 as the app shows it (DESIGN §4)."""
    return torch.floor((image.float().clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def sample_latents(model: BananaModel, captions: list[str], steps: list[int], seed: int,
                    device: torch.device) -> torch.Tensor:
    """(B, C, h, w) clean latents of the model's LCM samples for `captions` (batched; noise from `seed`)."""
    cfg = model.config
    tokenizer = Tokenizer(cfg.tokenizer.context_length, cfg.tokenizer.vocab_size)
    enc = [tokenizer.encode(c) for c in captions]
    tokens = torch.from_numpy(np.stack([e.ids for e in enc])).to(device)
    segments = torch.from_numpy(np.stack([e.segments for e in enc]).astype(np.float32)).to(device)
    context, mask = model.text_encoder(tokens, segments)
    b = len(captions)
    subjects, subject_mask = zero_subjects(model, b, device)
    scale = cfg.sampler.guidance_scale
    if scale != 1.0:
        unc = tokenizer.unconditional()
        u_ctx, u_mask = model.text_encoder(torch.from_numpy(unc.ids)[None].to(device),
                                           torch.from_numpy(unc.segments.astype(np.float32))[None].to(device))
        u_ctx, u_mask = u_ctx.expand(b, -1, -1), u_mask.expand(b, -1)
    lat = cfg.image_size // cfg.downsample
    gen = torch.Generator(device=device).manual_seed(seed)
    shape = (b, cfg.vae.latent_channels, lat, lat)
    x = torch.randn(shape, generator=gen, device=device)
    x0 = x
    grids = [torch.from_numpy(time_grid(s, cfg.sampler.shift)).float() for s in steps]
    for i in range(max(steps)):
        active = torch.tensor([i < s for s in steps], device=device)
        t = torch.stack([g[min(i, len(g) - 2)] for g in grids]).to(device)
        t_next = torch.stack([g[min(i + 1, len(g) - 1)] for g in grids]).to(device)
        v = model.denoiser(x, t, context, mask, subjects, subject_mask)
        if scale != 1.0:
            v_u = model.denoiser(x, t, u_ctx, u_mask, subjects, torch.zeros_like(subject_mask))
            v = v_u + scale * (v - v_u)
        new_x0 = x - t[:, None, None, None] * v
        x0 = torch.where(active[:, None, None, None], new_x0, x0)
        eps = torch.randn(shape, generator=gen, device=device)
        renoised = (1 - t_next[:, None, None, None]) * x0 + t_next[:, None, None, None] * eps
        x = torch.where(active[:, None, None, None], renoised, x)
    return x0


@torch.no_grad()
def build_preview_set(model: BananaModel, cfg: PreviewStageConfig, info: DistInfo, seed: int) -> PreviewSet:
    """Encode, sample and decode this process's share (items rank, rank + world, ...) of the data."""
    world = train_world(model.config, cfg.data_seed)
    world = dataclasses.replace(world, config=dataclasses.replace(world.config, character_prob=cfg.character_prob))
    model.eval()
    device = info.device
    fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    vae = model.vae.to(memory_format=fmt)
    total = cfg.scenes + cfg.samples
    mine = list(range(info.rank, total, info.world_size))
    if not mine:
        raise TrainingError(f"--scenes + --samples = {total} leaves no data for rank {info.rank} of {info.world_size}")
    latents, targets = [], []
    encoded = [k for k in mine if k < cfg.scenes]
    sampled = [k for k in mine if k >= cfg.scenes]
    for i in range(0, len(encoded), CHUNK):
        chunk = encoded[i:i + CHUNK]
        images = torch.stack([image_to_tensor(render_scene(world.scene(k), world.size, world.styles))
                              for k in chunk]).to(device)
        latents.append(vae.encode(images.contiguous(memory_format=fmt)).float())
    for i in range(0, len(sampled), CHUNK):
        chunk = sampled[i:i + CHUNK]
        steps = [cfg.sample_steps[k % len(cfg.sample_steps)] for k in chunk]
        captions = [world.scene(k).caption for k in chunk]
        latents.append(sample_latents(model, captions, steps, seed * 1_000_003 + chunk[0], device))
    latents_all = torch.cat(latents)
    for i in range(0, len(latents_all), CHUNK):
        z = latents_all[i:i + CHUNK].contiguous(memory_format=fmt)
        targets.append(_to_u8(vae.decode(z)).cpu())
    vae.to(memory_format=torch.contiguous_format)
    return PreviewSet(latents_all.half().cpu(), torch.cat(targets).contiguous(), len(sampled))


def cached_preview_set(model: BananaModel, model_dir: Path, cfg: PreviewStageConfig, info: DistInfo,
                       seed: int) -> PreviewSet:
    """`build_preview_set`, loaded from / saved to `cfg.cache` (keyed by everything that determines it)."""
    if cfg.cache is None:
        return build_preview_set(model, cfg, info, seed)
    key = hashlib.sha256(json.dumps({
        "format": "preview-set-1", "weights": weights_hash(model_dir), "scenes": cfg.scenes,
        "samples": cfg.samples, "sample_steps": list(cfg.sample_steps), "data_seed": cfg.data_seed, "seed": seed,
        "character_prob": cfg.character_prob,
        "rank": info.rank, "world_size": info.world_size, "size": model.config.image_size,
        "device": info.device.type,
    }, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cfg.cache) / f"preview-{key}.pt"
    if path.is_file():
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            return PreviewSet(data["latents"], data["targets"], int(data["sampled"]))
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            pass
    built = build_preview_set(model, cfg, info, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        torch.save({"latents": built.latents, "targets": built.targets, "sampled": built.sampled}, handle)
    return built


class PreviewObjective(nn.Module):
    def __init__(self, preview: PreviewDecoder, cfg: PreviewStageConfig) -> None:
        super().__init__()
        self.preview, self.cfg = preview, cfg
        self.register_buffer("background", torch.tensor(BACKGROUND, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1)

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        z, x = batch["latent"], batch["target"]
        y = self.preview(z).float()
        weight = object_weight(x, self.background, self.cfg.object_weight)
        rec = ((y - x).abs() * weight).mean() / weight.mean()
        edge = _grad_l1(y, x)
        loss = rec + self.cfg.edge_weight * edge
        psnr = -10.0 * torch.log10(((y.detach().clamp(-1, 1) - x) / 2).pow(2).mean())
        return loss, {"l1": rec.detach(), "edge": edge.detach(), "psnr_db": psnr}


def build_preview_stage(cfg: PreviewStageConfig, info: DistInfo, seed: int) -> Stage:
    """The `preview` stage: the model frozen, a fresh preview decoder trained to reproduce its VAE decoder."""
    cfg = cfg.validate()
    model_dir = Path(cfg.model)
    model, _ = load_stage_model(model_dir, "model whose VAE decoder to distil (--model)")
    config = model.config
    pcfg = cfg.preview_config(config.vae.latent_channels, len(config.vae.channel_mult))
    model.to(info.device).requires_grad_(False).eval()
    vae_sha = vae_identity(model.vae)
    if info.is_main:
        print(f"preview: distillation data of {cfg.scenes} encoded scenes + {cfg.samples} samples "
              f"(cache: {cfg.cache or 'off'})", file=sys.stderr)
    data = cached_preview_set(model, model_dir, cfg, info, seed)
    preview = build_preview(pcfg, seed).train().to(info.device)
    if info.device.type == "cpu":  # oneDNN convolutions are much faster in NHWC on CPU
        preview.to(memory_format=torch.channels_last)
    objective = PreviewObjective(preview, cfg).to(info.device)
    fmt = torch.channels_last if info.device.type == "cpu" else torch.contiguous_format
    arguments = {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                 for k, v in dataclasses.asdict(cfg).items()}
    arguments["preview"] = pcfg.to_dict()

    def batches(step: int, local_batch: int) -> dict[str, torch.Tensor]:
        batch = data.batch(step, local_batch, seed + 3, info.device)
        return {k: v.contiguous(memory_format=fmt) for k, v in batch.items()}

    def export(run_dir: Path, facts: dict[str, Any]) -> None:
        extra = {"trained": True, "stage": "preview", "step": facts["step"], "elapsed_s": facts["elapsed_s"],
                 "world_size": facts["world_size"], "model": str(model_dir), "model_name": config.name,
                 "arguments": facts["arguments"], "loop": facts["loop"]}
        save_preview(preview, run_dir, vae_sha, extra)

    return Stage(
        name="preview", model=model, objective=objective, trained=preview, batches=batches,
        export_config=config, arguments=arguments, export=export,
    )

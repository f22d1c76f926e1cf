"""Stage `critic`: train the ShapeWorld latent critic (`banana_sdk.models.critic`) for a model's VAE.

Data: the model's VAE encodings of training scenes (the same cached `LatentSet` the diffusion stages use) and
each scene's per-cell labels (a pure function of the world seed and index, so nothing else is stored).
The critic must also read the softer latents a few-step student produces, so each latent is degraded at
random before it is judged: with probability `noise_prob` moved towards noise, x = (1 - s) x0 + s eps with
s ~ U(0, `noise_max`); with probability `blur_prob` mixed with its 3x3 box blur by a ~ U(0, 1).
Loss = the sum of the heads' cross-entropies (`critic_loss`). Only the critic trains; the run directory
receives `config.json` + `critic.safetensors` beside the loop's resumable state.
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
import torch.nn.functional as F
from torch import nn

from banana_sdk.checkpoint import weights_hash
from banana_sdk.data.dataset import ShapeWorld
from banana_sdk.data.world import POSITIONS, Size
from banana_sdk.eval.detect import Detection, detect
from banana_sdk.fileio import atomic_open
from banana_sdk.models.critic import (
    CHARACTER_NAMES,
    COLOUR_NAMES,
    HEADS,
    IGNORE,
    KIND_EMPTY,
    KIND_PLAIN,
    SHAPE_VALUES,
    SIZES,
    CriticConfig,
    LatentCritic,
    build_critic,
    cell_correct,
    critic_loss,
    save_critic,
    scene_labels,
)
from banana_sdk.models.model import BananaModel
from banana_sdk.models.preview import vae_identity
from banana_sdk.tokenizer import Tokenizer
from banana_sdk.training.common import TrainingError
from banana_sdk.training.data import LatentSet, epoch_indices, train_world
from banana_sdk.training.distributed import DistInfo
from banana_sdk.training.loop import Stage
from banana_sdk.training.preview import sample_latents
from banana_sdk.training.teacher import load_stage_model


@dataclass(frozen=True)
class CriticStageConfig:
    model: Path  # trained model run (any stage with a VAE) whose latents the critic reads
    width: int = 64  # critic width (CriticConfig.width)
    latents: int = 20000  # scenes in the encoded training set (split over processes)
    cache: Path | None = Path("out/cache")  # where encoded latents are cached (shared with the other stages)
    noise_prob: float = 0.5  # chance a latent is moved towards noise before it is judged
    noise_max: float = 0.3  # largest noise fraction s of that move
    blur_prob: float = 0.5  # chance a latent is mixed with its box blur
    samples: int = 6000  # latents of the model's own LCM samples, labelled by what the detector finds in
    # ^ their decoded images (0 = encoded scenes only): the critic must read what a student draws, not guess
    # ^ what its caption asked for
    sample_steps: tuple[int, ...] = (1, 2, 4)  # LCM steps of those samples, cycled

    def validate(self) -> CriticStageConfig:
        for name in ("noise_prob", "noise_max", "blur_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise TrainingError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
        if self.latents < 2:
            raise TrainingError(f"--latents must be >= 2, got {self.latents}")
        if self.samples < 0:
            raise TrainingError(f"--samples must be >= 0, got {self.samples}")
        if not self.sample_steps or any(not 1 <= s <= 8 for s in self.sample_steps):
            raise TrainingError(f"--sample-steps must be LCM steps in 1-8, got {list(self.sample_steps)}")
        return self


def detection_labels(detections: list[Detection]) -> torch.Tensor:
    """(9, 4) labels of what the ShapeEval detector found in an image (the largest object of each cell, as
    ShapeEval scores it): a character, or a plain shape with its colour and size; a character colour drawn with
    the wrong outline is a plain object of unknown colour (IGNORE)."""
    labels = torch.full((len(POSITIONS), len(HEADS)), IGNORE, dtype=torch.int64)
    labels[:, 0] = KIND_EMPTY
    seen: set[int] = set()
    for det in detections:  # largest first
        if det.cell in seen:
            continue
        seen.add(det.cell)
        if det.character is not None:
            labels[det.cell, 0] = 2 + CHARACTER_NAMES.index(det.character)
            continue
        labels[det.cell, 0] = KIND_PLAIN
        if det.shape in SHAPE_VALUES:
            labels[det.cell, 1] = SHAPE_VALUES.index(det.shape)
        if det.colour in COLOUR_NAMES:
            labels[det.cell, 2] = COLOUR_NAMES.index(det.colour)
        labels[det.cell, 3] = SIZES.index(Size(det.size))
    return labels

def shard_labels(world: ShapeWorld, count: int, info: DistInfo) -> torch.Tensor:
    """(N, 9, 4) labels of this process's scenes, in `LatentSet.build`'s order (rank, rank + world, ...)."""
    return torch.stack([scene_labels(world.scene(k)) for k in range(info.rank, count, info.world_size)])


CHUNK = 50  # samples generated and decoded per batch


@torch.no_grad()
def build_sampled_set(model: BananaModel, cfg: CriticStageConfig, info: DistInfo,
                      seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's share (items rank, rank + world, ...) of `cfg.samples` LCM samples of the model for
    captions of training scenes after the encoded ones: (latents (N, C, h, w) fp16, detector labels (N, 9, 4))."""
    world = train_world(model.config)
    mine = list(range(info.rank, cfg.samples, info.world_size))
    latents, labels = [], []
    for i in range(0, len(mine), CHUNK):
        chunk = mine[i:i + CHUNK]
        captions = [world.scene(cfg.latents + k).caption for k in chunk]
        steps = [cfg.sample_steps[k % len(cfg.sample_steps)] for k in chunk]
        z = sample_latents(model, captions, steps, seed * 1_000_003 + chunk[0], info.device)
        images = model.vae.decode(z).float().clamp(-1, 1)
        u8 = torch.floor((images + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()
        labels.extend(detection_labels(detect(np.ascontiguousarray(im))) for im in u8.numpy())
        latents.append(z.half().cpu())
    if not latents:
        c = model.config.vae.latent_channels
        lat = model.config.image_size // model.config.downsample
        return torch.zeros(0, c, lat, lat, dtype=torch.float16), torch.zeros(0, len(POSITIONS), len(HEADS),
                                                                               dtype=torch.int64)
    return torch.cat(latents), torch.stack(labels)


def cached_sampled_set(model: BananaModel, model_dir: Path, cfg: CriticStageConfig, info: DistInfo,
                       seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`build_sampled_set`, loaded from / saved to `cfg.cache` (keyed by everything that determines it)."""
    if cfg.cache is None or cfg.samples == 0:
        return build_sampled_set(model, cfg, info, seed)
    key = hashlib.sha256(json.dumps({
        "format": "critic-samples-1", "weights": weights_hash(model_dir), "samples": cfg.samples,
        "latents": cfg.latents, "sample_steps": list(cfg.sample_steps), "seed": seed, "rank": info.rank,
        "world_size": info.world_size, "device": info.device.type,
    }, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cfg.cache) / f"critic-samples-{key}.pt"
    if path.is_file():
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            return data["latents"], data["labels"]
        except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            pass
    built = build_sampled_set(model, cfg, info, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        torch.save({"latents": built[0], "labels": built[1]}, handle)
    return built


def degrade(x0: torch.Tensor, cfg: CriticStageConfig, generator: torch.Generator) -> torch.Tensor:
    """`x0` (B, C, h, w) with the stage's random noise and blur (see the module docstring)."""
    b, device = x0.shape[0], x0.device

    def draw(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device)

    s = (draw(b) < cfg.noise_prob).float() * draw(b) * cfg.noise_max
    eps = torch.randn(x0.shape, generator=generator, device=device)
    x = (1 - s)[:, None, None, None] * x0 + s[:, None, None, None] * eps
    a = (draw(b) < cfg.blur_prob).float() * draw(b)
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    return torch.lerp(x, blurred, a[:, None, None, None])


class CriticObjective(nn.Module):
    def __init__(self, critic: LatentCritic, cfg: CriticStageConfig) -> None:
        super().__init__()
        self.critic, self.cfg = critic, cfg

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator):  # noqa: ANN201
        x = degrade(batch["latents"], self.cfg, generator)
        logits = self.critic(x)
        loss = critic_loss(logits, batch["labels"])
        correct = cell_correct(logits, batch["labels"])
        return loss, {"cell_acc": correct.float().mean(), "scene_acc": correct.all(dim=1).float().mean()}


def build_critic_stage(cfg: CriticStageConfig, info: DistInfo, seed: int) -> Stage:
    """The `critic` stage: the model frozen, a fresh critic trained on its VAE's encodings of training scenes."""
    cfg = cfg.validate()
    model, _ = load_stage_model(Path(cfg.model), "model whose latents the critic reads (--model)")
    model.to(info.device).requires_grad_(False).eval()
    config = model.config
    tokenizer = Tokenizer(config.tokenizer.context_length, config.tokenizer.vocab_size)
    world = train_world(config)
    data = LatentSet.cached(cfg.cache, model.vae, world, tokenizer, cfg.latents, info)
    labels = shard_labels(world, cfg.latents, info)
    if len(labels) != len(data):
        raise TrainingError(f"critic labels ({len(labels)}) do not match the cached latents ({len(data)})")
    if info.is_main and cfg.samples:
        print(f"critic: {cfg.samples} samples of the model, labelled by the detector (cache: {cfg.cache or 'off'})",
              file=sys.stderr)
    sampled, sampled_labels = cached_sampled_set(model, Path(cfg.model), cfg, info, seed)
    all_latents = torch.cat([data.latents, sampled])
    all_labels = torch.cat([labels, sampled_labels])
    critic = build_critic(CriticConfig(config.vae.latent_channels, cfg.width), seed).train().to(info.device)
    vae_sha = vae_identity(model.vae)
    arguments = {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                 for k, v in dataclasses.asdict(cfg).items()}

    def batches(step: int, local_batch: int) -> dict[str, torch.Tensor]:
        idx = epoch_indices(len(all_latents), step, local_batch, seed + 4)
        return {"latents": all_latents[idx].float().to(info.device), "labels": all_labels[idx].to(info.device)}

    def export(run_dir: Path, facts: dict[str, Any]) -> None:
        extra = {"trained": True, "stage": "critic", "step": facts["step"], "elapsed_s": facts["elapsed_s"],
                 "world_size": facts["world_size"], "model": str(cfg.model), "model_name": config.name,
                 "arguments": facts["arguments"], "loop": facts["loop"]}
        save_critic(critic, run_dir, vae_sha, extra)

    return Stage(name="critic", model=model, objective=CriticObjective(critic, cfg), trained=critic,
                 batches=batches, export_config=config, arguments=arguments, export=export)

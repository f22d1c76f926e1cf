"""Training batches from ShapeWorld: fresh rendered scenes (VAE) or a cached latent set (teacher onwards).

Which scenes a process sees is a pure function of (data seed, step, rank), so a resumed run continues
with exactly the batches it would have seen.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from banana_sdk.config import ModelConfig
from banana_sdk.data.dataset import ShapeWorld, image_to_tensor
from banana_sdk.data.render import render_scene
from banana_sdk.data.world import DEMO_WORLD, fit_to_context
from banana_sdk.fileio import atomic_open
from banana_sdk.models.vae import VAE
from banana_sdk.tokenizer import Tokenizer
from banana_sdk.training.common import Precision, TrainingError, resolve_precision
from banana_sdk.training.distributed import DistInfo

TRAIN_SEED = 0  # ShapeWorld seed of the training scenes (evaluation uses other seeds)


def train_world(config: ModelConfig, seed: int = TRAIN_SEED) -> ShapeWorld:
    """The demo world at the model's resolution, trimmed to captions its context holds."""
    return ShapeWorld(fit_to_context(DEMO_WORLD, config.tokenizer.context_length), seed, config.image_size)


def image_batch(world: ShapeWorld, step: int, info: DistInfo, local_batch: int, crop: int = 0,
                crop_seed: int = 0) -> torch.Tensor:
    """(B, 3, S, S) float images of scenes step*global + rank*B + j; optional random crops of side `crop`."""
    first = (step * info.world_size + info.rank) * local_batch
    images = [world.image(first + j) for j in range(local_batch)]
    if crop:
        rng = np.random.default_rng([crop_seed, step, info.rank])
        offsets = rng.integers(0, world.size - crop + 1, size=(local_batch, 2))
        images = [im[y:y + crop, x:x + crop] for im, (y, x) in zip(images, offsets, strict=True)]
    return torch.stack([image_to_tensor(im) for im in images]).to(info.device)


def epoch_indices(n: int, step: int, local_batch: int, seed: int) -> torch.Tensor:
    """(local_batch,) int64 indices of batch `step` into a set of `n` items: epochs walk a fresh seeded
    permutation (seed * 7919 + epoch), a batch that crosses an epoch end continues in the next one."""
    epoch, offset = divmod(step * local_batch, n)
    picks: list[torch.Tensor] = []
    taken = 0
    while taken < local_batch:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        take = perm[offset:offset + local_batch - taken]
        picks.append(take)
        taken += len(take)
        epoch, offset = epoch + 1, 0
    return torch.cat(picks)

class LatentSet:
    """Encoded scenes for the diffusion stages: latents (N, C, h, w) fp16, tokens (N, L), segments (N, L).

    Each process encodes only its own shard (scenes rank, rank + world, ...), so no data is exchanged and
    DDP ranks never train on the same scene. Built once per (VAE, world, size, count) and cached on disk.
    """

    def __init__(self, latents: torch.Tensor, tokens: torch.Tensor, segments: torch.Tensor) -> None:
        self.latents, self.tokens, self.segments = latents, tokens, segments

    def __len__(self) -> int:
        return self.latents.shape[0]

    @classmethod
    @torch.no_grad()
    def build(cls, vae: VAE, world: ShapeWorld, tokenizer: Tokenizer, count: int, info: DistInfo,
              batch: int = 64) -> LatentSet:
        """Encode this process's shard (bf16 autocast where the hardware has fast bf16: 2x on this CPU)."""
        world.check_tokenizer(tokenizer)
        indices = list(range(info.rank, count, info.world_size))
        if not indices:
            raise TrainingError(f"--latents {count} leaves no scenes for rank {info.rank} of {info.world_size}")
        vae = vae.eval()
        fmt = torch.channels_last if info.device.type == "cpu" else torch.contiguous_format
        vae.to(memory_format=fmt)
        bf16 = resolve_precision(Precision.AUTO, info.device) is Precision.BF16
        latents, tokens, segments = [], [], []
        for i in range(0, len(indices), batch):
            chunk = indices[i:i + batch]
            scenes = [world.scene(k) for k in chunk]
            images = torch.stack([image_to_tensor(render_scene(s, world.size, world.styles))
                                  for s in scenes]).to(info.device)  # = world.image(k), scenes reused below
            with torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=bf16):
                latents.append(vae.encode(images.contiguous(memory_format=fmt)).float().half().cpu())
            for s in scenes:
                enc = tokenizer.encode(s.caption)
                tokens.append(torch.from_numpy(enc.ids))
                segments.append(torch.from_numpy(enc.segments.astype(np.float32)))
        vae.to(memory_format=torch.contiguous_format)
        return cls(torch.cat(latents), torch.stack(tokens), torch.stack(segments))

    @classmethod
    def cached(cls, cache_dir: Path | None, vae: VAE, world: ShapeWorld, tokenizer: Tokenizer, count: int,
               info: DistInfo) -> LatentSet:
        """Load this process's shard from `cache_dir` or build and save it (no caching when None)."""
        if cache_dir is None:
            return cls.build(vae, world, tokenizer, count, info)
        styled = {"styles": [s.value for s in world.styles]} if world.styles else {}  # plain keys unchanged
        key = hashlib.sha256(json.dumps({**styled,
            "vae": hashlib.sha256(b"".join(v.detach().cpu().float().numpy().tobytes()
                                           for v in vae.state_dict().values())).hexdigest(),
            "scale": vae.cfg.latent_scale, "world": asdict(world.config), "seed": world.seed,
            "size": world.size, "count": count, "rank": info.rank, "world_size": info.world_size,
            "context": tokenizer.context_length,
            "bf16": resolve_precision(Precision.AUTO, info.device) is Precision.BF16,
        }, sort_keys=True).encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"latents-{key}.pt"
        if path.is_file():
            try:
                data = torch.load(path, map_location="cpu", weights_only=True)
                return cls(data["latents"], data["tokens"], data["segments"])
            except Exception:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
                pass
        built = cls.build(vae, world, tokenizer, count, info)
        with atomic_open(path) as handle:
            torch.save({"latents": built.latents, "tokens": built.tokens, "segments": built.segments}, handle)
        return built

    def batch(self, step: int, local_batch: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Batch `step`: epochs walk a fresh seeded permutation of this shard."""
        idx = epoch_indices(len(self), step, local_batch, seed)
        return {"latents": self.latents[idx].float().to(device), "tokens": self.tokens[idx].to(device),
                "segments": self.segments[idx].to(device)}

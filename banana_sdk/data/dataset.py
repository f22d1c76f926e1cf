"""ShapeWorld as PyTorch datasets: a map-style view (index -> sample) and a sharded, endless stream.

A sample is a dict:
    image     (3, S, S) float32 in [-1, 1]   (the VAE encoder's input layout)
    tokens    (L,) int32 token ids           (the tokenizer of the model being trained)
    segments  (L,) float32 phrase index, -1 on padding
    index     int, the scene index (reproduce with `ShapeWorld.scene(index)`)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from banana_sdk.data.render import render_scene
from banana_sdk.data.world import (
    DataError,
    Scene,
    Style,
    WorldConfig,
    max_caption_words,
    parse_styles,
    sample_scene,
)
from banana_sdk.tokenizer import Tokenizer


@dataclass(frozen=True)
class ShapeWorld:
    """A seeded world: scene `i` is always the same scene, rendered at `size` pixels."""

    config: WorldConfig  # what scenes contain
    seed: int  # world seed; different seeds give disjoint-looking datasets (train vs eval)
    size: int  # image side in pixels
    styles: tuple[Style, ...] = ()  # render styles of every image (the scenes and captions do not change)

    def __post_init__(self) -> None:
        self.config.validate()
        object.__setattr__(self, "styles", parse_styles(self.styles))

    def scene(self, index: int) -> Scene:
        return sample_scene(self.config, self.seed, index)

    def image(self, index: int) -> np.ndarray:
        """(S, S, 3) uint8 RGB render of scene `index` (in the world's styles)."""
        return render_scene(self.scene(index), self.size, self.styles)

    def check_tokenizer(self, tokenizer: Tokenizer) -> None:
        """Raise DataError if this world's longest caption would not fit the tokenizer's context."""
        need = max_caption_words(self.config) + 2
        if need > tokenizer.context_length:
            raise DataError(
                f"captions of up to {self.config.max_objects} objects need {need} tokens but the model's "
                f"context holds {tokenizer.context_length}; lower max_objects or raise context_length"
            )


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 127.5 - 1.0


def make_sample(world: ShapeWorld, tokenizer: Tokenizer, index: int) -> dict[str, torch.Tensor | int]:
    """The training sample of scene `index`."""
    scene = world.scene(index)
    enc = tokenizer.encode(scene.caption)
    return {
        "image": image_to_tensor(render_scene(scene, world.size, world.styles)),
        "tokens": torch.from_numpy(enc.ids),
        "segments": torch.from_numpy(enc.segments.astype(np.float32)),
        "index": index,
    }


class ShapeWorldDataset(Dataset):
    """Map-style: scenes `start .. start + length - 1` of a world."""

    def __init__(self, world: ShapeWorld, tokenizer: Tokenizer, length: int, start: int = 0) -> None:
        world.check_tokenizer(tokenizer)
        if length < 0 or start < 0:
            raise DataError(f"length and start must be non-negative, got {length}, {start}")
        self.world, self.tokenizer, self.length, self.start = world, tokenizer, length, start

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= i < self.length:
            raise IndexError(i)
        return make_sample(self.world, self.tokenizer, self.start + i)


def shard_indices(start: int, shard: int, num_shards: int, count: int | None = None) -> Iterator[int]:
    """start + shard, start + shard + num_shards, ... (`count` of them, or endless)."""
    k = 0
    while count is None or k < count:
        yield start + shard + k * num_shards
        k += 1


class ShapeWorldStream(IterableDataset):
    """Endless (or `count`-long per shard) stream of fresh scenes, sharded over ranks and loader workers.

    Shard = rank * num_workers + worker_id; shard s of n yields scenes start + s, start + s + n, ...
    so ranks and workers never see the same scene and a restart at `start` continues where it left off.
    `rank`/`world_size` default to the initialised torch.distributed group (else 0/1).
    """

    def __init__(
        self, world: ShapeWorld, tokenizer: Tokenizer, start: int = 0, count: int | None = None,
        rank: int | None = None, world_size: int | None = None,
    ) -> None:
        world.check_tokenizer(tokenizer)
        self.world, self.tokenizer, self.start, self.count = world, tokenizer, start, count
        dist = torch.distributed
        initialised = dist.is_available() and dist.is_initialized()
        self.rank = rank if rank is not None else (dist.get_rank() if initialised else 0)
        self.world_size = world_size if world_size is not None else (dist.get_world_size() if initialised else 1)
        if not 0 <= self.rank < self.world_size:
            raise DataError(f"rank {self.rank} outside world size {self.world_size}")

    def __iter__(self) -> Iterator[dict[str, torch.Tensor | int]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        shard, num_shards = self.rank * workers + worker, self.world_size * workers
        for index in shard_indices(self.start, shard, num_shards, self.count):
            yield make_sample(self.world, self.tokenizer, index)

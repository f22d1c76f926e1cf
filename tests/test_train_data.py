"""Training batches: sizes, epoch coverage, determinism, per-rank shards of the latent set."""

from __future__ import annotations

import torch

from banana_sdk.presets import get_preset
from banana_sdk.tokenizer import Tokenizer
from banana_sdk.training.data import LatentSet, image_batch, train_world
from banana_sdk.training.distributed import DistInfo

CPU = torch.device("cpu")


def _set(n: int) -> LatentSet:
    return LatentSet(torch.arange(n, dtype=torch.float16).reshape(n, 1, 1, 1).expand(n, 2, 2, 2).clone(),
                     torch.zeros(n, 8, dtype=torch.int32), torch.zeros(n, 8))


def test_latent_batches_have_the_asked_size_and_walk_epochs():
    data = _set(10)
    seen = []
    for step in range(5):  # 5 steps x 4 = 2 epochs of 10
        batch = data.batch(step, 4, seed=3, device=CPU)
        assert batch["latents"].shape == (4, 2, 2, 2) and batch["latents"].dtype == torch.float32
        seen += batch["latents"][:, 0, 0, 0].long().tolist()
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))  # each epoch: all once
    assert seen[:10] != seen[10:]  # reshuffled every epoch
    again = data.batch(2, 4, seed=3, device=CPU)["latents"]
    assert torch.equal(again, data.batch(2, 4, seed=3, device=CPU)["latents"])  # a pure function of the step
    assert data.batch(0, 25, seed=3, device=CPU)["latents"].shape[0] == 25  # batch larger than the set


def test_latent_set_shards_by_rank(tmp_path):
    from banana_sdk.models.model import build_model

    cfg = get_preset("tiny")
    model = build_model(cfg)
    world = train_world(cfg)
    tok = Tokenizer(cfg.tokenizer.context_length, cfg.tokenizer.vocab_size)
    shards = [LatentSet.cached(tmp_path, model.vae, world, tok, 6, DistInfo(r, 2, r, CPU)) for r in range(2)]
    assert [len(s) for s in shards] == [3, 3]
    assert len(list(tmp_path.glob("latents-*.pt"))) == 2
    cached = LatentSet.cached(tmp_path, model.vae, world, tok, 6, DistInfo(1, 2, 1, CPU))
    assert torch.equal(cached.tokens, shards[1].tokens)
    expected = tok.encode(world.scene(1).caption).ids  # rank 1 holds scenes 1, 3, 5
    assert torch.equal(shards[1].tokens[0], torch.from_numpy(expected))


def test_image_batches_are_fresh_scenes_per_rank_and_step():
    world = train_world(get_preset("tiny"))
    a = image_batch(world, 0, DistInfo(0, 2, 0, CPU), 2)
    b = image_batch(world, 0, DistInfo(1, 2, 1, CPU), 2)
    c = image_batch(world, 1, DistInfo(0, 2, 0, CPU), 2, crop=32, crop_seed=0)
    assert a.shape == (2, 3, 64, 64) and c.shape == (2, 3, 32, 32)
    assert not torch.equal(a, b)

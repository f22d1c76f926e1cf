"""ShapeWorld: determinism, captions, characters, sharding, bad input."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from banana_sdk.data import CHARACTERS, ShapeWorld, ShapeWorldDataset, ShapeWorldStream, WorldConfig, parse_caption
from banana_sdk.data.world import (
    BACKGROUND,
    COLOURS,
    DEMO_WORLD,
    DataError,
    fit_to_context,
    max_caption_words,
    sample_scene,
)
from banana_sdk.tokenizer import Tokenizer

WORLD = ShapeWorld(WorldConfig(character_prob=0.3, texture_prob=0.3), seed=7, size=64)


def _digest(world: ShapeWorld, n: int) -> str:
    h = hashlib.sha256()
    for i in range(n):
        h.update(world.scene(i).caption.encode())
        h.update(world.image(i).tobytes())
    return h.hexdigest()


def test_same_seed_same_scenes_and_pixels():
    again = ShapeWorld(WorldConfig(character_prob=0.3, texture_prob=0.3), seed=7, size=64)
    assert _digest(WORLD, 12) == _digest(again, 12)
    # a scene does not depend on which scenes were drawn before it
    assert WORLD.scene(11) == sample_scene(WORLD.config, 7, 11)


def test_other_seed_other_scenes():
    other = ShapeWorld(WORLD.config, seed=8, size=64)
    captions = {WORLD.scene(i).caption for i in range(20)}
    assert len(captions & {other.scene(i).caption for i in range(20)}) < 3


def test_scene_statistics_cover_the_world():
    world = ShapeWorld(WorldConfig(character_prob=0.2), seed=0, size=64)
    scenes = [world.scene(i) for i in range(400)]
    counts = [len(s.objects) for s in scenes]
    assert min(counts) == 1 and max(counts) == 5
    objects = [o for s in scenes for o in s.objects]
    assert {o.shape.value for o in objects if o.shape} == {"circle", "square", "triangle", "star", "cross"}
    assert {o.colour for o in objects if o.colour} == set(COLOURS)
    assert {o.character for o in objects if o.character} == set(CHARACTERS)
    assert set(range(9)) == {o.cell for o in objects}
    characters = sum(o.character is not None for o in objects) / len(objects)
    assert 0.12 < characters < 0.28
    for s in scenes:  # one object per cell, each character at most once
        assert len({o.cell for o in s.objects}) == len(s.objects)
        names = [o.character for o in s.objects if o.character]
        assert len(names) == len(set(names))


def test_objects_stay_inside_their_cells():
    for i in range(200):
        for obj in WORLD.scene(i).objects:
            row, col = divmod(obj.cell, 3)
            half = obj.side / 2
            assert col / 3 <= obj.cx - half and obj.cx + half <= (col + 1) / 3
            assert row / 3 <= obj.cy - half and obj.cy + half <= (row + 1) / 3


def test_render_draws_each_object_in_its_colour():
    world = ShapeWorld(WorldConfig(min_objects=1, max_objects=1, character_prob=0.0), seed=3, size=128)
    for i in range(10):
        scene, image = world.scene(i), world.image(i)
        obj = scene.objects[0]
        centre = image[int(obj.cy * 128), int(obj.cx * 128)]
        if obj.shape.value != "star":  # a star's centre is solid too, but its bbox centre is not its centre
            assert tuple(int(c) for c in centre) == COLOURS[obj.colour]
        corner = image[1, 1] if obj.cell != 0 else image[-2, -2]
        assert tuple(int(c) for c in corner) == BACKGROUND
    assert image.dtype == np.uint8 and image.shape == (128, 128, 3)


def test_characters_have_a_fixed_look():
    # 96 px: cells are exactly 32 px, so a character has the same sub-pixel placement in every cell
    world = ShapeWorld(WorldConfig(min_objects=1, max_objects=1, character_prob=1.0, jitter=False), seed=0, size=96)
    seen = {}
    for i in range(40):
        scene = world.scene(i)
        name, cell = scene.objects[0].character, scene.objects[0].cell
        row, col = divmod(cell, 3)
        crop = world.image(i)[row * 32:row * 32 + 32, col * 32:col * 32 + 32]
        seen.setdefault(name, crop)
        np.testing.assert_array_equal(seen[name], crop)  # same character, same pixels in any cell
    assert set(seen) == set(CHARACTERS)


def test_caption_round_trip():
    for i in range(100):
        scene = WORLD.scene(i)
        specs = parse_caption(scene.caption)
        assert [s.cell for s in specs] == [o.cell for o in scene.objects]
        for spec, obj in zip(specs, scene.objects, strict=True):
            assert spec.character == obj.character
            if obj.character is None:
                assert (spec.shape, spec.colour, spec.size) == (obj.shape, obj.colour, obj.size)


def test_captions_fit_the_demo_context_and_use_known_words():
    tokenizer = Tokenizer(48, 512)
    world = ShapeWorld(DEMO_WORLD, seed=0, size=128)
    assert max_caption_words(DEMO_WORLD) + 2 <= 48
    for i in range(50):
        caption = world.scene(i).caption
        enc = tokenizer.encode(caption)
        assert enc.length == len(caption.split()) + 2  # every word is a vocabulary token, no byte fallback
        assert enc.segments.max() == len(world.scene(i).objects) - 1  # one phrase per object


def test_fit_to_context_trims_objects():
    assert fit_to_context(DEMO_WORLD, 48).max_objects == 5
    assert fit_to_context(DEMO_WORLD, 32).max_objects == 4
    with pytest.raises(DataError, match="cannot hold"):
        fit_to_context(DEMO_WORLD, 5)


def test_stream_shards_are_disjoint_and_complete():
    tokenizer = Tokenizer(48, 512)
    world = ShapeWorld(DEMO_WORLD, seed=0, size=32)
    seen = []
    for rank in range(2):
        stream = ShapeWorldStream(world, tokenizer, start=10, count=3, rank=rank, world_size=2)
        loader = DataLoader(stream, batch_size=None, num_workers=2)
        seen += [int(s["index"]) for s in loader]
    assert sorted(seen) == list(range(10, 22))  # 2 ranks x 2 workers x 3 scenes, no overlap, no gap


def test_dataset_sample_layout():
    ds = ShapeWorldDataset(ShapeWorld(DEMO_WORLD, 0, 64), Tokenizer(48, 512), length=3)
    sample = ds[2]
    assert sample["image"].shape == (3, 64, 64) and sample["image"].dtype == torch.float32
    assert -1.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
    assert sample["tokens"].dtype == torch.int32 and sample["segments"].dtype == torch.float32
    assert sample["index"] == 2
    with pytest.raises(IndexError):
        ds[3]


@pytest.mark.parametrize("caption, message", [
    ("a red circle", "does not end with a position"),
    ("a red blob top left", "unknown word 'blob'"),
    ("a small red top left", "names no shape"),
    ("pip top left and a red circle top left", "same cell"),
])
def test_bad_captions_are_refused(caption, message):
    with pytest.raises(DataError, match=message):
        parse_caption(caption)


def test_bad_config_and_context_are_refused():
    with pytest.raises(DataError, match="max_objects"):
        ShapeWorld(WorldConfig(min_objects=3, max_objects=2), 0, 64)
    with pytest.raises(DataError, match="character_prob"):
        ShapeWorld(WorldConfig(character_prob=1.5), 0, 64)
    with pytest.raises(DataError, match="raise context_length"):
        ShapeWorldDataset(ShapeWorld(DEMO_WORLD, 0, 64), Tokenizer(32, 512), length=1)
    with pytest.raises(DataError, match="image size"):
        WORLD.__class__(WORLD.config, 0, 16).image(0)

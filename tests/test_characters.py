"""Procedural characters: the identity space, its split, scenes with placeholders, reference images."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from banana_sdk.data.characters import (
    HELD_OUT_PERCENT,
    IDENTITY_COUNT,
    PALETTE,
    PLACEHOLDER_TOKENS,
    Accessory,
    Body,
    Eyes,
    IdentityError,
    Look,
    Split,
    held_out_ids,
    identities,
    identity_of,
    look,
    placeholder,
    split,
    train_ids,
)
from banana_sdk.data.dataset import ShapeWorld
from banana_sdk.data.render import outline_mask, render_character, render_scene
from banana_sdk.data.world import (
    BACKGROUND,
    CHARACTER_SIDE,
    CHARACTERS,
    COLOURS,
    DEMO_WORLD,
    DataError,
    Scene,
    SceneObject,
    WorldConfig,
    fit_to_context,
    max_caption_words,
    parse_caption,
)
from banana_sdk.tokenizer import Tokenizer

PROCEDURAL = WorldConfig(character_prob=0.1, procedural_character_prob=0.5)
HELD_FIRST = (7, 38, 43, 45, 51, 52)  # the split rule pinned


def test_identity_space_counts_and_round_trip():
    assert IDENTITY_COUNT == 5 * 8 * 4 * 3 * 4 == 1920
    looks = [look(i) for i in range(IDENTITY_COUNT)]
    assert len(set(looks)) == IDENTITY_COUNT  # every id a different look
    assert all(identity_of(c) == i for i, c in enumerate(looks))
    assert look(0) == Look(Body.CIRCLE, PALETTE["lime"], eyes=Eyes.TWO_ROUND)
    assert identity_of(Look(Body.CIRCLE, CHARACTERS["pip"].colour)) is None  # named looks are outside
    with pytest.raises(IdentityError, match=r"\[0, 1920\)"):
        look(IDENTITY_COUNT)


def test_split_is_fixed_disjoint_and_covers_every_attribute():
    train, held = train_ids(), held_out_ids()
    assert len(train) + len(held) == IDENTITY_COUNT and not set(train) & set(held)
    assert abs(len(held) / IDENTITY_COUNT - HELD_OUT_PERCENT / 100) < 0.02
    assert (len(train), len(held)) == (1711, 209)  # pinned: a changed rule would leak held-out identities
    assert held[:6] == HELD_FIRST
    assert all(split(i) is Split.HELD_OUT for i in held) and list(identities("train")) == list(train)
    for field in ("body", "colour", "pattern", "eyes", "accessory"):  # held-out = unseen combinations only
        assert {getattr(look(i), field) for i in held} <= {getattr(look(i), field) for i in train}
    with pytest.raises(IdentityError, match="choose from"):
        identities("test")


def test_palette_is_distinct_from_every_other_colour():
    others = [*COLOURS.values(), *(c.colour for c in CHARACTERS.values()), BACKGROUND, (255, 255, 255), (0, 0, 0)]
    for name, colour in PALETTE.items():
        nearest = min(np.linalg.norm(np.subtract(colour, o, dtype=float)) for o in others)
        assert nearest >= 57, name
    for a, b in itertools.combinations(PALETTE.values(), 2):
        assert np.linalg.norm(np.subtract(a, b, dtype=float)) >= 57


def test_default_world_draws_no_procedural_character():
    world = ShapeWorld(DEMO_WORLD, seed=0, size=64)
    assert DEMO_WORLD.procedural_character_prob == 0.0
    assert all(o.identity is None for i in range(200) for o in world.scene(i).objects)


def test_procedural_scenes_use_training_identities_and_placeholders():
    world = ShapeWorld(PROCEDURAL, seed=3, size=64)
    held, seen = set(held_out_ids()), []
    for i in range(300):
        scene = world.scene(i)
        procedural = [o for o in scene.objects if o.identity is not None]
        assert [o.subject for o in procedural] == list(range(1, len(procedural) + 1))  # caption order
        assert len({o.identity for o in procedural}) == len(procedural)
        seen += [o.identity for o in procedural]
        specs = parse_caption(scene.caption, subjects=True)
        assert [s.subject for s in specs if s.subject] == [o.subject for o in procedural]
        for o in procedural:
            assert f"{placeholder(o.subject)} {o.position}" in scene.caption
    assert len(seen) > 300 and not set(seen) & held
    words = {w for i in range(300) for w in world.scene(i).caption.split()}
    assert not words & {*PALETTE, *(e.value for e in Accessory), "stripes", "spots", "belly", "hat"}


def test_placeholder_captions_fit_the_context_and_are_parsed_only_on_request():
    assert PLACEHOLDER_TOKENS == len(Tokenizer(48, 512).tokens("sbj5")) == 4
    assert max_caption_words(PROCEDURAL) == 5 * 6 + 4  # a placeholder phrase is as long as a plain one
    fitted = fit_to_context(PROCEDURAL, 48)
    assert fitted.max_objects == 5  # so five placeholder subjects fit the demo context
    world = ShapeWorld(fitted, seed=1, size=64)
    world.check_tokenizer(Tokenizer(48, 512))
    assert max(len(Tokenizer(48, 512).tokens(world.scene(i).caption)) for i in range(300)) <= 46
    with pytest.raises(DataError, match="unknown word 'sbj1'"):
        parse_caption("sbj1 top left")  # ShapeEval's parser is unchanged by default
    assert parse_caption("sbj2 center and pip top left", subjects=True)[0].subject == 2


def test_render_draws_the_identity_in_its_cell():
    obj = SceneObject(cell=4, cx=0.5, cy=0.5, identity=7, subject=1)
    image = render_scene(Scene((obj,)), 128)
    assert np.array_equal(image, render_character(7, 128))  # the reference image is the same drawing
    body = image[64 - 5:64 + 5, 64 - 5:64 + 5].reshape(-1, 3)
    colour = np.array(look(7).colour)
    assert (np.abs(body - colour).max(axis=1) < 3).mean() > 0.3
    outside = np.concatenate([image[:40].reshape(-1, 3), image[88:].reshape(-1, 3)])
    assert (outside == BACKGROUND).all()


def test_named_looks_draw_exactly_like_the_named_characters():
    for name, char in CHARACTERS.items():
        named = render_scene(Scene((SceneObject(cell=4, cx=0.5, cy=0.5, character=name),)), 128)
        assert np.array_equal(named, render_character(Look(Body(char.body), char.colour), 128, CHARACTER_SIDE))


def test_body_heights_match_the_outlines():
    from banana_sdk.data.characters import BODY_HEIGHT

    for body in Body:
        rows = np.nonzero(outline_mask(body.value, 200).max(axis=1) > 0.5)[0]
        assert abs((rows.max() - rows.min() + 1) / 200 - BODY_HEIGHT.get(body, 1.0)) < 0.02, body


def test_every_attribute_value_changes_the_reference_image():
    base = look(123)
    ref = render_character(base, 128)
    for field, values in (("pattern", list(type(base.pattern))), ("eyes", list(Eyes)),
                          ("accessory", list(Accessory)), ("body", list(Body))):
        for value in values:
            if value != getattr(base, field):
                other = render_character(Look(**{**base.__dict__, field: value}), 128)
                assert np.abs(other.astype(int) - ref).max() > 100, (field, value)

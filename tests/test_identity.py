"""Strict identity scoring: true identities pass, impostors fail, on renders (the calibrated thresholds)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from banana_sdk.data.characters import PALETTE, Accessory, Body, Eyes, Pattern, held_out_ids, look, train_ids
from banana_sdk.data.render import render_character, render_scene
from banana_sdk.data.world import CHARACTER_SIDE, Scene, SceneObject
from banana_sdk.eval.identity import (
    ATTRIBUTES,
    IdentityScoreError,
    identity_reference,
    named_reference,
    read_reference,
    score_character,
)

IDS = list(train_ids()[::173]) + list(held_out_ids()[::37])  # 10 + 6 identities, every split


def _in_cell(character, cell: int, box: float = 0.29) -> np.ndarray:  # noqa: ANN001
    row, col = divmod(cell, 3)
    return render_character(character, 128, box, (col + 0.5) / 3 + 0.004, (row + 0.5) / 3 - 0.003)


@pytest.mark.parametrize("identity", IDS)
def test_true_identity_passes_every_attribute(identity):
    score = score_character(_in_cell(look(identity), identity % 9), identity % 9, identity_reference(identity))
    assert score.passed and set(score.checks) == set(ATTRIBUTES)
    assert score.colour_distance < 2 and max(score.margins.values()) < -0.15


def test_each_one_attribute_near_miss_fails_exactly_that_attribute():
    ref = identity_reference(IDS[3])
    base = ref.look
    swaps = {
        "body": Body.SQUARE if base.body is not Body.SQUARE else Body.CIRCLE,
        "colour": PALETTE["lavender"] if base.colour != PALETTE["lavender"] else PALETTE["sky"],
        "pattern": Pattern.SPOTS if base.pattern is not Pattern.SPOTS else Pattern.BELLY,
        "eyes": Eyes.NONE,
        "accessory": Accessory.HAT if base.accessory is not Accessory.HAT else Accessory.BOW,
    }
    for attribute, value in swaps.items():
        score = score_character(_in_cell(dataclasses.replace(base, **{attribute: value}), 2), 2, ref)
        assert not score.passed
        assert [a for a, ok in score.checks.items() if not ok] == [attribute], attribute


def test_another_identity_and_an_empty_cell_fail():
    ref = identity_reference(IDS[0])
    assert not score_character(_in_cell(look(IDS[1]), 0), 0, ref).passed
    empty = score_character(_in_cell(look(IDS[0]), 0), 8, ref)
    assert not empty.found and not any(empty.checks.values())


def test_named_pip_without_eyes_fails_the_strict_check():
    image = render_scene(Scene((SceneObject(cell=0, cx=1 / 6, cy=1 / 6, character="pip"),)), 128)
    assert score_character(image, 0, named_reference("pip")).passed
    eyeless = render_character(dataclasses.replace(named_reference("pip").look, eyes=Eyes.NONE), 128,
                               CHARACTER_SIDE, 1 / 6, 1 / 6)
    score = score_character(eyeless, 0, named_reference("pip"))
    assert not score.checks["eyes"] and score.nearest["eyes"] == "none"
    assert all(score.checks[a] for a in ATTRIBUTES if a != "eyes")


def test_read_reference_recovers_the_look_of_a_reference_image():
    for identity in IDS[:6]:
        assert read_reference(render_character(identity, 128)) == look(identity)


def test_bad_requests_are_refused():
    with pytest.raises(IdentityScoreError, match="choose from"):
        named_reference("bob")
    with pytest.raises(IdentityScoreError, match="cell"):
        score_character(np.zeros((128, 128, 3), np.uint8), 9, identity_reference(0))
    with pytest.raises(IdentityScoreError, match="square uint8"):
        score_character(np.zeros((128, 64, 3), np.uint8), 0, identity_reference(0))

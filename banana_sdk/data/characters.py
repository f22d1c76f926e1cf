"""Procedural characters: thousands of identities nobody named, each a pure function of an integer id.

An identity's look is five attributes, every one drawn large enough to survive the demo VAE at 128 px:
    body       outline: circle, square, triangle, diamond or hexagon (the named characters' bodies)
    colour     one of `PALETTE` (outside the plain-object colours and the named characters' colours)
    pattern    none, horizontal stripes, spots (both in a darker shade) or a light belly patch
    eyes       two round eyes (the named characters' face), one big eye, or two sleepy eye bars
    accessory  none, a hat, a bow or an antenna on top of the body
Identity `i` in [0, IDENTITY_COUNT) is the mixed-radix number (body, colour, pattern, eyes, accessory), body
fastest. `split(i)` puts a fixed tenth of them aside: a hash of the id, so no training step that samples
`train_ids()` can ever draw a held-out one, on any machine.

Captions never describe a procedural character: it is a placeholder subject word ("sbj1 top left"),
which binds to the denoiser's first subject slot the way `banana_sdk.subjects.binding` binds a subject's
name; what it looks like comes only from its reference image.

This module is a leaf (no other ShapeWorld module): it describes a look as shapes in image fractions
(`drawing`), and `render.py` rasterises them (its body outlines included).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from banana_sdk.errors import BananaError

RGB = tuple[int, int, int]


class IdentityError(BananaError):
    """An identity id, split or placeholder that is out of range."""


class Body(str, Enum):
    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"
    DIAMOND = "diamond"
    HEXAGON = "hexagon"


class Pattern(str, Enum):
    NONE = "none"  # plain body colour
    STRIPES = "stripes"  # horizontal bands in the dark shade
    SPOTS = "spots"  # five round spots in the dark shade
    BELLY = "belly"  # a light oval patch on the lower body


class Eyes(str, Enum):
    TWO_ROUND = "two-round"  # the named characters' face: two white eyes with black pupils
    ONE_BIG = "one-big"  # one large white eye with a black pupil, centred
    SLEEPY = "sleepy"  # two closed eyes: short black bars
    NONE = "none"  # no face (never an identity's: the impostor "right body without eyes")


class Accessory(str, Enum):
    NONE = "none"  # the body fills the character's box
    HAT = "hat"  # a black top hat (brim + crown) on the body's top
    BOW = "bow"  # a red bow on the body's top
    ANTENNA = "antenna"  # a black stalk with a ball on the body's top


class Split(str, Enum):
    TRAIN = "train"  # identities training may draw
    HELD_OUT = "held-out"  # identities only evaluation sees


# body colours: away from the plain palette, the named characters, the background and each other (sRGB;
# nearest of those >= 57 apart, see tests/test_characters.py), light enough for a visible dark shade
PALETTE: dict[str, RGB] = {
    "lime": (150, 205, 40),
    "sky": (60, 170, 240),
    "magenta": (205, 40, 150),
    "mint": (120, 225, 175),
    "lavender": (175, 150, 235),
    "coral": (250, 105, 85),
    "peach": (250, 190, 120),
    "plum": (110, 35, 90),
}
BODIES = tuple(Body)  # identity order of each attribute
COLOURS = tuple(PALETTE)
PATTERNS = tuple(Pattern)
IDENTITY_EYES = (Eyes.TWO_ROUND, Eyes.ONE_BIG, Eyes.SLEEPY)  # every identity has a face
ACCESSORIES = tuple(Accessory)
RADIX = (len(BODIES), len(COLOURS), len(PATTERNS), len(IDENTITY_EYES), len(ACCESSORIES))
IDENTITY_COUNT = len(BODIES) * len(COLOURS) * len(PATTERNS) * len(IDENTITY_EYES) * len(ACCESSORIES)
HELD_OUT_PERCENT = 10  # share of identities held out of training
SPLIT_SALT = b"banana-identity-split-v1"  # changing it reshuffles the split: never, once a model trained on it

PROCEDURAL_SIDE = 0.29  # character box side, fraction of the image (cell 1/3 minus 2 x MARGIN: no jitter room)
ACCESSORY_BODY = 0.76  # body side with an accessory, fraction of the box (bottom-aligned; the hat gets the rest)
BODY_HEIGHT = {Body.TRIANGLE: 0.866, Body.HEXAGON: 0.866}  # outline height / width (others 1), see render.OUTLINES
EYE_Y = {Body.TRIANGLE: 0.12}  # eye height below the body centre, fraction of the body side (default -0.04)
EYE_DX, EYE_WHITE, EYE_PUPIL = 0.16, 0.085, 0.045  # the named characters' eyes (render.py), fractions of the body
BIG_WHITE, BIG_PUPIL = 0.15, 0.08  # one big eye
SLEEPY_HALF_W, SLEEPY_HALF_H = 0.11, 0.045  # half extent of a sleepy eye bar, fraction of the body side
DARK_SHADE = 0.55  # stripes and spots: the body colour times this
BELLY_MIX = 0.6  # belly patch: the body colour mixed this far towards white
STRIPE_PERIOD, STRIPE_WIDTH = 0.3, 0.13  # horizontal stripes, fractions of the body side
SPOT_RADIUS = 0.09  # spot radius, fraction of the body side
SPOTS_AT = ((-0.26, 0.22), (0.26, 0.22), (0.0, 0.34), (-0.3, -0.22), (0.3, -0.22))  # spot centres (body side)
EYE_WHITE_RGB, PUPIL_RGB = (255, 255, 255), (0, 0, 0)
HAT_RGB, BOW_RGB, ANTENNA_RGB = (40, 36, 46), (215, 30, 60), (40, 36, 46)
PLACEHOLDER = "sbj"  # caption word of the k-th procedural character of a scene: f"{PLACEHOLDER}{k}"
MAX_PLACEHOLDERS = 5  # procedural characters per scene at most (the denoiser's subject slots)
PLACEHOLDER_TOKENS = len(f"{PLACEHOLDER}{MAX_PLACEHOLDERS}")  # tokens of one (not in the vocabulary: UTF-8 bytes)


@dataclass(frozen=True)
class Look:
    """Everything that defines how a character is drawn (an identity's, a named character's or an impostor's)."""

    body: Body  # body outline
    colour: RGB  # body colour (sRGB)
    pattern: Pattern = Pattern.NONE  # markings on the body
    eyes: Eyes = Eyes.TWO_ROUND  # the face
    accessory: Accessory = Accessory.NONE  # what sits on top


@dataclass(frozen=True)
class Primitive:
    """A filled ellipse (its bounding box) or polygon, in fractions of the image side (y down)."""

    ellipse: bool  # True: `points` = ((x0, y0), (x1, y1)) bounding box; False: polygon vertices
    points: tuple[tuple[float, float], ...]  # see `ellipse`
    colour: RGB  # fill colour (sRGB)


@dataclass(frozen=True)
class Drawing:
    """A look placed in an image: what `render.py` rasterises, in drawing order."""

    body: Body  # body outline
    cx: float  # body bounding-box centre x, fraction of the image side
    cy: float  # body bounding-box centre y
    side: float  # body bounding-box side (the outline's width)
    colour: RGB  # body colour
    pattern: tuple[Primitive, ...]  # drawn clipped to the body
    features: tuple[Primitive, ...]  # eyes then accessory, drawn on top


def _check_id(identity_id: int) -> int:
    if isinstance(identity_id, bool) or not isinstance(identity_id, int) or not 0 <= identity_id < IDENTITY_COUNT:
        raise IdentityError(f"identity id must be an integer in [0, {IDENTITY_COUNT}), got {identity_id!r}")
    return identity_id


def look(identity_id: int) -> Look:
    """The look of identity `identity_id` (mixed radix: body fastest, then colour, pattern, eyes, accessory)."""
    rest = _check_id(identity_id)
    digits = []
    for base in RADIX:
        rest, digit = divmod(rest, base)
        digits.append(digit)
    body, colour, pattern, eyes, accessory = digits
    return Look(BODIES[body], PALETTE[COLOURS[colour]], PATTERNS[pattern], IDENTITY_EYES[eyes],
                ACCESSORIES[accessory])


def identity_of(character: Look) -> int | None:
    """Inverse of `look`: the id of a look, None for looks outside the space (named characters, impostors)."""
    names = {rgb: name for name, rgb in PALETTE.items()}
    if character.colour not in names or character.eyes not in IDENTITY_EYES:
        return None
    digits = (BODIES.index(character.body), COLOURS.index(names[character.colour]),
              PATTERNS.index(character.pattern), IDENTITY_EYES.index(character.eyes),
              ACCESSORIES.index(character.accessory))
    out = 0
    for digit, base in zip(reversed(digits), reversed(RADIX), strict=True):
        out = out * base + digit
    return out


def describe(identity_id: int) -> str:
    """Human-readable attributes of an identity (logs and reports only; captions never say this)."""
    c = look(identity_id)
    colour = {rgb: name for name, rgb in PALETTE.items()}[c.colour]
    return f"#{identity_id}: {colour} {c.body.value}, {c.pattern.value} pattern, {c.eyes.value} eyes, " \
           f"{c.accessory.value} accessory"


def split(identity_id: int) -> Split:
    """TRAIN or HELD_OUT: SHA-256 of (SPLIT_SALT, id) mod 100 < HELD_OUT_PERCENT is held out."""
    digest = hashlib.sha256(SPLIT_SALT + str(_check_id(identity_id)).encode()).digest()
    return Split.HELD_OUT if int.from_bytes(digest[:8], "little") % 100 < HELD_OUT_PERCENT else Split.TRAIN


@lru_cache(maxsize=2)
def _ids(which: Split) -> tuple[int, ...]:
    return tuple(i for i in range(IDENTITY_COUNT) if split(i) is which)


def train_ids() -> tuple[int, ...]:
    """Every training identity, ascending."""
    return _ids(Split.TRAIN)


def held_out_ids() -> tuple[int, ...]:
    """Every held-out identity, ascending."""
    return _ids(Split.HELD_OUT)


def identities(which: Split | str) -> Iterator[int]:
    """The identities of one split, ascending; IdentityError names the valid splits."""
    try:
        which = Split(which)
    except ValueError:
        raise IdentityError(f"unknown split {which!r}; choose from {[s.value for s in Split]}") from None
    return iter(_ids(which))


def placeholder(k: int) -> str:
    """The caption word of a scene's k-th procedural character (1-based): "sbj1" .. "sbj5"."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_PLACEHOLDERS:
        raise IdentityError(f"placeholder number must be in [1, {MAX_PLACEHOLDERS}], got {k!r}")
    return f"{PLACEHOLDER}{k}"


def placeholder_number(word: str) -> int | None:
    """k for a placeholder word "sbjk", else None."""
    digits = word[len(PLACEHOLDER):]
    if word.startswith(PLACEHOLDER) and digits.isdigit() and 1 <= int(digits) <= MAX_PLACEHOLDERS:
        return int(digits)
    return None


def _shade(colour: RGB, factor: float) -> RGB:
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


def _tint(colour: RGB, mix: float) -> RGB:
    return tuple(int(round(c + mix * (255 - c))) for c in colour)  # type: ignore[return-value]


def _circle(x: float, y: float, r: float, colour: RGB) -> Primitive:
    return Primitive(True, ((x - r, y - r), (x + r, y + r)), colour)


def _rect(x0: float, y0: float, x1: float, y1: float, colour: RGB) -> Primitive:
    return Primitive(False, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)), colour)


def drawing(character: Look, cx: float, cy: float, box: float) -> Drawing:
    """`character` in a box of side `box` centred at (cx, cy) (fractions of the image side).

    Without an accessory the body fills the box (so a named character's look draws exactly as render.py
    draws that character); with one the body is ACCESSORY_BODY of it, bottom-aligned, the accessory on top.
    """
    b = box if character.accessory is Accessory.NONE else ACCESSORY_BODY * box
    by = cy if character.accessory is Accessory.NONE else cy + (box - b) / 2
    top = by - BODY_HEIGHT.get(character.body, 1.0) * b / 2  # the body outline's highest point
    # 1. pattern (clipped to the body by the renderer)
    pattern: list[Primitive] = []
    dark = _shade(character.colour, DARK_SHADE)
    if character.pattern is Pattern.STRIPES:
        for k in range(-2, 3):
            y = by + k * STRIPE_PERIOD * b
            pattern.append(_rect(cx - b / 2, y - STRIPE_WIDTH * b / 2, cx + b / 2, y + STRIPE_WIDTH * b / 2, dark))
    elif character.pattern is Pattern.SPOTS:
        pattern += [_circle(cx + u * b, by + v * b, SPOT_RADIUS * b, dark) for u, v in SPOTS_AT]
    elif character.pattern is Pattern.BELLY:
        belly = _tint(character.colour, BELLY_MIX)
        pattern.append(Primitive(True, ((cx - 0.26 * b, by + 0.06 * b), (cx + 0.26 * b, by + 0.42 * b)), belly))
    # 2. eyes
    ey = by + EYE_Y.get(character.body, -0.04) * b
    features: list[Primitive] = []
    if character.eyes is Eyes.TWO_ROUND:
        for ex in (cx - EYE_DX * b, cx + EYE_DX * b):
            features += [_circle(ex, ey, EYE_WHITE * b, EYE_WHITE_RGB), _circle(ex, ey, EYE_PUPIL * b, PUPIL_RGB)]
    elif character.eyes is Eyes.ONE_BIG:
        features += [_circle(cx, ey, BIG_WHITE * b, EYE_WHITE_RGB), _circle(cx, ey, BIG_PUPIL * b, PUPIL_RGB)]
    elif character.eyes is Eyes.SLEEPY:
        for ex in (cx - EYE_DX * b, cx + EYE_DX * b):
            features.append(_rect(ex - SLEEPY_HALF_W * b, ey - SLEEPY_HALF_H * b, ex + SLEEPY_HALF_W * b,
                                  ey + SLEEPY_HALF_H * b, PUPIL_RGB))
    # 3. accessory, resting on the body's top (reaching 1 % of the box into it so the two touch)
    t = top + 0.01 * box
    if character.accessory is Accessory.HAT:
        features += [_rect(cx - 0.36 * b, t - 0.06 * box, cx + 0.36 * b, t, HAT_RGB),
                     _rect(cx - 0.22 * b, t - 0.23 * box, cx + 0.22 * b, t - 0.05 * box, HAT_RGB)]
    elif character.accessory is Accessory.BOW:
        mid, half = t - 0.1 * box, 0.1 * box
        features += [Primitive(False, ((cx, mid), (cx - 0.3 * b, mid - half), (cx - 0.3 * b, mid + half)), BOW_RGB),
                     Primitive(False, ((cx, mid), (cx + 0.3 * b, mid - half), (cx + 0.3 * b, mid + half)), BOW_RGB),
                     _circle(cx, mid, 0.06 * box, BOW_RGB), _rect(cx - 0.03 * box, mid, cx + 0.03 * box, t, BOW_RGB)]
    elif character.accessory is Accessory.ANTENNA:
        features += [_rect(cx - 0.035 * box, t - 0.17 * box, cx + 0.035 * box, t, ANTENNA_RGB),
                     _circle(cx, t - 0.17 * box, 0.07 * box, ANTENNA_RGB)]
    return Drawing(character.body, cx, by, b, character.colour, tuple(pattern), tuple(features))

"""ShapeWorld: the vocabulary of the demo world, scene sampling, captions and caption parsing.

A scene is 1-5 objects on a plain background, each in its own cell of a 3x3 grid. An object is either a
plain shape (shape, colour, size, optional texture) or one of five named characters with a fixed look, or
(opt-in, `procedural_character_prob`) a procedural character from `characters.py`, captioned "sbj1 ...".
Everything is a pure function of (world config, seed, index): the same triple gives the same scene on
every machine, so datasets, evaluations and tests need no files.

Captions list the objects in random order, one "and"-separated phrase each, in words the shipped tokenizer
knows: "a small red circle top left and pip center and a large striped blue square bottom right".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum

import numpy as np

from banana_sdk.data.characters import (
    MAX_PLACEHOLDERS,
    PLACEHOLDER_TOKENS,
    PROCEDURAL_SIDE,
    placeholder,
    placeholder_number,
    train_ids,
)
from banana_sdk.errors import BananaError


class DataError(BananaError):
    """A ShapeWorld configuration, index or caption that is out of range or unparseable."""


class Shape(str, Enum):
    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"
    STAR = "star"
    CROSS = "cross"


class Size(str, Enum):
    SMALL = "small"
    LARGE = "large"


class Texture(str, Enum):
    SOLID = "solid"  # filled with the colour (not named in captions)
    STRIPED = "striped"  # diagonal stripes in a darker shade of the colour
    OUTLINED = "outlined"  # only the outline, background inside


class Style(str, Enum):
    """Whole-image render styles: how every object of a scene is drawn. Captions never name a style
    (a peel adds it to any prompt); scenes are the same with or without one, only the pixels change."""

    PASTEL = "pastel"  # every body colour mixed with white by PASTEL_MIX (eyes unchanged)
    OUTLINED = "outlined"  # every object, characters' bodies too, drawn as its outline (background inside)


PASTEL_MIX = 0.4  # pastel colour = colour + PASTEL_MIX * (white - colour)


# plain-object colours (sRGB); characters use colours outside this palette so identity is unambiguous
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 135, 20),
    "yellow": (238, 205, 30),
    "green": (40, 165, 60),
    "blue": (40, 85, 220),
    "purple": (140, 60, 190),
}
BACKGROUND: tuple[int, int, int] = (242, 240, 235)  # plain warm-white background


def pastel(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """`colour` under the pastel style."""
    return tuple(int(round(c + PASTEL_MIX * (255 - c))) for c in colour)  # type: ignore[return-value]


def parse_styles(names: object) -> tuple[Style, ...]:
    """Style names (or Styles) -> a canonical tuple in `Style` order; DataError names the valid ones."""
    if isinstance(names, (str, Style)):
        names = [names]
    chosen = set()
    for name in names:  # type: ignore[union-attr]
        try:
            chosen.add(Style(name))
        except ValueError:
            raise DataError(f"unknown style {name!r}; choose from {[s.value for s in Style]}") from None
    return tuple(s for s in Style if s in chosen)


@dataclass(frozen=True)
class Character:
    name: str  # the word in captions (in the tokenizer vocabulary)
    body: str  # body outline: circle, square, triangle, diamond or hexagon
    colour: tuple[int, int, int]  # body colour (not in COLOURS)


# five named characters with a fixed, distinctive look: body shape + colour + a face (two eyes)
CHARACTERS: dict[str, Character] = {
    "pip": Character("pip", "circle", (250, 125, 185)),  # pink round chick
    "zed": Character("zed", "square", (0, 135, 135)),  # teal box
    "lulu": Character("lulu", "triangle", (135, 82, 40)),  # brown tent
    "momo": Character("momo", "diamond", (120, 120, 124)),  # grey kite
    "kiko": Character("kiko", "hexagon", (30, 30, 34)),  # black nut
}

# 3x3 grid cells in row-major order and their caption words
POSITIONS: tuple[str, ...] = (
    "top left", "top middle", "top right",
    "middle left", "center", "middle right",
    "bottom left", "bottom middle", "bottom right",
)
SIDE = {Size.SMALL: 0.16, Size.LARGE: 0.26}  # bounding-box side of an object, fraction of the image side
CHARACTER_SIDE = 0.26  # characters are always drawn large
CELL = 1.0 / 3.0  # grid cell side, fraction of the image side
MARGIN = 0.02  # minimum gap between an object and its cell border, fraction of the image side


@dataclass(frozen=True)
class WorldConfig:
    min_objects: int = 1  # fewest objects per scene
    max_objects: int = 5  # most objects per scene (<= 9 cells)
    character_prob: float = 0.2  # chance that an object is a named character (each at most once a scene)
    texture_prob: float = 0.0  # chance that a plain object is striped or outlined instead of solid
    jitter: bool = True  # move objects randomly inside their cell (keeping MARGIN)
    procedural_character_prob: float = 0.0  # chance that a non-named object is a procedural character: a
    # ^ training identity (`characters.train_ids()`), captioned only as a placeholder ("sbj1 top left"),
    # ^ at most MAX_PLACEHOLDERS a scene. 0 (default): no random draw at all, so scenes stay byte-identical

    def validate(self) -> WorldConfig:
        """Return self, or raise DataError naming the bad field."""
        if not 1 <= self.min_objects <= self.max_objects <= len(POSITIONS):
            raise DataError(
                f"need 1 <= min_objects <= max_objects <= {len(POSITIONS)}, "
                f"got {self.min_objects}..{self.max_objects}"
            )
        for name in ("character_prob", "texture_prob", "procedural_character_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DataError(f"{name} must be in [0, 1], got {value}")
        return self


# the world the demo model is trained and evaluated on: 1-5 objects, characters, no textures (an 8x VAE at
# 128 px cannot draw 3-pixel stripes on small shapes); `fit_to_context` trims it for shorter contexts
DEMO_WORLD = WorldConfig(min_objects=1, max_objects=5, character_prob=0.2, texture_prob=0.0)


def fit_to_context(config: WorldConfig, context_length: int) -> WorldConfig:
    """`config` with max_objects lowered until its longest caption (+ BOS/EOS) fits `context_length`."""
    while config.max_objects > config.min_objects and max_caption_words(config) + 2 > context_length:
        config = dataclasses.replace(config, max_objects=config.max_objects - 1)
    if max_caption_words(config) + 2 > context_length:
        raise DataError(f"a context of {context_length} tokens cannot hold a {config.min_objects}-object caption")
    return config


@dataclass(frozen=True)
class SceneObject:
    cell: int  # grid cell 0..8, row-major from top left
    cx: float  # centre x, fraction of the image side
    cy: float  # centre y, fraction of the image side
    shape: Shape | None = None  # plain objects: the shape; None for characters
    colour: str | None = None  # plain objects: a COLOURS key
    size: Size | None = None  # plain objects: small or large
    texture: Texture = Texture.SOLID  # plain objects: fill style
    character: str | None = None  # characters: a CHARACTERS key
    identity: int | None = None  # procedural characters: an identity id (`banana_sdk.data.characters`)
    subject: int | None = None  # procedural characters: k of its caption placeholder "sbjk" (1-based)

    @property
    def side(self) -> float:
        """Bounding-box side as a fraction of the image side."""
        if self.identity is not None:
            return PROCEDURAL_SIDE
        return CHARACTER_SIDE if self.character else SIDE[self.size]

    @property
    def position(self) -> str:
        """Caption words of the cell."""
        return POSITIONS[self.cell]

    def phrase(self) -> str:
        """This object's caption phrase."""
        if self.character:
            return f"{self.character} {self.position}"
        if self.identity is not None:
            return f"{placeholder(self.subject)} {self.position}"
        texture = "" if self.texture is Texture.SOLID else f"{self.texture.value} "
        return f"a {self.size.value} {texture}{self.colour} {self.shape.value} {self.position}"


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]  # in caption order

    @property
    def caption(self) -> str:
        return " and ".join(obj.phrase() for obj in self.objects)


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of scene `index` under `seed` (independent streams, platform independent)."""
    if seed < 0 or index < 0:
        raise DataError(f"seed and index must be non-negative, got seed={seed} index={index}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))


def sample_scene(config: WorldConfig, seed: int, index: int) -> Scene:
    """Scene number `index` of the world with `seed`: a pure function of its arguments."""
    rng = scene_rng(seed, index)
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    cells = rng.permutation(len(POSITIONS))[:count]
    free_characters = list(CHARACTERS)
    identities: list[int] = []
    objects = []
    for cell in cells:
        # 1. what: a character (each at most once per scene), a procedural character or a plain shape
        if free_characters and rng.random() < config.character_prob:
            name = free_characters.pop(int(rng.integers(len(free_characters))))
            kind = {"character": name}
            side = CHARACTER_SIDE
        elif (config.procedural_character_prob > 0 and len(identities) < MAX_PLACEHOLDERS
              and rng.random() < config.procedural_character_prob):
            identities.append(_draw_identity(rng, identities))
            kind = {"identity": identities[-1], "subject": len(identities)}
            side = PROCEDURAL_SIDE
        else:
            texture = Texture.SOLID
            if rng.random() < config.texture_prob:
                texture = (Texture.STRIPED, Texture.OUTLINED)[int(rng.integers(2))]
            size = (Size.SMALL, Size.LARGE)[int(rng.integers(2))]
            kind = {
                "shape": list(Shape)[int(rng.integers(len(Shape)))],
                "colour": list(COLOURS)[int(rng.integers(len(COLOURS)))],
                "size": size,
                "texture": texture,
            }
            side = SIDE[size]
        # 2. where: the cell centre plus a jitter that keeps MARGIN to the cell border
        row, col = divmod(int(cell), 3)
        reach = max(0.0, (CELL - side) / 2 - MARGIN) if config.jitter else 0.0
        dx, dy = rng.uniform(-reach, reach, size=2) if reach > 0 else (0.0, 0.0)
        objects.append(SceneObject(cell=int(cell), cx=(col + 0.5) * CELL + float(dx),
                                   cy=(row + 0.5) * CELL + float(dy), **kind))
    return Scene(tuple(objects))


def _draw_identity(rng: np.random.Generator, taken: list[int]) -> int:
    """A training identity not yet in the scene (held-out identities cannot be drawn)."""
    pool = train_ids()
    while (identity := pool[int(rng.integers(len(pool)))]) in taken:
        pass
    return identity


def max_caption_words(config: WorldConfig) -> int:
    """Longest caption of this world in tokens (every word is in the vocabulary but the placeholders, whose
    letters are byte tokens)."""
    per_object = 1 + 1 + (1 if config.texture_prob > 0 else 0) + 1 + 1 + 2  # a size [texture] colour shape pos
    if config.procedural_character_prob > 0:
        per_object = max(per_object, PLACEHOLDER_TOKENS + 2)  # "sbjk" position
    return config.max_objects * per_object + (config.max_objects - 1)  # "and" between phrases


@dataclass(frozen=True)
class ObjectSpec:
    """What a caption phrase asks for (positions are cells; unspecified fields are None)."""

    cell: int
    shape: Shape | None = None
    colour: str | None = None
    size: Size | None = None
    texture: Texture | None = None
    character: str | None = None
    subject: int | None = None  # a procedural character's placeholder number k ("sbjk"), 1-based


def parse_caption(caption: str, subjects: bool = False) -> list[ObjectSpec]:
    """Inverse of `Scene.caption`: the objects a ShapeWorld caption asks for; DataError if it is not one.
    Placeholder subjects ("sbj1 top left", procedural characters) are accepted only with `subjects`."""
    specs = []
    for phrase in caption.lower().replace(",", " and ").split(" and "):
        words = phrase.split()
        if not words:
            continue
        specs.append(_parse_phrase(words, phrase, subjects))
    if not specs:
        raise DataError(f"caption {caption!r} names no objects")
    cells = [spec.cell for spec in specs]
    if len(set(cells)) != len(cells):
        raise DataError(f"caption {caption!r} puts two objects in the same cell")
    return specs


def _parse_phrase(words: list[str], phrase: str, subjects: bool = False) -> ObjectSpec:
    # the position is always the last one or two words
    for n in (2, 1):
        if len(words) > n and " ".join(words[-n:]) in POSITIONS:
            cell, words = POSITIONS.index(" ".join(words[-n:])), words[:-n]
            break
    else:
        raise DataError(f"phrase {phrase.strip()!r} does not end with a position; use one of {list(POSITIONS)}")
    if len(words) == 1 and words[0] in CHARACTERS:
        return ObjectSpec(cell=cell, character=words[0])
    if subjects and len(words) == 1 and placeholder_number(words[0]) is not None:
        return ObjectSpec(cell=cell, subject=placeholder_number(words[0]))
    if words and words[0] in ("a", "an"):
        words = words[1:]
    fields: dict[str, object] = {}
    for word in words:
        if word in Size._value2member_map_:
            fields["size"] = Size(word)
        elif word in Texture._value2member_map_:
            fields["texture"] = Texture(word)
        elif word in COLOURS:
            fields["colour"] = word
        elif word in Shape._value2member_map_:
            fields["shape"] = Shape(word)
        else:
            raise DataError(
                f"phrase {phrase.strip()!r}: unknown word {word!r}; ShapeWorld knows shapes "
                f"{[s.value for s in Shape]}, colours {list(COLOURS)}, sizes {[s.value for s in Size]}, "
                f"characters {list(CHARACTERS)}"
            )
    if "shape" not in fields:
        raise DataError(f"phrase {phrase.strip()!r} names no shape or character")
    return ObjectSpec(cell=cell, **fields)  # type: ignore[arg-type]

"""Strict identity scoring: does the character in a cell look like its reference on EVERY defining attribute?

ShapeEval's identity check (`detect.py`) asks only "right body colour and outline"; a subject must also keep
its pattern, eyes and accessory. No learning, only image measurements against renders:

1. locate: in the asked cell, foreground = max channel distance from the background > `LOCATE_THRESHOLD`;
   the largest 8-connected component plus any component touching its box grown by `ATTACH_PX` (a
   detached antenna ball), holes filled; crop the image to that box and resample it to `CROP` x `CROP`
   RGB (scale- and position-free), then blur by `THRESHOLDS.blur` pixels (so a soft VAE edge and a sharp
   render compare alike).
2. body colour: the median of the crop's pixels where the reference's own crop shows plain body colour
   (eroded one pixel, so neither edges nor pattern, eyes or accessory vote); passes within
   `THRESHOLDS.colour` (RGB distance, 0-255) of the reference colour.
3. body, pattern, eyes, accessory, each by analysis-by-synthesis: render the reference, in the measured body
   colour (to `COLOUR_STEP`), with that attribute set to each of its values (eyes include "none"), crop them
   the same way, and measure the mean squared
   RGB distance d(v) of the candidate to each. Every other attribute is the reference's in all of them, so
   d(v) - d(reference value) comes only from where the values differ. The attribute passes when
   (d(ref) - min_other d) / (d(ref) + min_other d) < `THRESHOLDS.margin` (a negative margin = must be
   closer to the reference than to every alternative by that relative amount).
A character passes when it is found and all five attributes pass. Thresholds are calibrated on real renders
at the demo model's 128 px, before and after the demo VAE's round trip (`benchmarks/bench_identity.py`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from banana_sdk.data.characters import PROCEDURAL_SIDE, Accessory, Body, Eyes, Look, Pattern, look
from banana_sdk.data.render import render_character
from banana_sdk.data.world import BACKGROUND, CHARACTER_SIDE, CHARACTERS
from banana_sdk.errors import BananaError

ATTRIBUTES = ("body", "colour", "pattern", "eyes", "accessory")  # every check, in report order
COMPARED = {"body": tuple(Body), "pattern": tuple(Pattern), "eyes": tuple(Eyes), "accessory": tuple(Accessory)}
LOCATE_THRESHOLD = 32.0  # max |channel - background| (0-255) above which a cell pixel is the character's
ATTACH_PX = 3  # components this close to the largest one's box belong to the character (pixels)
CROP = 32  # side of the normalised crop (pixels)
COLOUR_STEP = 8  # templates of step 3 are drawn in the measured colour rounded to this grid (cache hits)
MIN_PIXELS = 12  # fewer foreground pixels in the cell = nothing there
_EIGHT = np.ones((3, 3), dtype=bool)


class IdentityScoreError(BananaError):
    """A scoring request that cannot be answered (bad image, cell or reference)."""


@dataclass(frozen=True)
class Thresholds:
    colour: float = 40.0  # max RGB distance (0-255) of the measured body colour from the reference's
    margin: float = 0.0  # max relative margin (d_ref - d_alt) / (d_ref + d_alt) of a compared attribute
    blur: float = 0.8  # Gaussian sigma (crop pixels) applied to candidate and templates before comparing


THRESHOLDS = Thresholds()  # calibrated: see module docstring and BENCHMARKS.md "Identity"


@dataclass(frozen=True)
class Reference:
    """What a character must look like and how large it is drawn."""

    look: Look  # every defining attribute
    box: float = PROCEDURAL_SIDE  # the character's box side, fraction of the image side


@dataclass(frozen=True)
class IdentityScore:
    found: bool  # something stood in the cell
    checks: dict[str, bool]  # attribute -> passed (all False when not found)
    margins: dict[str, float]  # compared attribute -> relative margin (lower = closer to the reference)
    colour_distance: float  # RGB distance of the measured body colour from the reference's (inf if not found)
    nearest: dict[str, str]  # compared attribute -> the value the candidate is closest to

    @property
    def passed(self) -> bool:
        return self.found and all(self.checks.values())


def identity_reference(identity_id: int) -> Reference:
    """The reference of a procedural identity."""
    return Reference(look(identity_id), PROCEDURAL_SIDE)


def named_reference(name: str) -> Reference:
    """A named character (`world.CHARACTERS`) as a look: its body and colour, two round eyes, nothing else."""
    if name not in CHARACTERS:
        raise IdentityScoreError(f"unknown character {name!r}; choose from {list(CHARACTERS)}")
    char = CHARACTERS[name]
    return Reference(Look(Body(char.body), char.colour), CHARACTER_SIDE)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise IdentityScoreError(f"expected a square uint8 RGB image, got {image.dtype} {image.shape}")
    return image


def locate(image: np.ndarray, cell: int) -> np.ndarray | None:
    """(CROP, CROP, 3) float32 normalised crop (0-255, unblurred) of the character in `cell`, or None."""
    image = _check_image(image)
    if not 0 <= cell < 9:
        raise IdentityScoreError(f"cell must be in 0..8 (row-major 3x3 grid), got {cell}")
    size = image.shape[0]
    row, col = divmod(cell, 3)
    y0, y1, x0, x1 = row * size // 3, (row + 1) * size // 3, col * size // 3, (col + 1) * size // 3
    pixels = image[y0:y1, x0:x1].astype(np.float32)
    fg = np.abs(pixels - np.array(BACKGROUND, np.float32)).max(axis=2) > LOCATE_THRESHOLD
    labels, count = ndimage.label(fg, structure=_EIGHT)
    if count == 0:
        return None
    sizes = ndimage.sum(fg, labels, index=range(1, count + 1))
    if sizes.max() < MIN_PIXELS:
        return None
    boxes = ndimage.find_objects(labels)
    main = boxes[int(np.argmax(sizes))]
    top, bottom, left, right = main[0].start, main[0].stop, main[1].start, main[1].stop
    for box in boxes:  # attached parts: components within ATTACH_PX of the main box
        if (box[0].start <= bottom + ATTACH_PX and box[0].stop >= top - ATTACH_PX
                and box[1].start <= right + ATTACH_PX and box[1].stop >= left - ATTACH_PX):
            top, bottom = min(top, box[0].start), max(bottom, box[0].stop)
            left, right = min(left, box[1].start), max(right, box[1].stop)
    crop = image[y0 + top:y0 + bottom, x0 + left:x0 + right]
    out = Image.fromarray(np.ascontiguousarray(crop)).resize((CROP, CROP), Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.float32)


def _blur(crop: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(crop, sigma=(sigma, sigma, 0)) if sigma > 0 else crop


@lru_cache(maxsize=4096)
def _template(character: Look, box: float, size: int) -> np.ndarray:
    """Normalised crop of `character` rendered alone in the centre cell at `size` pixels (read-only)."""
    crop = locate(render_character(character, size, box), 4)
    if crop is None:
        raise IdentityScoreError(f"the render of {character} shows nothing at {size} px")
    crop.setflags(write=False)
    return crop


@lru_cache(maxsize=1024)
def _plain_body(character: Look, box: float, size: int) -> np.ndarray:
    """(CROP, CROP) bool: where the reference's crop is plain body colour, eroded one pixel."""
    plain = np.abs(_template(character, box, size) - np.array(character.colour, np.float32)).max(axis=2) < 4
    core = ndimage.binary_erosion(plain, structure=_EIGHT)
    return core if core.sum() >= 4 else plain


def score_crop(crop: np.ndarray | None, reference: Reference, size: int,
               thresholds: Thresholds = THRESHOLDS) -> IdentityScore:
    """Score a normalised crop (from `locate` on a `size`-pixel image) against `reference`."""
    if crop is None:
        return IdentityScore(False, dict.fromkeys(ATTRIBUTES, False), {}, float("inf"), {})
    ref = reference.look
    # 1. body colour against the reference's plain-body pixels
    mask = _plain_body(ref, reference.box, size)
    measured = np.median(crop[mask], axis=0)
    colour_distance = float(np.linalg.norm(measured - np.array(ref.colour, np.float32)))
    checks = {"colour": colour_distance <= thresholds.colour}
    # 2. each compared attribute: nearest of the reference, drawn in the measured colour (so a colour error
    # is judged once, by step 1), with that attribute set to each value
    candidate = _blur(crop, thresholds.blur)
    # a body lost into the background, or one whose colour passed, is compared in the reference colour exactly
    # (a rounded measured colour spreads its error over the whole body and swamps a pattern's small difference)
    seen = ref
    if not checks["colour"] and np.abs(measured - np.array(BACKGROUND, np.float32)).max() > 2 * LOCATE_THRESHOLD:
        seen = dataclasses.replace(ref, colour=tuple(int(c) // COLOUR_STEP * COLOUR_STEP + COLOUR_STEP // 2
                                                     for c in measured))
    margins, nearest = {}, {}
    for attribute, values in COMPARED.items():
        dist = {v: float(((candidate - _blur(_template(dataclasses.replace(seen, **{attribute: v}), reference.box,
                                                            size), thresholds.blur)) ** 2).mean())
                for v in values}
        own = dist[getattr(ref, attribute)]
        best_other = min(d for v, d in dist.items() if v != getattr(ref, attribute))
        margins[attribute] = (own - best_other) / max(own + best_other, 1e-6)
        nearest[attribute] = min(dist, key=dist.get).value
        checks[attribute] = margins[attribute] < thresholds.margin
    return IdentityScore(True, {a: checks[a] for a in ATTRIBUTES}, margins, colour_distance, nearest)


def score_character(image: np.ndarray, cell: int, reference: Reference,
                    thresholds: Thresholds = THRESHOLDS) -> IdentityScore:
    """Score the character in `cell` of an (S, S, 3) uint8 image against `reference`, every attribute."""
    image = _check_image(image)
    return score_crop(locate(image, cell), reference, image.shape[0], thresholds)


def read_reference(image: np.ndarray, box: float = PROCEDURAL_SIDE) -> Look:
    """The look shown by a clean reference image (one character alone in the centre cell, e.g. one made by
    `render_character`): colour = median of its most common colour, then each compared attribute set to
    its nearest value in turn, twice over (exact on clean renders)."""
    image = _check_image(image)
    crop = locate(image, 4)
    if crop is None:
        raise IdentityScoreError("the reference image shows nothing in its centre cell")
    pixels = crop.reshape(-1, 3)
    fg = np.abs(pixels - np.array(BACKGROUND, np.float32)).max(axis=1) > LOCATE_THRESHOLD
    bins = (pixels[fg] // 16).astype(np.int64)
    keys, counts = np.unique(bins[:, 0] * 256 + bins[:, 1] * 16 + bins[:, 2], return_counts=True)
    mode = keys[int(np.argmax(counts))]
    colour = tuple(int(c) for c in np.median(pixels[fg][(bins[:, 0] * 256 + bins[:, 1] * 16 + bins[:, 2]) == mode],
                                               axis=0).round())
    guess = Look(Body.CIRCLE, colour)  # type: ignore[arg-type]
    size = image.shape[0]
    for _ in range(2):
        for attribute, values in COMPARED.items():
            dist = {v: float(((crop - _template(dataclasses.replace(guess, **{attribute: v}), box, size)) ** 2).mean())
                    for v in values}
            guess = dataclasses.replace(guess, **{attribute: min(dist, key=dist.get)})
    return guess

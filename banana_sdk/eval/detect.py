"""ShapeEval's analytic detector: objects in a ShapeWorld-style image, with their attributes.

ShapeWorld is drawn on a known plain background, so detection needs no training:
1. foreground = pixels whose largest channel difference from the background exceeds `FG_THRESHOLD`
   (`PASTEL_FG_THRESHOLD` for an image drawn in pastel, whose palette is closer to the background);
2. objects = 8-connected foreground components larger than `MIN_AREA` (holes such as eyes filled);
3. position = grid cell of the component's bounding-box centre; size = its longer bounding-box side;
4. colour = nearest reference colour (palette + character bodies) to the median of the component's core
   pixels (the component eroded by one pixel, so anti-aliased and blurred edges do not vote);
5. shape = best soft-IoU between the component's mask and each outline's template, both cropped to their
   bounding boxes and resampled to `TEMPLATE` x `TEMPLATE` (scale-free);
6. a component whose colour is a character's body colour and whose shape is that character's body is the
   character; a character colour with the wrong outline is an unknown character.

`detect(image, styles)` names colours as drawn in those render styles: against pastel references for
`pastel`, and from the vivid pixels (not the eroded core, which is mostly anti-aliased edge on a thin
outline) for `outlined`. Which styles an image shows is `banana_sdk.eval.style`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from banana_sdk.data.render import outline_mask
from banana_sdk.data.world import BACKGROUND, CHARACTERS, COLOURS, SIDE, Shape, Size, Style, parse_styles, pastel

FG_THRESHOLD = 48.0  # max |channel - background| (0-255) above which a pixel is foreground
PASTEL_FG_THRESHOLD = 32.0  # the same for pastel images: pastel pip is only 63 from the background (plain
# ^ colours >= 115), and on generated images its soft fill dips below 48, splitting or dropping the object.
# ^ Calibrated on the demo model's own images drawn pastel by `stylize` (content unchanged by construction):
# ^ 100 prompts of the first demo weights: count 95 % at 48, 99 % at 40 = the plain images' 99 %; 120 prompts of
# ^ the refined weights (issue 20), whose pip fill is softer: 94.2 % at 40, 97.5 at 36, 100 at 32 = plain;
# ^ real renders 100 % at every one of these
MIN_AREA = 0.003  # smallest object kept, fraction of the image area (a small triangle is ~0.011)
SIZE_SPLIT = (SIDE[Size.SMALL] + SIDE[Size.LARGE]) / 2  # bounding side (fraction) splitting small / large
TEMPLATE = 24  # template side in pixels for shape matching
PLAIN_SHAPES = tuple(s.value for s in Shape)
BODIES = tuple(dict.fromkeys(PLAIN_SHAPES + tuple(c.body for c in CHARACTERS.values())))
REFERENCE_COLOURS = {**COLOURS, **{f"@{name}": c.colour for name, c in CHARACTERS.items()}}
_REF_NAMES = list(REFERENCE_COLOURS)
_REF_RGB = np.array([REFERENCE_COLOURS[n] for n in _REF_NAMES], dtype=np.float32)
_PASTEL_RGB = np.array([pastel(REFERENCE_COLOURS[n]) for n in _REF_NAMES], dtype=np.float32)
_EIGHT = np.ones((3, 3), dtype=bool)
FEATURES_PER_CELL = 5 + len(BODIES) + 2  # see `cell_features`
VIVID_FRACTION = 0.4  # share of a component's pixels (farthest from the background) that give `vivid_rgb`


@dataclass(frozen=True)
class Detection:
    cell: int  # grid cell 0..8 of the bounding-box centre
    side: float  # longer bounding-box side, fraction of the image side
    size: str  # "small" or "large"
    colour: str  # nearest palette colour name, or "@name" for a character body colour
    rgb: tuple[float, float, float]  # median core colour (0-255)
    shape: str  # best-matching outline among BODIES
    shape_scores: tuple[float, ...]  # soft IoU with each of BODIES
    character: str | None  # the character this is, if colour and outline both match one
    area: float  # filled area, fraction of the image area
    fill: float  # filled area / bounding-box area
    crispness: float  # fraction of the component's pixels that are fully saturated (1 = sharp edges)
    solidity: float = 1.0  # component pixels / filled pixels (an outline drawn hollow is well below 1)
    vivid_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)  # median colour of the VIVID_FRACTION of pixels
    # ^ farthest from the background (a thin outline's true colour; eyes are too few pixels to move it)


@lru_cache(maxsize=16)
def _templates(side: int) -> np.ndarray:
    """(len(BODIES), side, side) bbox-normalised outline templates."""
    return np.stack([_normalise(outline_mask(body, 4 * side) > 0.5, side) for body in BODIES])


def _normalise(mask: np.ndarray, side: int) -> np.ndarray:
    """Crop a mask to its bounding box and resample to side x side (float coverage)."""
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.uint8) * 255
    img = Image.fromarray(crop, mode="L").resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def _soft_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a (S, S), b (K, S, S) -> (K,) sum(min) / sum(max)."""
    return np.minimum(a, b).sum(axis=(1, 2)) / np.maximum(np.maximum(a, b).sum(axis=(1, 2)), 1e-6)


def foreground_distance(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 largest channel difference from the background."""
    return np.abs(image.astype(np.float32) - np.array(BACKGROUND, np.float32)).max(axis=2)


def reference_rgb(styles: tuple[Style, ...] = ()) -> np.ndarray:
    """(len(REFERENCE_COLOURS), 3) reference colours as drawn in `styles`."""
    return _PASTEL_RGB if Style.PASTEL in styles else _REF_RGB


def foreground_threshold(styles: tuple[Style, ...] = ()) -> float:
    """The foreground distance threshold (0-255) for an image drawn in `styles`."""
    return PASTEL_FG_THRESHOLD if Style.PASTEL in styles else FG_THRESHOLD


def detect(image: np.ndarray, styles: tuple[Style | str, ...] = ()) -> list[Detection]:
    """Objects in an (S, S, 3) uint8 RGB image, largest first (colours named as drawn in `styles`, and
    foreground found with their threshold)."""
    styles = parse_styles(styles)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected a square (S, S, 3) RGB image, got shape {image.shape}")
    size = image.shape[0]
    dist = foreground_distance(image)
    fg = dist > foreground_threshold(styles)
    labels, count = ndimage.label(fg, structure=_EIGHT)
    if count == 0:
        return []
    objects = ndimage.find_objects(labels)
    found = []
    for k, box in enumerate(objects, start=1):
        comp = labels[box] == k
        filled = ndimage.binary_fill_holes(comp)
        area = float(filled.sum())
        if area < MIN_AREA * size * size:
            continue
        found.append(_describe(image[box], dist[box], comp, filled, box, size, styles))
    return sorted(found, key=lambda d: -d.area)


def _describe(pixels: np.ndarray, dist: np.ndarray, comp: np.ndarray, filled: np.ndarray,
              box: tuple[slice, slice], size: int, styles: tuple[Style, ...] = ()) -> Detection:
    y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
    cx, cy = (x0 + x1) / 2 / size, (y0 + y1) / 2 / size
    cell = min(2, int(cy * 3)) * 3 + min(2, int(cx * 3))
    side = max(x1 - x0, y1 - y0) / size
    # colour: median of the core (eroded) pixels, nearest reference colour
    core = ndimage.binary_erosion(comp, structure=_EIGHT)
    if core.sum() < 4:
        core = comp
    rgb = np.median(pixels[core].astype(np.float32), axis=0)
    vivid = comp & (dist >= np.quantile(dist[comp], 1.0 - VIVID_FRACTION))
    vivid_rgb = np.median(pixels[vivid].astype(np.float32), axis=0)
    named = vivid_rgb if Style.OUTLINED in styles else rgb
    colour = _REF_NAMES[int(np.argmin(((reference_rgb(styles) - named) ** 2).sum(axis=1)))]
    # shape: best template among plain shapes, or among all bodies for a character colour
    scores = _soft_iou(_normalise(filled, TEMPLATE), _templates(TEMPLATE))
    candidates = range(len(PLAIN_SHAPES)) if not colour.startswith("@") else range(len(BODIES))
    shape = BODIES[max(candidates, key=lambda i: scores[i])]
    character = None
    if colour.startswith("@") and CHARACTERS[colour[1:]].body == shape:
        character = colour[1:]
    peak = float(dist[comp].max())
    return Detection(
        cell=cell, side=side, size="small" if side < SIZE_SPLIT else "large",
        colour=colour, rgb=tuple(float(c) for c in rgb), shape=shape,
        shape_scores=tuple(float(s) for s in scores), character=character,
        area=float(filled.sum()) / size / size, fill=float(filled.sum()) / filled.size,
        crispness=float((dist[comp] > 0.8 * peak).mean()), solidity=float(comp.sum()) / float(filled.sum()),
        vivid_rgb=tuple(float(c) for c in vivid_rgb),
    )


def cell_features(detections: list[Detection]) -> np.ndarray:
    """(9 * FEATURES_PER_CELL + 3,) evaluator features of one image (for the Fréchet distance).

    Per cell (largest object there, zeros if empty): present, side, r, g, b (0-1), soft IoU with each
    outline, fill ratio, crispness. Then: object count / 5, total foreground area, mean crispness.
    """
    out = np.zeros((9, FEATURES_PER_CELL), dtype=np.float64)
    for det in reversed(detections):  # largest last, so it wins its cell
        out[det.cell] = [1.0, det.side, *(c / 255.0 for c in det.rgb), *det.shape_scores, det.fill, det.crispness]
    tail = [len(detections) / 5.0, sum(d.area for d in detections),
            float(np.mean([d.crispness for d in detections])) if detections else 0.0]
    return np.concatenate([out.reshape(-1), tail])

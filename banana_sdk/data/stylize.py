"""Render styles applied to finished images: the image-space counterpart of `render_scene(..., styles)`.

Works on any image drawn on ShapeWorld's plain background (a render, or a generated image), so a style peel
can be trained to add exactly what the renderer draws to whatever its base generates
(`banana_sdk.peels.train`). On a plain render, `stylize(render_scene(s, n), styles)` matches
`render_scene(s, n, styles)` up to anti-aliasing (tested):
1. outlined: each object (8-connected foreground component, holes filled) keeps a band of its outline: the
   pixels whose position, scaled about the object's bounding-box centre by 1 / (1 - 2 OUTLINE_WIDTH), falls
   outside the object are kept, the rest becomes background (the renderer draws the same scaled copy in
   background colour), except pixels within MIN_BAND px of the object's edge, which always stay: on a
   generated image an object's shape is never exactly the renderer's, and the scaled copy alone would cut
   its thin parts (a small star's points) out of the band, breaking it into pieces that score as extra or
   misnamed objects (measured on the demo model's images: count 99 -> 80 %; with the floor, 99 %; on
   renders the floor changes nothing the renderer draws). Small dark spots (eye pupils) stay: the renderer
   draws eyes on top;
2. pastel: every pixel moves towards white by PASTEL_MIX times its object coverage, estimated as its
   distance from the background / COVERAGE_DISTANCE (clipped to 1), so anti-aliased edges move partially.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from banana_sdk.data.render import OUTLINE_WIDTH
from banana_sdk.data.world import BACKGROUND, PASTEL_MIX, Style, parse_styles

FOREGROUND = 48.0  # max |channel - background| (0-255) above which a pixel belongs to an object
COVERAGE_DISTANCE = 96.0  # distance from the background of a fully covered pixel (the palette's nearest is 115)
MIN_BAND = 2.0  # outlined: pixels within this distance (px) of an object's edge are always part of its band
PUPIL = 60.0  # every channel below this: dark (a pupil if part of a small dark spot)
PUPIL_AREA = 0.05  # a dark spot is a pupil if smaller than this fraction of its object (kiko's body is not)
_EIGHT = np.ones((3, 3), dtype=bool)
_BG = np.array(BACKGROUND, np.float32)


def stylize(image: np.ndarray, styles: tuple[Style | str, ...]) -> np.ndarray:
    """(H, W, 3) or (B, H, W, 3) float or uint8 RGB (0-255) -> the same in `styles` (float32, 0-255)."""
    styles = parse_styles(styles)
    out = np.asarray(image, np.float32)
    if out.ndim == 4:
        return np.stack([stylize(im, styles) for im in out])
    if Style.OUTLINED in styles:
        out = _outlined(out)
    if Style.PASTEL in styles:
        out = _pastel(out)
    return out


def _pastel(image: np.ndarray) -> np.ndarray:
    coverage = np.clip(np.abs(image - _BG).max(axis=2, keepdims=True) / COVERAGE_DISTANCE, 0.0, 1.0)
    return image + PASTEL_MIX * coverage * (255.0 - image)


def _outlined(image: np.ndarray) -> np.ndarray:
    fg = np.abs(image - _BG).max(axis=2) > FOREGROUND
    labels, _ = ndimage.label(fg, structure=_EIGHT)
    out = image.copy()
    scale = 1.0 / (1.0 - 2.0 * OUTLINE_WIDTH)
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        filled = ndimage.binary_fill_holes(labels[box] == k)
        h, w = filled.shape
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
        # where each pixel lands when the object is scaled up about its bounding-box centre
        sy = np.floor((ys - h / 2) * scale + h / 2).astype(int)
        sx = np.floor((xs - w / 2) * scale + w / 2).astype(int)
        inside = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
        hollow = np.zeros_like(filled)
        hollow[inside] = filled[sy[inside], sx[inside]]
        # distance (px) of each object pixel to the nearest pixel outside the object (padded: the box edge too)
        depth = ndimage.distance_transform_edt(np.pad(filled, 1))[1:-1, 1:-1]
        pixels = out[box]
        pixels[hollow & filled & (depth > MIN_BAND) & ~_pupils(pixels, filled)] = _BG
    return out


def _pupils(pixels: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Mask of the small dark spots (eye pupils) of one object."""
    dark, count = ndimage.label((pixels < PUPIL).all(axis=2) & filled, structure=_EIGHT)
    if count == 0:
        return np.zeros_like(filled)
    sizes = ndimage.sum(np.ones_like(dark), dark, index=np.arange(1, count + 1))
    small = np.concatenate([[False], sizes < PUPIL_AREA * filled.sum()])
    return small[dark]

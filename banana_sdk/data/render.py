"""Rasterise ShapeWorld scenes: exact polygons drawn at 4x and box-filtered down (anti-aliased edges).

Outlines are defined in a unit box [-0.5, 0.5]^2 (the object's bounding box, y down); an object of side
`s` (fraction of the image) centred at (cx, cy) maps u -> (cx + u * s) * image_side.

Styles (`world.Style`) change how every object is drawn, never what the scene holds: `pastel` mixes each body
colour with white, `outlined` draws every object (and each character's body) as its outline. Rendering stays
a pure function of (scene, size, styles).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from banana_sdk.data.characters import PROCEDURAL_SIDE, Drawing, Look, drawing, look
from banana_sdk.data.world import (
    BACKGROUND,
    CHARACTERS,
    COLOURS,
    DataError,
    Scene,
    SceneObject,
    Style,
    Texture,
    parse_styles,
    pastel,
)

SUPERSAMPLE = 4  # sub-pixels per pixel side when drawing
STRIPE_PERIOD = 0.25  # stripe period along the diagonal, fraction of the object side
STRIPE_SHADE = 0.55  # stripes are the colour times this
OUTLINE_WIDTH = 0.14  # outline thickness of outlined objects, fraction of the object side
EYE_WHITE, EYE_PUPIL = 0.085, 0.045  # character eye radii, fraction of the object side


def _regular(n: int, start_deg: float) -> list[tuple[float, float]]:
    pts = [(math.cos(math.radians(start_deg + 360 * i / n)), math.sin(math.radians(start_deg + 360 * i / n)))
           for i in range(n)]
    return _fit_unit_box(pts)


def _star(points: int = 5, inner: float = 0.4) -> list[tuple[float, float]]:
    pts = []
    for i in range(2 * points):
        r = 1.0 if i % 2 == 0 else inner
        a = math.radians(-90 + 180 * i / points)
        pts.append((r * math.cos(a), r * math.sin(a)))
    return _fit_unit_box(pts)


def _fit_unit_box(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Scale and centre a polygon so its bounding box is centred with its longer side 1."""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    scale = 1.0 / max(max(xs) - min(xs), max(ys) - min(ys))
    mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return [((x - mx) * scale, (y - my) * scale) for x, y in pts]


_ARM = 0.17  # half thickness of the cross's arms
OUTLINES: dict[str, list[tuple[float, float]] | None] = {
    "circle": None,  # drawn as an ellipse
    "square": [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)],
    "triangle": _fit_unit_box([(0.0, -math.sqrt(3)), (1.0, 0.0), (-1.0, 0.0)]),
    "star": _star(),
    "cross": [(-_ARM, -0.5), (_ARM, -0.5), (_ARM, -_ARM), (0.5, -_ARM), (0.5, _ARM), (_ARM, _ARM),
              (_ARM, 0.5), (-_ARM, 0.5), (-_ARM, _ARM), (-0.5, _ARM), (-0.5, -_ARM), (-_ARM, -_ARM)],
    "diamond": [(0.0, -0.5), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.0)],
    "hexagon": _regular(6, 0.0),
}
EYE_Y = {"triangle": 0.12}  # eye height per character body (default -0.04: slightly above the centre)


def _draw_outline(draw: ImageDraw.ImageDraw, body: str, cx: float, cy: float, side: float, fill) -> None:  # noqa: ANN001
    """Draw `body` of bounding side `side` centred at (cx, cy) (canvas pixels)."""
    outline = OUTLINES[body]
    if outline is None:
        draw.ellipse((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), fill=fill)
    else:
        draw.polygon([(cx + u * side, cy + v * side) for u, v in outline], fill=fill)


def _draw_object(canvas: Image.Image, obj: SceneObject, size: int, styles: tuple[Style, ...] = ()) -> None:
    scale = size * SUPERSAMPLE
    cx, cy, side = obj.cx * scale, obj.cy * scale, obj.side * scale
    draw = ImageDraw.Draw(canvas)
    tint = pastel if Style.PASTEL in styles else (lambda c: c)
    if obj.identity is not None:
        _draw_procedural(canvas, drawing(look(obj.identity), obj.cx, obj.cy, obj.side), size, styles)
        return
    if obj.character:
        char = CHARACTERS[obj.character]
        _draw_outline(draw, char.body, cx, cy, side, tint(char.colour))
        if Style.OUTLINED in styles:
            _draw_outline(draw, char.body, cx, cy, side * (1 - 2 * OUTLINE_WIDTH), BACKGROUND)
        ey = cy + EYE_Y.get(char.body, -0.04) * side
        for ex in (cx - 0.16 * side, cx + 0.16 * side):
            for radius, colour in ((EYE_WHITE, (255, 255, 255)), (EYE_PUPIL, (0, 0, 0))):
                r = radius * side
                draw.ellipse((ex - r, ey - r, ex + r, ey + r), fill=colour)
        return
    colour = tint(COLOURS[obj.colour])
    body = obj.shape.value
    texture = Texture.OUTLINED if Style.OUTLINED in styles else obj.texture
    if texture is Texture.SOLID:
        _draw_outline(draw, body, cx, cy, side, colour)
    elif texture is Texture.OUTLINED:
        _draw_outline(draw, body, cx, cy, side, colour)
        _draw_outline(draw, body, cx, cy, side * (1 - 2 * OUTLINE_WIDTH), BACKGROUND)
    else:  # striped: the shape in the colour, every other diagonal band in a darker shade
        mask = Image.new("L", canvas.size, 0)
        _draw_outline(ImageDraw.Draw(mask), body, cx, cy, side, 255)
        ys, xs = np.mgrid[0:canvas.size[1], 0:canvas.size[0]]
        bands = (np.floor((xs + ys) / (STRIPE_PERIOD * side * math.sqrt(2))) % 2).astype(bool)
        stripes = Image.fromarray(np.where(bands, np.asarray(mask), 0).astype(np.uint8), mode="L")
        canvas.paste(colour, mask=mask)
        canvas.paste(tuple(int(c * STRIPE_SHADE) for c in colour), mask=stripes)


def _draw_procedural(canvas: Image.Image, sketch: Drawing, size: int, styles: tuple[Style, ...] = ()) -> None:
    """Rasterise a procedural character: body, pattern clipped to it (none when outlined), eyes, accessory."""
    scale = size * SUPERSAMPLE
    tint = pastel if Style.PASTEL in styles else (lambda c: c)
    cx, cy, side = sketch.cx * scale, sketch.cy * scale, sketch.side * scale
    draw = ImageDraw.Draw(canvas)
    _draw_outline(draw, sketch.body.value, cx, cy, side, tint(sketch.colour))
    if Style.OUTLINED in styles:
        _draw_outline(draw, sketch.body.value, cx, cy, side * (1 - 2 * OUTLINE_WIDTH), BACKGROUND)
    elif sketch.pattern:
        body = Image.new("L", canvas.size, 0)
        _draw_outline(ImageDraw.Draw(body), sketch.body.value, cx, cy, side, 255)
        marks = Image.new("L", canvas.size, 0)
        for part in sketch.pattern:  # every pattern part has one colour: the shade or the belly tint
            _draw_primitive(ImageDraw.Draw(marks), part.ellipse, part.points, scale, 255)
        canvas.paste(tint(sketch.pattern[0].colour), mask=ImageChops.multiply(marks, body))
    for part in sketch.features:
        _draw_primitive(draw, part.ellipse, part.points, scale, part.colour)


def _draw_primitive(draw: ImageDraw.ImageDraw, ellipse: bool, points: tuple, scale: float, fill) -> None:  # noqa: ANN001
    xy = [(x * scale, y * scale) for x, y in points]
    if ellipse:
        draw.ellipse((*xy[0], *xy[1]), fill=fill)
    else:
        draw.polygon(xy, fill=fill)


def render_character(character: Look | int, size: int = 128, box: float = PROCEDURAL_SIDE, cx: float = 0.5,
                     cy: float = 0.5, styles: tuple[Style | str, ...] = ()) -> np.ndarray:
    """(size, size, 3) uint8 image of one character alone, its box of side `box` (fraction) centred at (cx, cy).

    With an identity id and the defaults it is that identity's clean reference image (the input of
    `banana subject add NAME --image ref.png`: 128 x 128, plain background)."""
    if not isinstance(size, int) or size < 32:
        raise DataError(f"image size must be an integer >= 32 pixels, got {size!r}")
    canvas = Image.new("RGB", (size * SUPERSAMPLE, size * SUPERSAMPLE), BACKGROUND)
    _draw_procedural(canvas, drawing(look(character) if isinstance(character, int) else character, cx, cy, box),
                     size, parse_styles(styles))
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


def render_scene(scene: Scene, size: int, styles: tuple[Style | str, ...] = ()) -> np.ndarray:
    """(size, size, 3) uint8 RGB image of `scene`, drawn in `styles` (none = the plain look)."""
    if not isinstance(size, int) or size < 32:
        raise DataError(f"image size must be an integer >= 32 pixels, got {size!r}")
    styles = parse_styles(styles)
    canvas = Image.new("RGB", (size * SUPERSAMPLE, size * SUPERSAMPLE), BACKGROUND)
    for obj in scene.objects:
        _draw_object(canvas, obj, size, styles)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)


@lru_cache(maxsize=64)
def outline_mask(body: str, side: int) -> np.ndarray:
    """(side, side) float32 coverage in [0, 1] of `body` filling a side x side box (evaluator templates)."""
    canvas = Image.new("L", (side * SUPERSAMPLE, side * SUPERSAMPLE), 0)
    full = side * SUPERSAMPLE
    _draw_outline(ImageDraw.Draw(canvas), body, full / 2, full / 2, full, 255)
    out = np.asarray(canvas.resize((side, side), Image.Resampling.BOX), dtype=np.float32) / 255.0
    out.setflags(write=False)
    return out

"""ShapeEval's style detector: which render styles (`banana_sdk.data.world.Style`) an image shows.

Analytic, like the object detector it builds on (`detect.detect`). Every detected object casts a vote
in [-1, 1] per style, weighted by its filled area; an image shows a style when the weighted vote is > 0
(an image without objects shows none):
1. pastel: d_plain, d_pastel = distance of the object's vivid colour (`Detection.vivid_rgb`) to the nearest
   plain and the nearest pastel reference colour; vote = clip((d_plain - d_pastel) / COLOUR_MARGIN, -1, 1)
   (ambiguous pairs such as pastel kiko vs plain momo vote about 0);
2. outlined: vote = clip((HOLLOW_SPLIT - solidity) / HOLLOW_MARGIN, -1, 1), where solidity = drawn pixels /
   filled pixels (solid shapes and characters >= 0.9, outlines about 0.45-0.65).
`style_score` = the fraction of images that show every intended style. `real_style_accuracy` is the
detector's accuracy on real renders with and without each style (the other styles drawn at random).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from banana_sdk.data.dataset import ShapeWorld
from banana_sdk.data.world import DEMO_WORLD, Style, WorldConfig, parse_styles
from banana_sdk.eval.detect import _PASTEL_RGB, _REF_RGB, Detection, detect
from banana_sdk.eval.seeds import EVAL_SEED_OFFSET

COLOUR_MARGIN = 30.0  # RGB distance (0-255) at which a pastel vote saturates
HOLLOW_SPLIT = 0.78  # solidity between outlines (<= 0.66 on real renders) and solid objects (>= 0.9)
HOLLOW_MARGIN = 0.12  # solidity distance at which an outlined vote saturates


def _pastel_vote(det: Detection) -> float:
    rgb = np.array(det.vivid_rgb, np.float32)
    d_plain = float(np.sqrt(((_REF_RGB - rgb) ** 2).sum(axis=1)).min())
    d_pastel = float(np.sqrt(((_PASTEL_RGB - rgb) ** 2).sum(axis=1)).min())
    return float(np.clip((d_plain - d_pastel) / COLOUR_MARGIN, -1.0, 1.0))


def _outlined_vote(det: Detection) -> float:
    return float(np.clip((HOLLOW_SPLIT - det.solidity) / HOLLOW_MARGIN, -1.0, 1.0))


VOTES = {Style.PASTEL: _pastel_vote, Style.OUTLINED: _outlined_vote}


def style_votes(detections: list[Detection]) -> dict[Style, float]:
    """{style: area-weighted vote in [-1, 1]} of one image's detections (-1 for an image without objects)."""
    total = sum(d.area for d in detections)
    if total <= 0:
        return {s: -1.0 for s in Style}
    return {s: sum(d.area * vote(d) for d in detections) / total for s, vote in VOTES.items()}


def detect_styles(image: np.ndarray) -> tuple[Style, ...]:
    """The styles an (S, S, 3) uint8 RGB image shows, in `Style` order."""
    votes = style_votes(detect(image))
    return tuple(s for s in Style if votes[s] > 0)


def shows(image: np.ndarray, styles: Iterable[Style | str]) -> bool:
    """True if the image shows every style of `styles`."""
    found = set(detect_styles(image))
    return all(s in found for s in parse_styles(tuple(styles)))


def style_score(images: Iterable[np.ndarray], styles: Iterable[Style | str]) -> float:
    """Fraction of `images` that show every intended style."""
    hits = [shows(image, styles) for image in images]
    return sum(hits) / len(hits) if hits else 0.0


def real_style_accuracy(samples: int = 300, seed: int = 0, size: int = 128,
                        world: WorldConfig = DEMO_WORLD) -> dict[str, Any]:
    """The detector on real renders: per style, scene i drawn with and without it (the other styles on or off
    at random, seeded), so 2 * samples images per style; accuracy = correctly judged / all."""
    rng = np.random.default_rng(seed)
    report: dict[str, Any] = {"samples": samples, "size": size, "seed": seed, "per_style": {}}
    for style in Style:
        correct = 0
        for i in range(samples):
            others = tuple(s for s in Style if s is not style and rng.random() < 0.5)
            for with_style in (True, False):
                styles = others + ((style,) if with_style else ())
                image = ShapeWorld(world, EVAL_SEED_OFFSET + seed, size, styles).image(i)
                correct += (style in detect_styles(image)) == with_style
        report["per_style"][style.value] = round(correct / (2 * samples), 4)
    report["accuracy"] = min(report["per_style"].values())
    return report

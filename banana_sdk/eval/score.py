"""ShapeEval scoring: what a prompt asks for vs what the detector found, per attribute and overall.

For every object the prompt names (a cell, plus shape/colour/size or a character):
    position  - some object was detected in that cell;
    shape     - the object detected there has the asked shape   (plain objects);
    colour    - ... the asked colour                             (plain objects);
    size      - ... the asked size                               (plain objects);
    identity  - ... is the asked character                       (characters).
Per image: count - exactly as many objects were detected as the prompt names; an image is fully correct
when every check of every object and the count pass. A wrong or missing object fails all its checks.
`attribute_accuracy` is the mean of the shape, colour, position and count accuracies.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from banana_sdk.data.world import ObjectSpec
from banana_sdk.eval.detect import Detection

ATTRIBUTES = ("shape", "colour", "position", "count")  # averaged into attribute_accuracy
REPORTED = ATTRIBUTES + ("size", "identity")  # everything with an accuracy in the report


@dataclass
class ImageScore:
    checks: dict[str, list[bool]]  # attribute -> one pass/fail per check in this image
    fully_correct: bool  # every check passed

    def accuracy(self, attribute: str) -> float | None:
        values = self.checks.get(attribute, [])
        return sum(values) / len(values) if values else None


def score_detections(specs: list[ObjectSpec], detections: list[Detection]) -> ImageScore:
    """Score one image's detections against the objects its prompt asks for."""
    by_cell: dict[int, Detection] = {}
    for det in detections:  # largest first: the largest object in a cell represents it
        by_cell.setdefault(det.cell, det)
    checks: dict[str, list[bool]] = defaultdict(list)
    for spec in specs:
        found = by_cell.get(spec.cell)
        checks["position"].append(found is not None)
        if spec.character is not None:
            checks["identity"].append(found is not None and found.character == spec.character)
            continue
        checks["shape"].append(found is not None and found.shape == spec.shape.value)
        checks["colour"].append(found is not None and found.colour == spec.colour)
        if spec.size is not None:
            checks["size"].append(found is not None and found.size == spec.size.value)
    checks["count"].append(len(detections) == len(specs))
    return ImageScore(dict(checks), all(all(v) for v in checks.values()))


@dataclass
class Tally:
    """Running totals over many images."""

    passed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    images: int = 0
    fully_correct: int = 0

    def add(self, score: ImageScore) -> None:
        self.images += 1
        self.fully_correct += int(score.fully_correct)
        for attribute, values in score.checks.items():
            self.passed[attribute] += sum(values)
            self.total[attribute] += len(values)

    def accuracy(self, attribute: str) -> float | None:
        total = self.total.get(attribute, 0)
        return self.passed[attribute] / total if total else None

    def summary(self) -> dict[str, object]:
        """{"attribute_accuracy", "per_attribute": {...}, "fully_correct", "identity", "images"} (fractions)."""
        per = {a: self.accuracy(a) for a in REPORTED}
        main = [per[a] for a in ATTRIBUTES if per[a] is not None]
        return {
            "attribute_accuracy": round(sum(main) / len(main), 4) if main else None,
            "per_attribute": {a: (round(v, 4) if v is not None else None) for a, v in per.items()},
            "fully_correct": round(self.fully_correct / self.images, 4) if self.images else None,
            "identity": round(per["identity"], 4) if per["identity"] is not None else None,
            "images": self.images,
        }

"""`make demo`: the main job end to end on the built-in demo model.

Stages (each later issue adds its own): generate with PyTorch -> convert to a LiteRT bundle ->
generate on LiteRT -> profile on a device (the simulated one when no phone is attached) -> report.
"""

from __future__ import annotations

import sys
from pathlib import Path

from banana_sdk.commands import save_png
from banana_sdk.errors import BananaError
from banana_sdk.pipeline import Pipeline

OUT = Path("out/demo")
PROMPT = "a small red circle top left and a large blue square bottom right"


def load_demo_pipeline() -> Pipeline:
    """The committed trained demo weights when present, else the tiny preset with random weights."""
    weights = Path(__file__).parent / "weights" / "demo"
    if (weights / "config.json").is_file():
        return Pipeline.from_pretrained(weights)
    return Pipeline.from_preset("tiny")


def main() -> int:
    pipe = load_demo_pipeline()
    if not pipe.trained:
        print("note: no trained demo weights yet; running the tiny preset with UNTRAINED random weights")
    result = pipe.run(PROMPT, seed=0)
    out = OUT / "torch.png"
    save_png(result.image, out)
    print(f"[1/1] PyTorch {pipe.config.name}: {out.resolve()} ({result.e2e_ms:.0f} ms)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BananaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

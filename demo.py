"""`make demo`: the main job end to end on the built-in demo model.

1. generate with PyTorch from the committed demo weights (or the tiny preset, untrained, if absent)
2. convert to an INT4 LiteRT bundle (re-runs skip what is current)
3. generate the same prompt on LiteRT on this host and compare with PyTorch
4. profile the bundle on a device through adb (the simulated device when no phone is attached) -> HTML report
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from banana_sdk.errors import BananaError
from banana_sdk.imageio import save_png
from banana_sdk.pipeline import Pipeline
from banana_sdk.presets import DEMO_WEIGHTS
from banana_sdk.runtime.litert import LiteRTPipeline
from converters.convert import convert
from device_tests.demo import profile_on_simulator

OUT = Path("out/demo")
PROMPT = "a small red circle top left and a large blue square bottom right"
WEIGHTS = DEMO_WEIGHTS


def _source() -> tuple[Pipeline, dict]:
    """The committed trained demo weights when present, else the tiny preset with random weights."""
    if (WEIGHTS / "config.json").is_file():
        return Pipeline.from_pretrained(WEIGHTS), {"model_dir": WEIGHTS}
    return Pipeline.from_preset("tiny"), {"preset": "tiny"}


def main() -> int:
    pipe, source = _source()
    if not pipe.trained:
        print("note: no trained demo weights yet; running the tiny preset with UNTRAINED random weights")
    steps = pipe.config.sampler.steps
    torch_result = pipe.run(PROMPT, steps=steps, seed=0)
    save_png(torch_result.image, OUT / "torch.png")
    print(f"[1/4] PyTorch {pipe.config.name}, {steps} steps: {(OUT / 'torch.png').resolve()} "
          f"({torch_result.e2e_ms:.0f} ms)")

    bundle = convert(OUT / f"bundle-{pipe.config.name}-int4", quant="int4", progress=True, **source)
    print(f"[2/4] INT4 LiteRT bundle: {bundle.resolve()}")

    lite = LiteRTPipeline.load(bundle)
    lite_result = lite.run(PROMPT, steps=steps, seed=0)
    save_png(lite_result.image, OUT / "litert-int4.png")
    diff = np.abs(np.asarray(lite_result.image, np.int16) - np.asarray(torch_result.image, np.int16)).mean()
    print(f"[3/4] LiteRT INT4 on this host: {(OUT / 'litert-int4.png').resolve()} ({lite_result.e2e_ms:.0f} ms, "
          f"mean |LiteRT - PyTorch| = {diff:.2f}/255)")

    report = profile_on_simulator(bundle, OUT / "profile")
    print(f"[4/4] profiled on a device through adb; HTML report: {Path(report).resolve()}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BananaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

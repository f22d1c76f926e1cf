"""`banana eval`'s source: a checkpoint directory (PyTorch) or a LiteRT bundle, scored by ShapeEval.

Kept out of `banana_sdk.eval` so the evaluator does not depend on the runtimes (the runtime imports peels, peels
import training, training's critic reads the evaluator's detector: the package stays acyclic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from banana_sdk.errors import ConfigError
from banana_sdk.eval.evaluate import _check_samples, evaluate_pipeline


def evaluate_source(model_dir: Path | None = None, bundle: Path | None = None, steps: int | None = None,
                    samples: int = 100, seed: int = 0, sampler: str | None = None,
                    guidance_scale: float | None = None, threads: int = 2) -> dict[str, Any]:
    """`banana eval`: a checkpoint dir (PyTorch) or a LiteRT bundle dir -> the report dict."""
    if (model_dir is None) == (bundle is None):
        raise ConfigError("give exactly one of a model directory or a bundle directory")
    _check_samples(samples)
    if bundle is not None:
        from banana_sdk.runtime.litert import LiteRTPipeline

        pipe = LiteRTPipeline.load(bundle, threads=threads)
        label = {"source": "bundle", "path": str(bundle),
                 "quantization": pipe.manifest.get("quantization", {}).get("recipe")}
    else:
        from banana_sdk.pipeline import Pipeline

        pipe = Pipeline.from_pretrained(model_dir)
        label = {"source": "model", "path": str(model_dir), "trained": pipe.trained}
    return evaluate_pipeline(pipe, samples, seed, steps, sampler, guidance_scale, label)

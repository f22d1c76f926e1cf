"""Shared fixtures: tiny models, checkpoints and converted bundles (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from banana_sdk.pipeline import Pipeline


@pytest.fixture(scope="session")
def tiny_pipeline() -> Pipeline:
    return Pipeline.from_preset("tiny")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline: Pipeline) -> Path:
    """A saved tiny checkpoint (random weights, seed 0)."""
    return tiny_pipeline.save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny")


_BUNDLES: dict[str, Path] = {}


@pytest.fixture(scope="session")
def bundle_factory(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path):  # noqa: ANN201
    """bundle_factory(quant) -> a tiny bundle converted from `tiny_checkpoint` (cached per quant)."""
    from converters.convert import convert

    def make(quant: str = "fp32") -> Path:
        if quant not in _BUNDLES:
            _BUNDLES[quant] = convert(tmp_path_factory.mktemp("bundles") / f"tiny-{quant}",
                                      model_dir=tiny_checkpoint, quant=quant)
        return _BUNDLES[quant]

    return make


@pytest.fixture(scope="session")
def tiny_bundle(bundle_factory) -> Path:  # noqa: ANN001
    """The tiny fp32 bundle."""
    return bundle_factory("fp32")

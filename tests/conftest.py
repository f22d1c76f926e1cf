"""Shared fixtures: tiny models, checkpoints and converted bundles (built once per session)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _sigint_handler_restored() -> Iterator[None]:
    """Every test leaves Python's Ctrl-C handler as it found it (a leaked handler made a later Ctrl-C test of
    `banana profile` run its whole session instead of stopping); the leaking test fails with its name."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        pytest.fail(f"the test replaced the SIGINT handler ({before!r} -> {after!r}) and did not restore it")

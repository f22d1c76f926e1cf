"""The sampler contract; the registry is `banana_sdk.sampling.registry`. Samplers work on numpy arrays
so PyTorch and LiteRT share them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from banana_sdk.errors import ConfigError

# model_fn(x_t, t) -> v: latent (B, C, h, w) float32 and time t in [0, 1] -> velocity, same shape.
ModelFn = Callable[[np.ndarray, float], np.ndarray]
# step_callback(step_index, steps) is called after each denoising step (progress bars, latency probes).
StepCallback = Callable[[int, int], None]


class Sampler(Protocol):
    name: str  # registry key
    min_steps: int  # fewest steps this sampler is meant for
    max_steps: int  # most steps this sampler is meant for

    def timesteps(self, steps: int, shift: float = 1.0) -> np.ndarray:
        """(steps,) float64 times at which the model is evaluated, strictly decreasing in [0, 1] (flow samplers:
        in (0, 1]; a DDPM schedule with leading spacing and no steps_offset evaluates its last step at t = 0)."""

    def sample(
        self,
        model_fn: ModelFn,
        shape: tuple[int, ...],
        steps: int,
        seed: int,
        shift: float = 1.0,
        callback: StepCallback | None = None,
    ) -> np.ndarray:
        """Clean latent of `shape` (float32) after `steps` model evaluations."""


def check_steps(sampler: Sampler, steps: int) -> None:
    """Raise ConfigError unless `steps` is in the sampler's range."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not (
        sampler.min_steps <= steps <= sampler.max_steps
    ):
        raise ConfigError(
            f"{sampler.name} sampler takes {sampler.min_steps}-{sampler.max_steps} steps, got {steps}"
        )

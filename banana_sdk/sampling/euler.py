"""Teacher sampler: Euler integration of the rectified-flow ODE, 10-50 steps typical."""

from __future__ import annotations

import numpy as np

from banana_sdk.sampling.base import ModelFn, StepCallback, check_steps
from banana_sdk.sampling.noise import gaussian
from banana_sdk.sampling.schedule import time_grid


class EulerSampler:
    name = "euler"
    min_steps = 1
    max_steps = 100

    def timesteps(self, steps: int, shift: float = 1.0) -> np.ndarray:
        return time_grid(steps, shift)[:-1]

    def sample(
        self,
        model_fn: ModelFn,
        shape: tuple[int, ...],
        steps: int,
        seed: int,
        shift: float = 1.0,
        callback: StepCallback | None = None,
    ) -> np.ndarray:
        check_steps(self, steps)
        # start from pure noise at t = 1 (stream 0 of the portable generator); at t = 0 it is the clean latent
        return integrate_velocity(model_fn, gaussian(seed, 0, shape), time_grid(steps, shift), callback)


def integrate_velocity(model_fn: ModelFn, x: np.ndarray, grid: np.ndarray,
                       callback: StepCallback | None = None) -> np.ndarray:
    """Euler steps of dx/dt = v from `x` at grid[0] to grid[-1] (descending times or sigmas, len steps + 1):
    v = model_fn(x, t_i), x += (t_{i+1} - t_i) v in float32. Rectified flow (ours) and flow matching (SD3) alike."""
    steps = len(grid) - 1
    for i in range(steps):
        t, t_next = float(grid[i]), float(grid[i + 1])
        v = model_fn(x, t)
        x = (x + (t_next - t) * v).astype(np.float32)
        if callback is not None:
            callback(i, steps)
    return x

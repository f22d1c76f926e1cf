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
        # 1. start from pure noise at t = 1 (stream 0 of the portable generator)
        grid = time_grid(steps, shift)
        x = gaussian(seed, 0, shape)
        for i in range(steps):
            t, t_next = float(grid[i]), float(grid[i + 1])
            # 2. predict the velocity at the current time
            v = model_fn(x, t)
            # 3. step along the ODE: dx/dt = v, dt = t_next - t (< 0)
            x = (x + (t_next - t) * v).astype(np.float32)
            if callback is not None:
                callback(i, steps)
        # 4. at t = 0 the state is the clean latent
        return x

"""Multistep latent-consistency sampler for LCD-distilled students, 1-8 steps."""

from __future__ import annotations

import numpy as np

from banana_sdk.sampling.base import ModelFn, StepCallback, check_steps
from banana_sdk.sampling.noise import gaussian
from banana_sdk.sampling.schedule import add_noise, predict_x0, time_grid


class LCMSampler:
    name = "lcm"
    min_steps = 1
    max_steps = 8

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
        # 1. start from pure noise at t = 1 (stream 0)
        grid = time_grid(steps, shift)
        x = gaussian(seed, 0, shape)
        x0 = x
        for i in range(steps):
            t, t_next = float(grid[i]), float(grid[i + 1])
            # 2. the consistency function maps x_t straight to a clean estimate
            x0 = predict_x0(x, model_fn(x, t), t)
            # 3. unless this was the last step, re-noise the estimate to the next time (stream i+1)
            if i + 1 < steps:
                x = add_noise(x0, gaussian(seed, i + 1, shape), t_next)
            if callback is not None:
                callback(i, steps)
        # 4. the last estimate is the sample
        return x0

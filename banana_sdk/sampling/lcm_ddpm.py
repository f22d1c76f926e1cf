"""Multistep latent-consistency sampler for LCM-distilled DDPM models (diffusers' `LCMScheduler`), 1-8 steps.

The distillation grid holds `original_inference_steps` timesteps `k_j = (j + 1) * (T // n) - 1`; N
inference timesteps are picked from it at evenly spaced indices, from the noisiest down. Each step maps
x_k to a clean estimate with the consistency boundary condition and, unless it is the last step,
re-noises that estimate to the next timestep with fresh portable noise (stream i + 1).
"""

from __future__ import annotations

import numpy as np

from banana_sdk.errors import ConfigError
from banana_sdk.sampling.base import ModelFn, StepCallback, check_steps
from banana_sdk.sampling.ddpm import DDPMSchedule, clip_x0, split_prediction
from banana_sdk.sampling.noise import gaussian

SIGMA_DATA = 0.5  # consistency-model data scale (fixed by the LCM recipe)


class LCMDDPMSampler:
    name = "lcm-ddpm"
    min_steps = 1
    max_steps = 8

    def __init__(self, schedule: DDPMSchedule) -> None:
        self.schedule = schedule

    def grid(self, steps: int) -> list[int]:
        """The N integer timesteps, noisiest first."""
        sched = self.schedule
        n = sched.original_inference_steps
        if steps > n:
            raise ConfigError(f"lcm-ddpm takes at most original_inference_steps={n} steps, got {steps}")
        stride = sched.num_train_timesteps // n
        origin = [(j + 1) * stride - 1 for j in range(n)][::-1]
        return [origin[int(np.floor(v))] for v in np.linspace(0, n, num=steps, endpoint=False)]

    def timesteps(self, steps: int, shift: float = 1.0) -> np.ndarray:
        return np.array([self.schedule.model_time(k) for k in self.grid(steps)])

    def scalings(self, k: int) -> tuple[float, float]:
        """(c_skip, c_out) of the consistency boundary condition at timestep k."""
        s = k * self.schedule.timestep_scaling
        return SIGMA_DATA**2 / (s**2 + SIGMA_DATA**2), s / np.sqrt(s**2 + SIGMA_DATA**2)

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
        sched = self.schedule
        ks = self.grid(steps)
        # 1. start from unit noise (stream 0)
        x = gaussian(seed, 0, shape)
        denoised = x
        for i, k in enumerate(ks):
            # 2. the model's prediction -> clean latent x0
            x0, _ = split_prediction(sched, x, model_fn(x, sched.model_time(k)), k)
            x0 = clip_x0(sched, x0)
            # 3. consistency boundary condition: mix the estimate with the input
            c_skip, c_out = self.scalings(k)
            denoised = (c_out * x0 + c_skip * x).astype(np.float32)
            # 4. unless last, re-noise the estimate to the next timestep (stream i + 1)
            if i + 1 < steps:
                a_next = sched.alpha(ks[i + 1])
                noise = gaussian(seed, i + 1, shape)
                x = (np.sqrt(a_next) * denoised + np.sqrt(1.0 - a_next) * noise).astype(np.float32)
            if callback is not None:
                callback(i, steps)
        # 5. the last estimate is the sample
        return denoised

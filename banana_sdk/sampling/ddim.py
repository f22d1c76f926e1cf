"""Teacher sampler for DDPM-schedule models (Stable-Diffusion family): deterministic DDIM (eta = 0).

Used for every non-distilled diffusers pipeline: whatever scheduler class the pipeline shipped with
(PNDM, DDIM, DPM-Solver, Euler), its `alphas_cumprod` and timestep spacing drive DDIM here.
"""

from __future__ import annotations

import numpy as np

from banana_sdk.sampling.base import ModelFn, StepCallback, check_steps
from banana_sdk.sampling.ddpm import DDPMSchedule, clip_x0, spaced_timesteps, split_prediction
from banana_sdk.sampling.noise import gaussian


class DDIMSampler:
    name = "ddim"
    min_steps = 1
    max_steps = 100

    def __init__(self, schedule: DDPMSchedule) -> None:
        self.schedule = schedule

    def timesteps(self, steps: int, shift: float = 1.0) -> np.ndarray:
        """The model times k / T at which the denoiser runs."""
        return np.array([self.schedule.model_time(k) for k in spaced_timesteps(self.schedule, steps)])

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
        ks = spaced_timesteps(sched, steps)
        stride = sched.num_train_timesteps // steps
        # 1. start from unit noise (stream 0); DDIM's initial sigma is 1
        x = gaussian(seed, 0, shape)
        for i, k in enumerate(ks):
            # 2. the model's prediction -> clean latent x0 and noise eps at timestep k
            x0, eps = split_prediction(sched, x, model_fn(x, sched.model_time(k)), k)
            x0 = clip_x0(sched, x0)
            # 3. move to the previous timestep k - T/N along the deterministic DDIM path
            a_prev = sched.alpha(k - stride)
            x = (np.sqrt(a_prev) * x0 + np.sqrt(1.0 - a_prev) * eps).astype(np.float32)
            if callback is not None:
                callback(i, steps)
        # 4. after the last step the state is the clean latent
        return x

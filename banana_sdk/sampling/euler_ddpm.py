"""Euler samplers on a DDPM schedule (diffusers' `EulerDiscreteScheduler` and `EulerAncestralDiscreteScheduler`).

The DDPM table is read as a variance-exploding (Karras) noise level per timestep, `sigma_k = sqrt((1 - a_k) / a_k)`,
and the state is `x = x0 + sigma eps` (the DDPM state times `sqrt(1 + sigma^2)`). For N steps:

1. timesteps k_i by the schedule's spacing (leading / trailing as DDIM; linspace unrounded, sigma interpolated
   linearly between table entries), sigma_i = sigma(k_i), sigma_N = 0;
2. start: x = noise (stream 0) * s0 with s0 = sigma_0 for trailing/linspace spacing, sqrt(sigma_0^2 + 1) for leading;
3. step i: the model sees `x / sqrt(sigma_i^2 + 1)` at time k_i / T; x0 from its prediction (epsilon:
   x0 = x - sigma eps; v: x0 = x / (sigma^2 + 1) - sigma v / sqrt(sigma^2 + 1)); d = (x - x0) / sigma_i;
   - euler-ddpm: x = x + (sigma_{i+1} - sigma_i) d
   - euler-ancestral-ddpm: s_up = sqrt(s'^2 (s^2 - s'^2) / s^2), s_down = sqrt(s'^2 - s_up^2) with s = sigma_i,
     s' = sigma_{i+1}; x = x + (s_down - s) d + s_up noise_{i+1} (stream i + 1; s_up = 0 at the last step).
4. the last state is the clean latent.
"""

from __future__ import annotations

import numpy as np

from banana_sdk.errors import ConfigError
from banana_sdk.sampling.base import ModelFn, StepCallback, check_steps
from banana_sdk.sampling.ddpm import DDPMSchedule, Prediction, Spacing, spaced_timesteps
from banana_sdk.sampling.noise import gaussian


def euler_timesteps(schedule: DDPMSchedule, steps: int) -> np.ndarray:
    """(steps,) float64 timesteps k_i, strictly decreasing (linspace: not rounded, as diffusers' Euler schedulers)."""
    if schedule.spacing is Spacing.LINSPACE:
        if not 1 <= steps <= schedule.num_train_timesteps:
            raise ConfigError(f"steps must be in [1, {schedule.num_train_timesteps}], got {steps}")
        return np.linspace(0, schedule.num_train_timesteps - 1, steps)[::-1].copy()
    return np.array(spaced_timesteps(schedule, steps), dtype=np.float64)


def euler_sigmas(schedule: DDPMSchedule, ks: np.ndarray) -> np.ndarray:
    """(len(ks) + 1,) float64 noise levels sigma(k_i), linear between table entries, then the final 0."""
    table = np.asarray(schedule.alphas_cumprod, dtype=np.float64)
    sigmas = np.interp(ks, np.arange(len(table)), np.sqrt((1.0 - table) / table))
    return np.concatenate([sigmas, [0.0]])


def predicted_x0(schedule: DDPMSchedule, x: np.ndarray, out: np.ndarray, sigma: float) -> np.ndarray:
    """The clean latent implied by the model output at noise level sigma (Euler state x = x0 + sigma eps)."""
    if schedule.prediction is Prediction.EPSILON:
        return x - sigma * out
    if schedule.prediction is Prediction.V:
        return out * (-sigma / np.sqrt(sigma**2 + 1.0)) + x / (sigma**2 + 1.0)
    return out


class EulerDDPMSampler:
    name = "euler-ddpm"
    min_steps = 1
    max_steps = 100
    ancestral = False  # deterministic: no noise after the first

    def __init__(self, schedule: DDPMSchedule) -> None:
        self.schedule = schedule

    def timesteps(self, steps: int, shift: float = 1.0) -> np.ndarray:
        """The model times k_i / T at which the denoiser runs."""
        return euler_timesteps(self.schedule, steps) / self.schedule.num_train_timesteps

    def initial_sigma(self, sigmas: np.ndarray) -> float:
        """Scale of the starting noise (diffusers' `init_noise_sigma`)."""
        top = float(sigmas.max())
        return top if self.schedule.spacing is not Spacing.LEADING else float(np.sqrt(top**2 + 1.0))

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
        ks = euler_timesteps(sched, steps)
        sigmas = euler_sigmas(sched, ks)
        # 1. start from unit noise (stream 0) scaled to the first noise level
        x = (gaussian(seed, 0, shape) * self.initial_sigma(sigmas)).astype(np.float32)
        for i, k in enumerate(ks):
            sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
            # 2. the model sees the DDPM-scaled state at timestep k
            out = model_fn((x / np.sqrt(sigma**2 + 1.0)).astype(np.float32), float(k) / sched.num_train_timesteps)
            # 3. the ODE derivative from the predicted clean latent
            derivative = (x - predicted_x0(sched, x, out, sigma)) / sigma
            # 4. Euler step to the next level (ancestral: to s_down, then fresh noise of size s_up)
            if not self.ancestral:
                x = (x + (sigma_next - sigma) * derivative).astype(np.float32)
            else:
                up = np.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2)
                down = np.sqrt(sigma_next**2 - up**2)
                x = x + (down - sigma) * derivative
                if up > 0.0:
                    x = x + up * gaussian(seed, i + 1, shape)
                x = x.astype(np.float32)
            if callback is not None:
                callback(i, steps)
        # 5. at sigma = 0 the state is the clean latent
        return x


class EulerAncestralDDPMSampler(EulerDDPMSampler):
    name = "euler-ancestral-ddpm"
    ancestral = True  # fresh portable noise (stream i + 1) after step i

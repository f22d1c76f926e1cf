"""Noise-schedule math shared by every sampler; the Kotlin SDK mirrors this file line for line.

Rectified flow with velocity prediction:
    x_t = (1 - t) * x0 + t * eps,  t in [0, 1] (t = 1 is pure noise),
    v   = eps - x0                 (what the denoiser predicts),
    x0  = x_t - t * v              (the clean latent implied by a prediction).
No cumprod, no int64: every quantity is a closed-form function of t in float64.
"""

from __future__ import annotations

import numpy as np

MIN_STEPS = 1  # fewest denoising steps any sampler accepts
MAX_STEPS = 100  # most denoising steps any sampler accepts
TIMESTEP_SCALE = 1000.0  # the denoiser sees t * TIMESTEP_SCALE in its sinusoidal embedding


def shift_time(t: np.ndarray, shift: float) -> np.ndarray:
    """Resolution shift: t' = s*t / (1 + (s-1)*t); s > 1 spends more steps at high noise."""
    t = np.asarray(t, dtype=np.float64)
    return shift * t / (1.0 + (shift - 1.0) * t)


def time_grid(steps: int, shift: float = 1.0) -> np.ndarray:
    """(steps + 1,) float64 times from 1 (noise) down to 0 (clean), evenly spaced then shifted."""
    if not MIN_STEPS <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be in [{MIN_STEPS}, {MAX_STEPS}], got {steps}")
    return shift_time(1.0 - np.arange(steps + 1, dtype=np.float64) / steps, shift)


def add_noise(x0: np.ndarray, eps: np.ndarray, t: float) -> np.ndarray:
    """x_t = (1 - t) x0 + t eps."""
    return ((1.0 - t) * x0 + t * eps).astype(np.float32)


def predict_x0(x_t: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
    """x0 = x_t - t v."""
    return (x_t - t * v).astype(np.float32)


def velocity_target(x0: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Training target v = eps - x0."""
    return eps - x0

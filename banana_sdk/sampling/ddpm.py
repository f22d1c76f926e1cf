"""Discrete DDPM schedules (the Stable-Diffusion family): data the samplers `ddim` and `lcm-ddpm` step on.

Such a model was trained on `x_k = sqrt(a_k) x0 + sqrt(1 - a_k) eps` for integer timesteps k in [0, T),
where `a_k = alphas_cumprod[k]`, and predicts epsilon, v (`sqrt(a) eps - sqrt(1-a) x0`) or x0 itself.
The table `alphas_cumprod` is computed once on the host at conversion time (from the pipeline's
scheduler config) and stored in the bundle manifest: a runtime only looks values up, never multiplies
betas. The denoiser signature takes `t = k / T` as float32 and scales it back by `T` inside the graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from banana_sdk.errors import ConfigError


class Prediction(str, Enum):
    """What the denoiser outputs."""

    EPSILON = "epsilon"  # the noise
    V = "v_prediction"  # v = sqrt(a) eps - sqrt(1 - a) x0
    SAMPLE = "sample"  # the clean latent x0


class Spacing(str, Enum):
    """How N inference timesteps are picked from the T training timesteps (diffusers' names)."""

    LEADING = "leading"  # k_i = (N-1-i) * (T // N) + offset
    TRAILING = "trailing"  # k_i = round(T - i T / N) - 1
    LINSPACE = "linspace"  # k_i = round(linspace(0, T-1, N))[::-1]


@dataclass(frozen=True)
class DDPMSchedule:
    alphas_cumprod: tuple[float, ...]  # a_k for k = 0..T-1 (float64 values, stored in the manifest)
    final_alpha_cumprod: float  # a used for the step after timestep 0 (1.0 = "set_alpha_to_one")
    prediction: Prediction = Prediction.EPSILON  # what the denoiser predicts
    spacing: Spacing = Spacing.LEADING  # timestep spacing of the teacher sampler
    steps_offset: int = 0  # added to "leading" timesteps
    clip_sample: float | None = None  # clamp predicted x0 to [-c, c]; None = no clamp
    original_inference_steps: int = 50  # LCM: the distillation grid has this many timesteps
    timestep_scaling: float = 10.0  # LCM: boundary-condition scalings use k * this

    @property
    def num_train_timesteps(self) -> int:
        """T, the number of training timesteps (the length of the table)."""
        return len(self.alphas_cumprod)

    def alpha(self, k: int) -> float:
        """a_k, or the final alpha for k < 0 (the step after the last)."""
        return float(self.alphas_cumprod[k]) if k >= 0 else float(self.final_alpha_cumprod)

    def model_time(self, k: int) -> float:
        """The float the denoiser signature takes for timestep k: k / T."""
        return k / self.num_train_timesteps

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "ddpm", "num_train_timesteps": self.num_train_timesteps,
                "alphas_cumprod": [float(a) for a in self.alphas_cumprod],
                "final_alpha_cumprod": float(self.final_alpha_cumprod), "prediction": self.prediction.value,
                "spacing": self.spacing.value, "steps_offset": self.steps_offset, "clip_sample": self.clip_sample,
                "original_inference_steps": self.original_inference_steps,
                "timestep_scaling": self.timestep_scaling}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> DDPMSchedule:
        """Inverse of `to_dict`; ConfigError names the bad field."""
        try:
            table = tuple(float(a) for a in data["alphas_cumprod"])
            if len(table) != int(data["num_train_timesteps"]) or not table:
                raise ConfigError(f"schedule has {len(table)} alphas_cumprod for "
                                  f"{data['num_train_timesteps']} timesteps")
            clip = data.get("clip_sample")
            return DDPMSchedule(
                alphas_cumprod=table, final_alpha_cumprod=float(data["final_alpha_cumprod"]),
                prediction=Prediction(data["prediction"]), spacing=Spacing(data["spacing"]),
                steps_offset=int(data.get("steps_offset", 0)), clip_sample=None if clip is None else float(clip),
                original_inference_steps=int(data.get("original_inference_steps", 50)),
                timestep_scaling=float(data.get("timestep_scaling", 10.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid DDPM schedule in the manifest: {type(exc).__name__}: {exc}") from None


def spaced_timesteps(schedule: DDPMSchedule, steps: int) -> list[int]:
    """The teacher's N timesteps, strictly decreasing (diffusers' `timestep_spacing`)."""
    total = schedule.num_train_timesteps
    if not 1 <= steps <= total:
        raise ConfigError(f"steps must be in [1, {total}], got {steps}")
    if schedule.spacing is Spacing.LEADING:
        ratio = total // steps
        ks = [(steps - 1 - i) * ratio + schedule.steps_offset for i in range(steps)]
    elif schedule.spacing is Spacing.TRAILING:
        ks = [int(np.round(total - i * total / steps)) - 1 for i in range(steps)]
    else:
        ks = [int(v) for v in np.linspace(0, total - 1, steps).round()[::-1]]
    return ks


def split_prediction(schedule: DDPMSchedule, x: np.ndarray, out: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(x0, eps) implied by the model output `out` at timestep k, in float64 scalars, float32 arrays."""
    a = schedule.alpha(k)
    sa, sb = np.sqrt(a), np.sqrt(1.0 - a)
    if schedule.prediction is Prediction.EPSILON:
        x0, eps = (x - sb * out) / sa, out
    elif schedule.prediction is Prediction.V:
        x0, eps = sa * x - sb * out, sa * out + sb * x
    else:
        x0, eps = out, (x - sa * out) / sb
    return x0.astype(np.float32), eps.astype(np.float32)


def clip_x0(schedule: DDPMSchedule, x0: np.ndarray) -> np.ndarray:
    """Clamp the predicted clean latent when the schedule asks for it."""
    if schedule.clip_sample is None:
        return x0
    return np.clip(x0, -schedule.clip_sample, schedule.clip_sample).astype(np.float32)

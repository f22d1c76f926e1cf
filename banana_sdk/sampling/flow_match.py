"""Flow-matching Euler on a stored schedule (diffusers' `FlowMatchEulerDiscreteScheduler`: SD3, and later
Flux/Sana), the portable spec of the `flow-match-euler` sampler.

The model was trained on `x_s = (1 - s) x0 + s eps` and predicts the velocity `v = eps - x0`; its timestep is
`s * T`, so the signature input `t = k / T` is s itself. The grid is diffusers' (one shift, no Karras/exponential/beta
sigmas, no terminal stretch), computed from the stored numbers:

1. u_i = linspace(sigma_max, sigma_min, N)_i (as timesteps u * T, divided back by T) on the `sigma-range` grid
   (the scheduler's own `set_timesteps(N)`: SD3), or u_i = linspace(1, 1/N, N)_i on the `uniform` grid (the sigmas
   FluxPipeline passes; sigma_min/sigma_max unused);
2. s_i = shift u_i / (1 + (shift - 1) u_i), then s_N = 0 (Flux's resolution-dependent shift exp(mu) is resolved
   for the bundle's fixed image size at conversion time: the same formula with shift = exp(mu));
3. start: x = noise (stream 0), no scaling;
4. step i: v = model(x, s_i); x = x + (s_{i+1} - s_i) v. The last state is the clean latent.

`sigma_min`/`sigma_max` are the scheduler's own (its training grid already shifted once, so the smallest
sigma is shifted twice, as in diffusers); they are read off the scheduler class at conversion time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from banana_sdk.errors import ConfigError
from banana_sdk.sampling.base import ModelFn, StepCallback, check_steps
from banana_sdk.sampling.euler import integrate_velocity
from banana_sdk.sampling.noise import gaussian
from banana_sdk.sampling.schedule import shift_time

GRIDS = ("sigma-range", "uniform")  # unshifted grids: linspace(sigma_max, sigma_min, N) or linspace(1, 1/N, N)


@dataclass(frozen=True)
class FlowMatchSchedule:
    num_train_timesteps: int = 1000  # T: the model's timestep is s * T
    shift: float = 1.0  # static timestep shift s' = shift s / (1 + (shift - 1) s)
    sigma_min: float = 0.001  # smallest sigma of the scheduler's training grid (already shifted)
    sigma_max: float = 1.0  # largest sigma of the scheduler's training grid
    grid: str = "sigma-range"  # unshifted grid (GRIDS): the scheduler's sigma range, or FluxPipeline's uniform 1..1/N

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": "flow-match", "num_train_timesteps": self.num_train_timesteps, "shift": self.shift,
               "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}
        return out if self.grid == GRIDS[0] else {**out, "grid": self.grid}  # absent = sigma-range (older bundles)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> FlowMatchSchedule:
        """Inverse of `to_dict`; ConfigError names the bad field."""
        try:
            if data.get("kind") != "flow-match":
                raise ValueError(f"kind {data.get('kind')!r} is not 'flow-match'")
            out = FlowMatchSchedule(int(data["num_train_timesteps"]), float(data["shift"]),
                                    float(data["sigma_min"]), float(data["sigma_max"]), data.get("grid", GRIDS[0]))
            if out.grid not in GRIDS:
                raise ValueError(f"grid {out.grid!r} is not one of {GRIDS}")
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid flow-match schedule in the manifest: {type(exc).__name__}: {exc}") from None
        if not 0.0 < out.sigma_min < out.sigma_max <= 1.0 or out.shift <= 0.0:
            raise ConfigError(f"invalid flow-match schedule: need 0 < sigma_min < sigma_max <= 1 and shift > 0, "
                              f"got {out}")
        return out

    def sigmas(self, steps: int) -> np.ndarray:
        """(steps + 1,) float64 noise levels s_0 > ... > s_{N-1} > s_N = 0."""
        u = np.linspace(self.sigma_max, self.sigma_min, steps) if self.grid == GRIDS[0] \
            else np.linspace(1.0, 1.0 / steps, steps)
        return np.concatenate([shift_time(u, self.shift), [0.0]])


class FlowMatchEulerSampler:
    name = "flow-match-euler"
    min_steps = 1
    max_steps = 100

    def __init__(self, schedule: FlowMatchSchedule) -> None:
        if not isinstance(schedule, FlowMatchSchedule):
            raise ConfigError(f"{self.name} steps on a flow-match schedule, got {type(schedule).__name__}")
        self.schedule = schedule

    def timesteps(self, steps: int, shift: float = 1.0) -> np.ndarray:
        """The model times s_i (= timestep / T) at which the denoiser runs."""
        return self.schedule.sigmas(steps)[:-1]

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
        # unit noise (stream 0) at s_0, Euler steps along the flow; at s = 0 the state is the clean latent
        return integrate_velocity(model_fn, gaussian(seed, 0, shape), self.schedule.sigmas(steps), callback)

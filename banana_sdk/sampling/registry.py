"""The sampler registry: every sampler by name (what `--sampler` and a manifest's `sampler.kind` may say)."""

from __future__ import annotations

from collections.abc import Callable

from banana_sdk.errors import ConfigError
from banana_sdk.sampling.base import Sampler
from banana_sdk.sampling.ddim import DDIMSampler
from banana_sdk.sampling.ddpm import DDPMSchedule
from banana_sdk.sampling.euler import EulerSampler
from banana_sdk.sampling.euler_ddpm import EulerAncestralDDPMSampler, EulerDDPMSampler
from banana_sdk.sampling.lcm import LCMSampler
from banana_sdk.sampling.lcm_ddpm import LCMDDPMSampler

_FLOW: dict[str, Callable[[], Sampler]] = {"euler": EulerSampler, "lcm": LCMSampler}  # rectified flow
_DDPM: dict[str, Callable[[DDPMSchedule], Sampler]] = {
    "ddim": DDIMSampler, "lcm-ddpm": LCMDDPMSampler, "euler-ddpm": EulerDDPMSampler,
    "euler-ancestral-ddpm": EulerAncestralDDPMSampler,
}
FLOW_SAMPLERS = tuple(_FLOW)  # samplers of rectified-flow models (ours)
DDPM_SAMPLERS = tuple(_DDPM)  # samplers that step on a stored DDPM schedule (diffusers models)
SAMPLERS = FLOW_SAMPLERS + DDPM_SAMPLERS  # every registered name


def get_sampler(name: str, schedule: DDPMSchedule | None = None) -> Sampler:
    """Sampler by registry name; the error lists valid names.

    Rectified-flow samplers (`euler`, `lcm`) need nothing else; DDPM samplers (`ddim`, `lcm-ddpm`) need
    the model's `schedule` (read from its bundle manifest).
    """
    flow, ddpm = _FLOW, _DDPM
    if name in flow:
        return flow[name]()
    if name in ddpm:
        if schedule is None:
            raise ConfigError(f"sampler {name!r} steps on a DDPM schedule; only bundles of diffusers "
                              f"pipelines carry one (rectified-flow models use {sorted(flow)})")
        return ddpm[name](schedule)
    raise ConfigError(f"unknown sampler {name!r}; choose from {sorted(flow)} (rectified flow) "
                      f"or {sorted(ddpm)} (DDPM schedules of converted diffusers pipelines)")


def sampler_class(name: str) -> type:
    """The registered sampler class of `name` (its `min_steps`/`max_steps` without a schedule); the error lists
    valid names."""
    classes = {**_FLOW, **_DDPM}
    if name not in classes:
        raise ConfigError(f"unknown sampler {name!r}; choose from {list(SAMPLERS)}")
    return classes[name]

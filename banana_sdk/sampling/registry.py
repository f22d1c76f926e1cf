"""The sampler registry: every sampler by name (what `--sampler` and a manifest's `sampler.kind` may say).

Three groups, by what a sampler steps on: rectified flow (our banana models, nothing stored), a DDPM schedule
(`sampler.schedule.kind == "ddpm"`: diffusers UNet/PixArt pipelines) and a flow-matching schedule
(`"flow-match"`: SD3). `read_schedule` turns a manifest's `sampler.schedule` into the schedule its samplers take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from banana_sdk.errors import ConfigError
from banana_sdk.sampling.base import Sampler
from banana_sdk.sampling.ddim import DDIMSampler
from banana_sdk.sampling.ddpm import DDPMSchedule
from banana_sdk.sampling.euler import EulerSampler
from banana_sdk.sampling.euler_ddpm import EulerAncestralDDPMSampler, EulerDDPMSampler
from banana_sdk.sampling.flow_match import FlowMatchEulerSampler, FlowMatchSchedule
from banana_sdk.sampling.lcm import LCMSampler
from banana_sdk.sampling.lcm_ddpm import LCMDDPMSampler

Schedule = DDPMSchedule | FlowMatchSchedule  # what a diffusers bundle stores in `sampler.schedule`

_FLOW: dict[str, Callable[[], Sampler]] = {"euler": EulerSampler, "lcm": LCMSampler}  # rectified flow
_DDPM: dict[str, Callable[[DDPMSchedule], Sampler]] = {
    "ddim": DDIMSampler, "lcm-ddpm": LCMDDPMSampler, "euler-ddpm": EulerDDPMSampler,
    "euler-ancestral-ddpm": EulerAncestralDDPMSampler,
}
_FLOW_MATCH: dict[str, Callable[[FlowMatchSchedule], Sampler]] = {"flow-match-euler": FlowMatchEulerSampler}
FLOW_SAMPLERS = tuple(_FLOW)  # samplers of rectified-flow models (ours)
DDPM_SAMPLERS = tuple(_DDPM)  # samplers that step on a stored DDPM schedule (diffusers models)
FLOW_MATCH_SAMPLERS = tuple(_FLOW_MATCH)  # samplers that step on a stored flow-matching schedule (SD3)
DIFFUSERS_SAMPLERS = DDPM_SAMPLERS + FLOW_MATCH_SAMPLERS  # what a diffusers bundle may name
SAMPLERS = FLOW_SAMPLERS + DIFFUSERS_SAMPLERS  # every registered name
SCHEDULE_KINDS: dict[str, tuple[str, ...]] = {"ddpm": DDPM_SAMPLERS, "flow-match": FLOW_MATCH_SAMPLERS}
# ^ `sampler.schedule.kind` -> the samplers that step on it
_LABELS = {"ddpm": "DDPM", "flow-match": "flow-matching"}  # schedule kind -> its name in messages


def read_schedule(data: Any) -> Schedule:
    """A manifest's `sampler.schedule` by its `kind`; ConfigError names the kind or the bad field."""
    kind = data.get("kind", "ddpm") if isinstance(data, dict) else None
    if kind == "ddpm":
        return DDPMSchedule.from_dict(data)
    if kind == "flow-match":
        return FlowMatchSchedule.from_dict(data)
    raise ConfigError(f"unknown schedule kind {kind!r}; choose from {sorted(SCHEDULE_KINDS)}")


def schedule_kind(schedule: Schedule) -> str:
    """The `kind` a schedule is stored under."""
    return "flow-match" if isinstance(schedule, FlowMatchSchedule) else "ddpm"


def get_sampler(name: str, schedule: Schedule | None = None) -> Sampler:
    """Sampler by registry name; the error lists valid names.

    Rectified-flow samplers (`euler`, `lcm`) need nothing else; DDPM samplers (`ddim`, `lcm-ddpm`, ...) need
    the model's DDPM `schedule`, `flow-match-euler` its flow-matching one (both read from a bundle manifest).
    """
    if name in _FLOW:
        return _FLOW[name]()
    for kind, group in (("ddpm", _DDPM), ("flow-match", _FLOW_MATCH)):
        if name not in group:
            continue
        if schedule is None:
            raise ConfigError(f"sampler {name!r} steps on a {_LABELS[kind]} schedule; only bundles of diffusers "
                              f"pipelines carry one (rectified-flow models use {sorted(_FLOW)})")
        have = schedule_kind(schedule)
        if have != kind:
            raise ConfigError(f"sampler {name!r} steps on a {_LABELS[kind]} schedule but this model has a "
                              f"{_LABELS[have]} schedule; choose from {list(SCHEDULE_KINDS[have])}")
        return group[name](schedule)
    raise ConfigError(f"unknown sampler {name!r}; choose from {sorted(_FLOW)} (rectified flow), "
                      f"{sorted(_DDPM)} (DDPM schedules) or {sorted(_FLOW_MATCH)} (flow-matching schedules of "
                      "converted diffusers pipelines)")


def sampler_class(name: str) -> type:
    """The registered sampler class of `name` (its `min_steps`/`max_steps` without a schedule); the error lists
    valid names."""
    classes = {**_FLOW, **_DDPM, **_FLOW_MATCH}
    if name not in classes:
        raise ConfigError(f"unknown sampler {name!r}; choose from {list(SAMPLERS)}")
    return classes[name]

"""One contract for every sampler, plus the schedule and the portable noise."""

from __future__ import annotations

import numpy as np
import pytest

from banana_sdk.errors import ConfigError
from banana_sdk.sampling.base import Sampler
from banana_sdk.sampling.ddpm import DDPMSchedule
from banana_sdk.sampling.flow_match import FlowMatchSchedule
from banana_sdk.sampling.noise import gaussian
from banana_sdk.sampling.registry import (
    DDPM_SAMPLERS,
    FLOW_MATCH_SAMPLERS,
    FLOW_SAMPLERS,
    SAMPLERS,
    get_sampler,
    read_schedule,
)
from banana_sdk.sampling.schedule import add_noise, predict_x0, shift_time, time_grid

SHAPE = (1, 4, 8, 8)


# A Stable-Diffusion schedule for the DDPM samplers: test_byom_parts.BETAS (scaled_linear, T = 1000) computed here
# in float64 without diffusers, SD's steps_offset 1, final alpha 1 (set_alpha_to_one).
_BETAS = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
DDPM = DDPMSchedule(tuple(np.cumprod(1.0 - _BETAS).tolist()), final_alpha_cumprod=1.0, steps_offset=1)
# SD3's flow-matching schedule (FlowMatchEulerDiscreteScheduler(shift=3.0): sigma_min = shift(0.001))
FLOW_MATCH = FlowMatchSchedule(1000, 3.0, 3.0 * 0.001 / (1.0 + 2.0 * 0.001), 1.0)


def make_sampler(name: str) -> Sampler:
    """Any registered sampler: DDPM ones step on the DDPM schedule above, flow-matching ones on FLOW_MATCH."""
    schedule = DDPM if name in DDPM_SAMPLERS else FLOW_MATCH if name in FLOW_MATCH_SAMPLERS else None
    return get_sampler(name, schedule)


def oracle(name: str, x0: np.ndarray):  # noqa: ANN201
    """The exact model of a point mass at x0, in the parametrisation the sampler's family predicts:
    rectified flow and flow matching v = (x_t - x0) / t (t = s, the noise level); DDPM epsilon =
    (x_k - sqrt(a_k) x0) / sqrt(1 - a_k) with k = t T."""
    if name in FLOW_SAMPLERS or name in FLOW_MATCH_SAMPLERS:
        return lambda x, t: ((x - x0) / t).astype(np.float32)

    def epsilon(x: np.ndarray, t: float) -> np.ndarray:
        a = DDPM.alpha(round(t * DDPM.num_train_timesteps))
        return ((x - np.sqrt(a) * x0) / np.sqrt(1.0 - a)).astype(np.float32)

    return epsilon


def step_counts(sampler: Sampler) -> list[int]:
    return sorted({sampler.min_steps, 2, 4, sampler.max_steps} & set(range(sampler.min_steps, sampler.max_steps + 1)))


def test_the_registry_lists_every_sampler_once() -> None:
    groups = (set(FLOW_SAMPLERS), set(DDPM_SAMPLERS), set(FLOW_MATCH_SAMPLERS))
    assert set(SAMPLERS) == set.union(*groups) and len(set(SAMPLERS)) == len(SAMPLERS) == sum(map(len, groups))
    assert FLOW_MATCH_SAMPLERS == ("flow-match-euler",)


def test_schedules_are_read_by_kind_and_samplers_refuse_the_other_kind() -> None:
    assert read_schedule(FLOW_MATCH.to_dict()) == FLOW_MATCH and read_schedule(DDPM.to_dict()) == DDPM
    with pytest.raises(ConfigError, match=r"unknown schedule kind 'karras'; choose from \['ddpm', 'flow-match'\]"):
        read_schedule({"kind": "karras"})
    with pytest.raises(ConfigError, match=r"has a DDPM schedule; choose from \['ddim'"):
        get_sampler("flow-match-euler", DDPM)
    with pytest.raises(ConfigError, match=r"has a flow-matching schedule; choose from \['flow-match-euler'\]"):
        get_sampler("ddim", FLOW_MATCH)
    with pytest.raises(ConfigError, match="steps on a flow-matching schedule; only bundles of diffusers"):
        get_sampler("flow-match-euler")
    # SD3 at 28 steps (its pipeline default) evaluates s_0 = 1 and the shifted grid (diffusers' timesteps / 1000)
    ts = get_sampler("flow-match-euler", FLOW_MATCH).timesteps(28)
    assert ts[0] == 1.0 and ts[-1] == pytest.approx(0.0089285714, rel=1e-6)  # = diffusers' last timestep / 1000


@pytest.mark.parametrize("name", SAMPLERS)  # every registered sampler, new ones included
class TestSamplerContract:
    def test_registered_under_its_name_with_a_step_range(self, name: str) -> None:
        sampler = make_sampler(name)
        assert sampler.name == name and 1 <= sampler.min_steps <= sampler.max_steps

    def test_timesteps_decrease_within_unit_interval(self, name: str) -> None:
        sampler = make_sampler(name)
        for steps in step_counts(sampler):
            ts = sampler.timesteps(steps, shift=3.0)
            assert ts.shape == (steps,), (steps, ts)
            assert np.all(np.diff(ts) < 0) and np.all(ts > 0) and np.all(ts <= 1), (steps, ts)
            if name in FLOW_SAMPLERS:
                assert ts[0] == 1.0  # rectified flow starts from pure noise

    def test_recovers_the_oracle_target(self, name: str) -> None:
        x0 = gaussian(7, 0, SHAPE)
        sampler = make_sampler(name)
        for steps in step_counts(sampler):
            out = sampler.sample(oracle(name, x0), SHAPE, steps, seed=3)
            np.testing.assert_allclose(out, x0, atol=5e-6, err_msg=f"{steps} steps")  # measured <= 1.8e-6

    def test_float32_of_the_shape_and_deterministic_by_seed(self, name: str) -> None:
        fn = lambda x, t: 0.5 * x  # noqa: E731
        steps = min(4, make_sampler(name).max_steps)
        a = make_sampler(name).sample(fn, SHAPE, steps, seed=11)
        b = make_sampler(name).sample(fn, SHAPE, steps, seed=11)
        c = make_sampler(name).sample(fn, SHAPE, steps, seed=12)
        assert a.shape == SHAPE and a.dtype == np.float32
        assert np.array_equal(a, b) and not np.array_equal(a, c)

    def test_calls_model_once_per_step_and_reports_progress(self, name: str) -> None:
        sampler = make_sampler(name)
        steps = max(sampler.min_steps, min(3, sampler.max_steps))
        calls, seen = [], []
        sampler.sample(lambda x, t: calls.append(t) or x * 0, SHAPE, steps, 0,
                       callback=lambda i, n: seen.append((i, n)))
        assert len(calls) == steps and seen == [(i, steps) for i in range(steps)]
        np.testing.assert_allclose(calls, sampler.timesteps(steps))  # evaluated at the times it announces

    def test_rejects_steps_out_of_range(self, name: str) -> None:
        sampler = make_sampler(name)
        for bad in (sampler.min_steps - 1, sampler.max_steps + 1, True, 2.0):
            with pytest.raises(ConfigError, match="steps"):
                sampler.sample(lambda x, t: x, SHAPE, bad, 0)


def test_unknown_sampler_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"\['euler', 'lcm'\]"):
        get_sampler("ddpm")


def test_schedule_identities() -> None:
    assert time_grid(4).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert shift_time(np.array([0.0, 1.0]), 3.0).tolist() == [0.0, 1.0]
    assert shift_time(np.array([0.5]), 3.0)[0] == pytest.approx(0.75)
    x0, eps = gaussian(1, 0, SHAPE), gaussian(1, 1, SHAPE)
    xt = add_noise(x0, eps, 0.3)
    np.testing.assert_allclose(predict_x0(xt, eps - x0, 0.3), x0, atol=1e-6)


def test_noise_is_standard_normal_and_pinned() -> None:
    z = gaussian(0, 0, (100_000,))
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    # golden numbers: the Kotlin SDK reproduces these exactly (docs/DESIGN.md §3)
    np.testing.assert_allclose(gaussian(0, 0, (4,)), [-0.45275775, 0.20776604, 2.650606, -0.49042282], rtol=1e-6)
    assert not np.array_equal(gaussian(0, 1, (4,)), gaussian(0, 0, (4,)))
    with pytest.raises(ValueError, match="seed"):
        gaussian(-1, 0, (2,))

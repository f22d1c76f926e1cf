"""One contract for every sampler, plus the schedule and the portable noise."""

from __future__ import annotations

import numpy as np
import pytest

from banana_sdk.errors import ConfigError
from banana_sdk.sampling.noise import gaussian
from banana_sdk.sampling.registry import get_sampler
from banana_sdk.sampling.schedule import add_noise, predict_x0, shift_time, time_grid

SHAPE = (1, 4, 8, 8)


def oracle(x0: np.ndarray):  # noqa: ANN201
    """The exact velocity field of a point mass at x0: v = (x_t - x0) / t."""
    return lambda x, t: ((x - x0) / t).astype(np.float32)


@pytest.mark.parametrize("name", ["euler", "lcm"])
class TestSamplerContract:
    def test_timesteps_decrease_within_unit_interval(self, name: str) -> None:
        sampler = get_sampler(name)
        for steps in (1, 2, 4, sampler.max_steps):
            ts = sampler.timesteps(steps, shift=3.0)
            assert ts.shape == (steps,) and ts[0] == 1.0
            assert np.all(np.diff(ts) < 0) and np.all(ts > 0)

    def test_recovers_the_oracle_target(self, name: str) -> None:
        x0 = gaussian(7, 0, SHAPE)
        for steps in (1, 4):
            out = get_sampler(name).sample(oracle(x0), SHAPE, steps, seed=3)
            np.testing.assert_allclose(out, x0, atol=2e-5)

    def test_deterministic_by_seed(self, name: str) -> None:
        fn = lambda x, t: 0.5 * x  # noqa: E731
        a = get_sampler(name).sample(fn, SHAPE, 4, seed=11)
        b = get_sampler(name).sample(fn, SHAPE, 4, seed=11)
        c = get_sampler(name).sample(fn, SHAPE, 4, seed=12)
        assert np.array_equal(a, b) and not np.array_equal(a, c)

    def test_calls_model_once_per_step_and_reports_progress(self, name: str) -> None:
        calls, seen = [], []
        get_sampler(name).sample(lambda x, t: calls.append(t) or x * 0, SHAPE, 3, 0,
                                 callback=lambda i, n: seen.append((i, n)))
        assert len(calls) == 3 and seen == [(0, 3), (1, 3), (2, 3)]

    def test_rejects_steps_out_of_range(self, name: str) -> None:
        sampler = get_sampler(name)
        for bad in (0, sampler.max_steps + 1):
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

"""The simulated phone's clock: phone time from the fastest host time, hiccups absorbed."""

from __future__ import annotations

import time

import pytest

from device_tests.sim.pace import Pace


def test_phone_time_is_the_best_host_time_over_speed_and_cap() -> None:
    pace = Pace(0.5)
    assert pace.phone_s("denoise", 0.010) == pytest.approx(0.020)
    # a call slowed by another process does not make the phone slower: the cost stays the best seen
    assert pace.phone_s("denoise", 0.018) == pytest.approx(0.020)
    assert pace.phone_s("denoise", 0.008) == pytest.approx(0.016)
    assert pace.phone_s("denoise", 0.009, freq_cap=0.5) == pytest.approx(0.032)  # throttled clock
    assert pace.phone_s("decode", 0.004) == pytest.approx(0.008)  # each kind of work has its own cost
    # a hiccup longer than the phone's time shows through (a busy phone)
    assert pace.phone_s("decode", 0.030) == pytest.approx(0.008)


def test_pad_sleeps_to_the_phone_time_and_reports_it() -> None:
    now, slept = [100.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pace = Pace(0.25, clock=lambda: now[0], sleep=sleep)
    now[0] += 0.01  # work that took 10 ms here takes 40 ms on the phone
    assert pace.pad("call", 100.0) == pytest.approx(0.04) and slept == [pytest.approx(0.03)]
    start = now[0]
    now[0] += 0.2  # a hiccup longer than the phone's 40 ms: reported as it happened, no sleep
    assert pace.pad("call", start) == pytest.approx(0.2) and len(slept) == 1
    # the real clock: a pad really waits
    real = Pace(0.5)
    t0 = time.perf_counter()
    assert real.pad("x", t0 - 0.02) >= 0.04 and time.perf_counter() - t0 >= 0.019


@pytest.mark.parametrize("speed", [0.0, -1.0, 1.5])
def test_speed_must_be_a_fraction(speed: float) -> None:
    with pytest.raises(ValueError, match="phone speed must be in"):
        Pace(speed)

"""The simulated phone's clock: how long a piece of work takes on the phone, from its cost on this host.

A phone's time for a piece of work is its *cost* divided by the phone's speed and the thermal clock cap.
The cost is the fastest host time seen so far for that kind of work (the graph and its input shapes), not
the time of this call: this host is shared, and a call slowed by another process would otherwise make the
phone look slow at random. Profile speeds are below 1 (a phone is slower than this host), so a host hiccup
up to 1/speed times the cost is absorbed by the sleep that pads the call to the phone's time; only a
longer one shows through, as a background load on a real phone would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable


class Pace:
    """Pads host work to the simulated phone's duration. Not thread-safe: one per run."""

    def __init__(self, speed: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not 0.0 < speed <= 1.0:
            raise ValueError(f"phone speed must be in (0, 1], got {speed}")
        self.speed = speed  # the phone's speed relative to this host's best (0.5 = twice as slow)
        self.clock = clock  # seconds, the clock `pad`'s `started` was read from
        self.sleep = sleep  # waits the given seconds
        self._best: dict[Hashable, float] = {}  # kind of work -> fastest host seconds seen

    def phone_s(self, key: Hashable, host_s: float, freq_cap: float = 1.0) -> float:
        """Seconds the phone takes for work of kind `key` that just took `host_s` seconds here."""
        best = min(self._best.get(key, math.inf), host_s)
        self._best[key] = best
        return best / (self.speed * freq_cap)

    def pad(self, key: Hashable, started: float, freq_cap: float = 1.0) -> float:
        """Sleep until work of kind `key` begun at `started` (`clock`) has taken the phone's time.

        Returns the elapsed seconds as the phone reports them: the phone's time, or the host's when a
        hiccup made it longer.
        """
        host_s = self.clock() - started
        target = self.phone_s(key, host_s, freq_cap)
        if target > host_s:
            self.sleep(target - host_s)
        return max(target, host_s)

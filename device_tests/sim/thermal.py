"""Lumped thermal model of the simulated phone: die and body nodes, battery lagging the body.

    C_die  dT_die/dt  = P - (T_die - T_body) / R_db
    C_body dT_body/dt = (T_die - T_body) / R_db - (T_body - T_air) / R_ba
    dT_batt/dt        = (T_body - T_batt) / lag

Heat P follows energy: each graph call deposits the busy-core power over its CPU time (`add_cpu_time`: the
runner's real CPU time, stretched to the phone's), its compute energy (FLOPs x pJ/FLOP) and its memory-traffic
energy (bytes moved x pJ/byte), both counted on the bundle's graphs (`add_work`; banana_sdk/bundle/traffic.py),
plus an idle floor. Energy per operation scales with the square of the clock cap (voltage follows frequency)
for the CPU terms, not for DRAM. So of two models that take the same time, the one moving fewer bytes runs
cooler, and at a fixed frame rate a cheaper model heats less. Skin temperature is
the body node; the thermal status (0 NONE .. 6 SHUTDOWN) is the highest of the skin and CPU sensor
severities, and caps the CPU clock (`freq_cap`), which the runner turns into real slow-down.
`speedup` compresses thermal time so minutes of heating happen in seconds of a test: one real second
is `speedup` thermal seconds, and a CPU second of work deposits `speedup` times its energy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from device_tests.sim.profiles import Cluster, ThermalParams

MAX_SUBSTEP_S = 0.25  # integration step in thermal seconds (stable for the capacities we use)


@dataclass(frozen=True)
class ThermalState:
    die_c: float  # SoC die (CPU sensor)
    skin_c: float  # phone body (skin sensor)
    battery_c: float  # battery
    status: int  # 0 NONE .. 6 SHUTDOWN
    freq_cap: float  # allowed fraction of the maximum CPU clock
    headroom: float  # Android-style thermal headroom: 1.0 at SEVERE


def severity(temp_c: float, thresholds: tuple[float, ...]) -> int:
    """0..6: how many thresholds `temp_c` has reached."""
    return sum(temp_c >= t for t in thresholds)


class ThermalModel:
    def __init__(self, params: ThermalParams, clusters: tuple[Cluster, ...], speedup: float = 1.0,
                 start_c: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.p = params
        self.clusters = clusters
        self.speedup = speedup  # thermal seconds per real second
        self.clock = clock
        start = params.ambient_c if start_c is None else start_c
        self.die = self.body = self.battery = start
        self._energy_j = 0.0  # deposited since the last update, spread over the next interval
        self.energy_j = {"cpu": 0.0, "compute": 0.0, "memory": 0.0}  # phone joules deposited, by source
        self._busy = 0  # runners currently computing
        self._last = clock()
        self._lock = threading.Lock()
        # cpufreq time_in_state per cluster, in 10 ms units, keyed by frequency
        self.time_in_state = {c.policy: dict.fromkeys(c.freqs_khz, 0.0) for c in clusters}

    # ---- inputs
    def add_cpu_time(self, cpu_seconds: float) -> None:
        """Deposit the heat of `cpu_seconds` of the phone's CPU work (energy per cycle ~ clock cap squared)."""
        with self._lock:
            self._advance()
            cap = self._status_and_cap()[1]
            joules = cpu_seconds * self.p.watts_per_cpu_second * cap * cap
            self.energy_j["cpu"] += joules
            self._energy_j += joules * self.speedup

    def add_work(self, flops: float, nbytes: float) -> None:
        """Deposit the energy of a graph call's FLOPs (at the clock cap) and the bytes it moves through memory."""
        with self._lock:
            self._advance()
            cap = self._status_and_cap()[1]
            compute = flops * self.p.pj_per_flop * 1e-12 * cap * cap
            memory = nbytes * self.p.pj_per_byte * 1e-12
            self.energy_j["compute"] += compute
            self.energy_j["memory"] += memory
            self._energy_j += (compute + memory) * self.speedup

    def set_busy(self, busy: bool) -> None:
        """A runner starts/stops computing (clusters run at the cap while busy, at the floor while idle)."""
        with self._lock:
            self._advance()
            self._busy += 1 if busy else -1
            self._busy = max(0, self._busy)

    # ---- outputs
    def state(self) -> ThermalState:
        with self._lock:
            self._advance()
            status, cap = self._status_and_cap()
            t = self.p.skin_thresholds_c
            headroom = max(0.0, (self.body - self.p.ambient_c) / (t[2] - self.p.ambient_c))
            return ThermalState(self.die, self.body, self.battery, status, cap, headroom)

    def cluster_freq(self, cluster: Cluster) -> int:
        """Current clock of a cluster: the highest step under the cap while busy, the lowest when idle."""
        with self._lock:
            self._advance()
            return self._freq(cluster, self._status_and_cap()[1])

    def time_in_state_text(self, policy: int) -> bytes:
        """`/sys/devices/system/cpu/cpufreq/policyN/stats/time_in_state`: `freq_khz time_10ms` lines."""
        with self._lock:
            self._advance()
            rows = self.time_in_state[policy]
            return "".join(f"{f} {int(v)}\n" for f, v in rows.items()).encode()

    # ---- integration
    def _status_and_cap(self) -> tuple[int, float]:
        t = self.p.skin_thresholds_c
        status = max(severity(self.body, t), severity(self.die, tuple(x + self.p.die_offset_c for x in t)))
        return status, self.p.throttle[status]

    def _freq(self, cluster: Cluster, cap: float) -> int:
        if not self._busy:
            return cluster.freqs_khz[0]
        limit = cluster.freqs_khz[-1] * cap
        allowed = [f for f in cluster.freqs_khz if f <= limit + 1]
        return allowed[-1] if allowed else cluster.freqs_khz[0]

    def _advance(self) -> None:
        now = self.clock()
        real_dt = max(0.0, now - self._last)
        self._last = now
        if real_dt == 0.0:
            return
        cap = self._status_and_cap()[1]
        for cluster in self.clusters:
            self.time_in_state[cluster.policy][self._freq(cluster, cap)] += real_dt * 100.0
        total = real_dt * self.speedup
        steps = max(1, int(total / MAX_SUBSTEP_S) + 1)
        dt = total / steps
        heat_w = self.p.idle_power_w + self.p.charging_w + self._energy_j / total
        self._energy_j = 0.0
        p = self.p
        for _ in range(steps):
            flow = (self.die - self.body) / p.die_to_body_k_per_w
            loss = (self.body - p.ambient_c) / p.body_to_air_k_per_w
            self.die += dt * (heat_w - flow) / p.die_capacity_j_per_k
            self.body += dt * (flow - loss) / p.body_capacity_j_per_k
            self.battery += dt * (self.body - self.battery) / p.battery_lag_s

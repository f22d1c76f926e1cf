"""A Perfetto tracing session on the simulated phone: what `traced` and `traced_probes` record, written as a real trace.

A session samples the device's models while it runs (every `POLL_S`): each CPU's clock from the thermal model's
cpufreq (an ftrace `cpu_frequency` event per CPU whenever its cluster's clock changes), `cpu_idle` when the app
starts or stops computing, thermal zone temperatures once a second (`thermal_temperature`, like the kernel's zone
polling), and at the config's `battery_poll_ms` the `android.power` battery counters and power rails, from the
energy the thermal model was given (rails: CPU = busy cores + arithmetic, memory = DRAM traffic, SoC = the idle
floor). The app's atrace markers (`B|pid|name`, `E|pid`) arrive through `mark()` and become ftrace `print` events
when the config's `atrace_apps` names the app. On stop it writes one `perfetto.protos.Trace` (clock snapshot, the
config, process tree, ftrace bundles per CPU, battery and rail packets) to the output path. Timestamps are the
device's boot clock in ns (`boot_ns`: the host's monotonic clock, which the simulator's uptime also uses).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from device_tests.contract import PACKAGE

if TYPE_CHECKING:
    from device_tests.sim.device import SimDevice

POLL_S = 0.02  # how often the session reads the cpufreq and idle state (s)
THERMAL_POLL_S = 1.0  # thermal zone polling period (s)
IDLE_STATE, RUNNING_STATE = 0, 4294967295  # cpu_idle states: WFI, and the kernel's "exit idle" (-1 as uint32)
BATTERY_VOLTAGE_UV = 4_213_000  # the simulated battery's voltage (dumpsys battery prints 4213 mV)
BATTERY_CHARGE_UAH = 3_456_789  # its charge counter at boot (dumpsys battery: "Charge counter")
BATTERY_LEVEL = 87  # percent (dumpsys battery: "level")
RAILS = (("VDD_CPU", "cpu"), ("VDD_MEM", "memory"), ("VDD_SOC", "soc"))  # (rail, subsystem) in descriptor order
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 1, 3, 6  # builtin clock ids of ClockSnapshot
_pids = itertools.count(7300)


def boot_ns() -> int:
    """The simulated device's boot clock (CLOCK_BOOTTIME), ns."""
    return time.monotonic_ns()


@dataclass
class _Recorded:
    ftrace: dict[int, list[pb.FtraceEvent]] = field(default_factory=dict)  # cpu -> events in time order
    battery: list[tuple[int, pb.BatteryCounters]] = field(default_factory=list)  # (ts ns, counters)
    rails: list[tuple[int, list[int]]] = field(default_factory=list)  # (ts ns, cumulative energy per rail, uWs)
    processes: dict[int, str] = field(default_factory=dict)  # pid -> name of processes that wrote markers


class TraceSession:
    """One `perfetto` session: samples the device until `stop()` (or its duration), then writes the trace."""

    def __init__(self, device: SimDevice, config: pb.TraceConfig, out_path: str) -> None:
        self.device = device
        self.config = config  # what was asked for
        self.out_path = out_path  # device path of the trace file
        self.pid = next(_pids)  # the session's `perfetto` process id
        self.events = set()  # ftrace events asked for ("power/cpu_frequency", ...)
        self.apps: set[str] = set()  # atrace_apps
        self.battery_poll_s: float | None = None  # android.power polling period; None: not asked for
        self.rails = False  # collect_power_rails
        for source in config.data_sources:
            cfg = source.config
            if cfg.name == "linux.ftrace":
                self.events |= set(cfg.ftrace_config.ftrace_events)
                self.apps |= set(cfg.ftrace_config.atrace_apps)
            elif cfg.name == "android.power":
                self.battery_poll_s = max(100, cfg.android_power_config.battery_poll_ms or 1000) / 1e3
                self.rails = cfg.android_power_config.collect_power_rails
        self.start_ns = boot_ns()  # when recording began (boot clock, ns)
        self.duration_s = config.duration_ms / 1e3 if config.duration_ms else None
        self._rec = _Recorded()
        self._last_power = (self.start_ns, 0.0)  # (ts ns, J) of the previous power poll
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.done = threading.Event()  # set once the trace file is written (the process has exited)
        self._thread = threading.Thread(target=self._main, daemon=True, name=f"sim-perfetto-{self.pid}")

    # ---- control
    def start(self) -> TraceSession:
        _sessions(self.device)[self.pid] = self
        self._thread.start()
        return self

    def stop(self) -> None:
        """SIGTERM: stop recording, write the trace, exit."""
        self._stop.set()

    def mark(self, pid: int, package: str, text: str) -> None:
        """An atrace marker written by `package` (pid) now."""
        if package not in self.apps and "*" not in self.apps:
            return
        event = pb.FtraceEvent(timestamp=boot_ns(), pid=pid)
        event.print.buf = text + "\n"
        with self._lock:
            self._rec.processes[pid] = package
            self._add(self._cpus()[-1], event)

    # ---- sampling
    def _cpus(self) -> list[int]:
        return [cpu for c in self.device.profile.clusters for cpu in range(c.policy, c.policy + c.cpus)]

    def _add(self, cpu: int, event: pb.FtraceEvent) -> None:
        self._rec.ftrace.setdefault(cpu, []).append(event)

    def _main(self) -> None:
        freqs: dict[int, int] = {}
        busy: bool | None = None
        temps: dict[int, int] = {}
        next_thermal = next_power = 0.0
        energy0 = self._energy_j()
        t0 = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if self.duration_s is not None and now - t0 >= self.duration_s:
                    break
                busy = self._sample_cpus(freqs, busy)
                if now >= next_thermal:
                    self._sample_thermal(temps)
                    next_thermal = now + THERMAL_POLL_S
                if self.battery_poll_s is not None and now >= next_power:
                    self._sample_power(energy0, now - t0)
                    next_power = now + self.battery_poll_s
                self._stop.wait(POLL_S)
            self._write()
        finally:
            _sessions(self.device).pop(self.pid, None)
            self.done.set()

    def _sample_cpus(self, freqs: dict[int, int], busy: bool | None) -> bool:
        now_busy = self.device.app.pid is not None
        with self._lock:
            for cluster in self.device.profile.clusters:
                khz = self.device.thermal.cluster_freq(cluster)
                if freqs.get(cluster.policy) == khz:
                    continue
                freqs[cluster.policy] = khz
                if "power/cpu_frequency" in self.events:
                    ts = boot_ns()
                    for cpu in range(cluster.policy, cluster.policy + cluster.cpus):
                        event = pb.FtraceEvent(timestamp=ts, pid=0)
                        event.cpu_frequency.state, event.cpu_frequency.cpu_id = khz, cpu
                        self._add(cpu, event)
            if now_busy != busy and "power/cpu_idle" in self.events:
                ts = boot_ns()
                for cpu in self._cpus():
                    event = pb.FtraceEvent(timestamp=ts, pid=0)
                    event.cpu_idle.state, event.cpu_idle.cpu_id = (RUNNING_STATE if now_busy else IDLE_STATE), cpu
                    self._add(cpu, event)
        return now_busy

    def _sample_thermal(self, temps: dict[int, int]) -> None:
        from device_tests.sim.dumpsys import sensors

        if "thermal/thermal_temperature" not in self.events:
            return
        with self._lock:
            for k, (name, _kind, value_c, _status) in enumerate(sensors(self.device)):
                event = pb.FtraceEvent(timestamp=boot_ns(), pid=0)
                milli = int(round(value_c * 1000))
                t = event.thermal_temperature
                t.id, t.temp, t.temp_prev, t.thermal_zone = k, milli, temps.get(k, milli), f"{name.lower()}-therm"
                temps[k] = milli
                self._add(0, event)

    def _energy_j(self) -> dict[str, float]:
        joules = dict(self.device.thermal.energy_j)
        return {"cpu": joules.get("cpu", 0.0) + joules.get("compute", 0.0), "memory": joules.get("memory", 0.0)}

    def _sample_power(self, energy0: dict[str, float], elapsed_s: float) -> None:
        energy = self._energy_j()
        used = {"cpu": energy["cpu"] - energy0["cpu"], "memory": energy["memory"] - energy0["memory"],
                "soc": self.device.profile.thermal.idle_power_w * elapsed_s}  # J since the session started
        total_j = sum(used.values())
        ts = boot_ns()
        last_ts, last_j = self._last_power
        watts = (total_j - last_j) / max((ts - last_ts) / 1e9, 1e-6)  # average since the previous poll
        self._last_power = (ts, total_j)
        counters = pb.BatteryCounters(
            charge_counter_uah=BATTERY_CHARGE_UAH - int(total_j / (BATTERY_VOLTAGE_UV / 1e6) / 3600 * 1e6),
            capacity_percent=float(BATTERY_LEVEL), current_ua=-int(watts / BATTERY_VOLTAGE_UV * 1e12),
            voltage_uv=BATTERY_VOLTAGE_UV)  # current < 0: the battery discharges
        with self._lock:
            self._rec.battery.append((ts, counters))
            if self.rails:
                self._rec.rails.append((ts, [int(used[subsys] * 1e6) for _, subsys in RAILS]))

    # ---- output
    def _write(self) -> None:
        data = self.trace().SerializeToString()
        host = self.device.fs.host_path(self.out_path)  # traced writes here as itself, not as the shell user
        host.parent.mkdir(parents=True, exist_ok=True)
        tmp = host.with_name(f".{host.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, host)

    def trace(self) -> pb.Trace:
        """The recorded session as a Trace message."""
        end = boot_ns()
        trace = pb.Trace()
        snap = trace.packet.add(timestamp=self.start_ns, trusted_packet_sequence_id=1)
        for clock_id, value in ((CLOCK_BOOTTIME, self.start_ns), (CLOCK_MONOTONIC, self.start_ns),
                                (CLOCK_REALTIME, time.time_ns() - (end - self.start_ns))):
            snap.clock_snapshot.clocks.add(clock_id=clock_id, timestamp=value)
        snap.clock_snapshot.primary_trace_clock = CLOCK_BOOTTIME
        trace.packet.add(timestamp=self.start_ns, trusted_packet_sequence_id=1).trace_config.CopyFrom(self.config)
        with self._lock:
            rec = self._rec
            tree = trace.packet.add(timestamp=end, trusted_packet_sequence_id=3).process_tree
            for pid, name in sorted(rec.processes.items()):
                tree.processes.add(pid=pid, ppid=1, cmdline=[name])
                tree.threads.add(tid=pid, tgid=pid)
            for cpu, events in sorted(rec.ftrace.items()):
                bundle = trace.packet.add(trusted_packet_sequence_id=1).ftrace_events
                bundle.cpu = cpu
                bundle.event.extend(sorted(events, key=lambda e: e.timestamp))
            for ts, counters in rec.battery:
                trace.packet.add(timestamp=ts, trusted_packet_sequence_id=2).battery.CopyFrom(counters)
            if rec.rails:
                rails = trace.packet.add(timestamp=rec.rails[0][0], trusted_packet_sequence_id=2).power_rails
                for k, (name, subsys) in enumerate(RAILS):
                    rails.rail_descriptor.add(index=k, rail_name=name, subsys_name=subsys,
                                              sampling_rate=int(1 / (self.battery_poll_s or 1.0)))
                for ts, energies in rec.rails:
                    packet = trace.packet.add(timestamp=ts, trusted_packet_sequence_id=2).power_rails
                    for k in range(len(RAILS)):
                        packet.energy_data.add(index=k, timestamp_ms=ts // 1_000_000, energy=energies[k])
        return trace


_REGISTRY: weakref.WeakKeyDictionary[Any, dict[int, TraceSession]] = weakref.WeakKeyDictionary()
_REGISTRY_LOCK = threading.Lock()


def _sessions(device: SimDevice) -> dict[int, TraceSession]:
    with _REGISTRY_LOCK:
        return _REGISTRY.setdefault(device, {})


def session(device: SimDevice, pid: int) -> TraceSession | None:
    """The running (or still writing) session with process id `pid`."""
    return _sessions(device).get(pid)


def mark(device: SimDevice, pid: int, text: str, package: str = PACKAGE) -> None:
    """An atrace marker (`B|pid|name`, `E|pid`) written by the app now; recorded by every session tracing it."""
    for active in list(_sessions(device).values()):
        active.mark(pid, package, text)

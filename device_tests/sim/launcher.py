"""Start simulated devices as child processes (tests, `make demo`, benchmarks).

Each simulator is its own process (so its CPU time, memory and thermal model are its own), dies with
its parent (`device_tests.orphan_guard`) and stops by itself after `lifetime_s` anyway.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from device_tests.errors import SimulatorError
from device_tests.orphan_guard import guarded
from device_tests.sim.options import SimOptions


@dataclass
class SimProcess:
    process: subprocess.Popen  # the simulator
    port: int  # its adb port on 127.0.0.1
    serial: str  # the serial adb shows (emulator-N or 127.0.0.1:port)
    log_path: Path  # its stderr
    options: SimOptions = field(default_factory=SimOptions)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop cleanly (SIGTERM), then SIGKILL if it does not exit in time."""
        if self.alive:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        if self.process.stdout:
            self.process.stdout.close()

    def kill(self) -> None:
        """Pull the plug: SIGKILL, no goodbye on the adb connection."""
        if self.alive:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


ROOT = Path(__file__).resolve().parents[2]  # the checkout the simulator process imports from


def sim_command(options: SimOptions, port: int = 0, lifetime_s: float = 900.0,
                announce_adb_port: int | None = None) -> list[str]:
    """argv of `python -m device_tests.sim` for these options (port 0: any free port)."""
    cmd = [sys.executable, "-m", "device_tests.sim", "--profile", options.profile, "--port", str(port),
           "--lifetime", str(lifetime_s), "--thermal-speedup", str(options.thermal_speedup)]
    if not options.app_installed:
        cmd.append("--no-app")
    for flag, value in (("--abi", options.abi), ("--storage-mb", options.storage_mb),
                        ("--start-temp", options.start_temp_c), ("--write-mbps", options.write_mb_per_s),
                        ("--charging-w", options.charging_w or None), ("--announce-adb-port", announce_adb_port)):
        if value is not None:
            cmd += [flag, str(value)]
    for quirk in sorted(q.value for q in options.quirks):
        cmd += ["--quirk", quirk]
    return cmd


def sim_env() -> dict[str, str]:
    """The environment of a simulator process: ours, with this checkout importable."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def start_simulator(
    options: SimOptions | None = None, *, port: int = 0, lifetime_s: float = 900.0,
    announce_adb_port: int | None = None, timeout_s: float = 60.0,
) -> SimProcess:
    """Start a simulator process and wait until it listens; raises SimulatorError if it does not."""
    options = options or SimOptions()
    cmd = sim_command(options, port, lifetime_s, announce_adb_port)
    log_fd, log_name = tempfile.mkstemp(prefix="banana-sim-", suffix=".log")
    process = subprocess.Popen(guarded(cmd), stdout=subprocess.PIPE, stderr=log_fd, stdin=subprocess.DEVNULL,
                               env=sim_env(), cwd=ROOT)
    os.close(log_fd)
    line = _read_ready(process, timeout_s)
    if line is None:
        process.kill()
        process.wait(10)
        tail = Path(log_name).read_text(errors="replace")[-500:].strip()
        raise SimulatorError(f"simulator did not start within {timeout_s:.0f} s: {tail or 'no output'}")
    info = json.loads(line[len("READY "):])
    return SimProcess(process, info["port"], info["serial"], Path(log_name), options)


def _read_ready(process: subprocess.Popen, timeout_s: float) -> str | None:
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as sel:
        sel.register(process.stdout, selectors.EVENT_READ)
        buffer = b""
        while time.monotonic() < deadline and process.poll() is None:
            if not sel.select(timeout=0.2):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            buffer += chunk
            if b"\n" in buffer:
                line = buffer.split(b"\n", 1)[0].decode()
                return line if line.startswith("READY ") else None
    return None

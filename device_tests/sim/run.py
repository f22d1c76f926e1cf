"""Run one simulated device until it is stopped or its lifetime ends (foreground, in this process)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from device_tests.sim.device import SimDevice
from device_tests.sim.options import EMULATOR_PORTS, SimOptions, free_port
from device_tests.sim.server import SimServer, announce


def _preload() -> None:
    """Import the inference stack in the background, like Android's zygote preloads classes."""
    try:
        import banana_sdk.runtime.litert  # noqa: F401
    except ImportError:
        pass


def run_simulator(
    options: SimOptions, port: int = 0, lifetime_s: float = 3600.0, data_dir: str | Path | None = None,
    announce_adb_port: int | None = None, on_ready: Callable[[SimServer], None] | None = None,
) -> None:
    """Serve a simulated device on 127.0.0.1:`port` (0: any free port) for at most `lifetime_s` seconds.

    The device's storage lives in `data_dir` (kept), or in a temp dir removed at the end.
    """
    port = port or free_port()
    owned = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="banana-sim-")) if owned else Path(data_dir)
    try:
        device = SimDevice(options, root, serial=f"BSIM{port}")
        server = SimServer(device, port, lifetime_s)
        server.start()
        if announce_adb_port is not None and server.port in EMULATOR_PORTS:
            announce(announce_adb_port, server.port)
        threading.Thread(target=_preload, daemon=True, name="sim-preload").start()
        if on_ready is not None:
            on_ready(server)
        try:
            server.wait()
        finally:
            server.stop()
    finally:
        if owned:
            _remove(root)


def _remove(root: Path, tries: int = 5) -> None:
    """Remove the temporary data dir; a service thread still finishing a write can re-create a file in it,
    so try a few times (0.1 s apart)."""
    for _ in range(tries):
        shutil.rmtree(root, ignore_errors=True)
        if not root.exists():
            return
        time.sleep(0.1)

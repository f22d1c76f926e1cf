"""`make demo`'s last stage: profile a bundle on a simulated device through the real adb, write the report."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from device_tests.adb import Adb
from device_tests.adb_server import IsolatedAdbServer
from device_tests.profile import ProfileSettings, profile
from device_tests.report import write_report
from device_tests.sim.launcher import start_simulator
from device_tests.sim.options import SimOptions


@contextlib.contextmanager
def _adb_server_env(port: int) -> Iterator[None]:
    """Point adb clients of this process (adbutils, `adb`) at our private server for the duration."""
    old = os.environ.get("ANDROID_ADB_SERVER_PORT")
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(port)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
        else:
            os.environ["ANDROID_ADB_SERVER_PORT"] = old


def profile_on_simulator(bundle_dir: Path, out_dir: Path, profile_name: str = "midrange", runs: int = 5) -> Path:
    """Start a simulator and a private adb server, profile `bundle_dir`, stop both; returns the report path.

    Writes `out_dir/RUN.json` (+ its journal) and `out_dir/report.html`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_json = out_dir / "RUN.json"
    with IsolatedAdbServer() as server, _adb_server_env(server.port):
        with start_simulator(SimOptions(profile_name), lifetime_s=600.0) as sim:
            adb = Adb(server.port)
            adb.connect(sim.serial)
            settings = ProfileSettings(runs=runs, warmup=1, cooldown_c=38.0, cooldown_timeout_s=60.0)
            profile(Path(bundle_dir), run_json, sim.serial, settings, adb=adb,
                    command=["device_tests.demo.profile_on_simulator", str(bundle_dir)])
    return write_report([run_json], out_dir / "report.html")

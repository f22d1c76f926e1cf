"""Fixtures for the device harness tests: a private adb server per session, simulated devices per test.

The adb server runs on a free port (ANDROID_ADB_SERVER_PORT points at it for the session) and is killed
at the end, so tests never touch a developer's server or each other's. Simulators use ports outside
5555-5585 and are attached with `adb connect`, so a server never picks up another session's devices.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import pytest

from device_tests.adb import Adb
from device_tests.adb_server import IsolatedAdbServer
from device_tests.sim.launcher import SimProcess, start_simulator
from device_tests.sim.options import SimOptions

SIM_LIFETIME_S = 300.0  # every simulator a test starts stops by itself after this


@pytest.fixture(scope="session")
def adb_server() -> Iterator[IsolatedAdbServer]:
    server = IsolatedAdbServer().start()
    old = os.environ.get("ANDROID_ADB_SERVER_PORT")
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(server.port)
    try:
        yield server
    finally:
        if old is None:
            os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
        else:
            os.environ["ANDROID_ADB_SERVER_PORT"] = old
        server.stop()


@pytest.fixture
def adb(adb_server: IsolatedAdbServer) -> Adb:
    """An adb client on the session's server; a short reconnect patience keeps fault tests quick."""
    return Adb(adb_server.port, reconnect_s=3.0)


@pytest.fixture
def sims(adb_server: IsolatedAdbServer) -> Iterator[Callable[..., SimProcess]]:
    """sims(profile="midrange", **SimOptions fields) -> a started, `adb connect`ed simulator."""
    started: list[SimProcess] = []
    client = Adb(adb_server.port)

    def start(profile: str = "midrange", **options: object) -> SimProcess:
        sim = start_simulator(SimOptions(profile, **options), lifetime_s=SIM_LIFETIME_S)
        started.append(sim)
        client.connect(sim.serial)
        assert client.wait_for(sim.serial, 10.0), f"{sim.serial} did not come online"
        return sim

    yield start
    for sim in started:
        sim.stop()
        with contextlib.suppress(Exception):
            client.client.disconnect(sim.serial)

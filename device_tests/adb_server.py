"""The adb server: find the `adb` binary, start/stop a server on a port, check that one answers.

The harness talks to the server named by `ANDROID_ADB_SERVER_PORT` (default 5037). `IsolatedAdbServer`
runs a private one in the foreground (`adb -P PORT nodaemon server`) that dies with its parent, so tests
and the demo never touch a developer's server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

from device_tests.errors import AdbUnavailable

DEFAULT_PORT = 5037  # adb's default server port
START_TIMEOUT_S = 15.0  # how long a server may take to accept connections


def adb_binary() -> str:
    """Path of `adb`; AdbUnavailable says how to install it."""
    path = os.environ.get("ADBUTILS_ADB_PATH") or shutil.which("adb")
    if not path:
        raise AdbUnavailable("`adb` not found on PATH; install it (Debian/Ubuntu: `apt-get install -y adb`, "
                             "or Android SDK platform-tools)")
    return path


def server_port() -> int:
    """The adb server port this process uses (ANDROID_ADB_SERVER_PORT or 5037)."""
    raw = os.environ.get("ANDROID_ADB_SERVER_PORT", str(DEFAULT_PORT))
    try:
        port = int(raw)
    except ValueError:
        raise AdbUnavailable(f"ANDROID_ADB_SERVER_PORT={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise AdbUnavailable(f"ANDROID_ADB_SERVER_PORT={port} is out of range")
    return port


def server_running(port: int) -> bool:
    """True if something accepts connections on the adb server port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_for(port: int, up: bool, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server_running(port) == up:
            return True
        time.sleep(0.05)
    return server_running(port) == up


def start_server(port: int) -> None:
    """`adb start-server` on `port` (a daemon, as adb itself starts it); AdbUnavailable if it fails."""
    if server_running(port):
        return
    try:
        subprocess.run([adb_binary(), "-P", str(port), "start-server"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=START_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pass
    if not _wait_for(port, True, START_TIMEOUT_S):
        raise AdbUnavailable(f"the adb server on port {port} did not start; try `adb -P {port} start-server`")


def kill_server(port: int) -> None:
    """`adb kill-server` on `port` (whoever started it); silent when none runs."""
    if not server_running(port):
        return
    try:
        subprocess.run([adb_binary(), "-P", str(port), "kill-server"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=START_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pass
    _wait_for(port, False, 5.0)


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class IsolatedAdbServer:
    """A private adb server in the foreground on its own port; stops with `stop()` or with its parent."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> IsolatedAdbServer:
        from device_tests.orphan_guard import guarded

        if server_running(self.port):
            raise AdbUnavailable(f"port {self.port} is already in use; pick another adb server port")
        self.process = subprocess.Popen(
            guarded([adb_binary(), "-P", str(self.port), "nodaemon", "server"]), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _wait_for(self.port, True, START_TIMEOUT_S):
            self.stop()
            raise AdbUnavailable(f"adb server on port {self.port} did not start")
        return self

    def stop(self) -> None:
        """Stop our server and any server started on this port since (e.g. by a harness restart)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        kill_server(self.port)

    def __enter__(self) -> IsolatedAdbServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

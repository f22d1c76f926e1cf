"""Talking to devices through the adb server (adbutils): shell with exit codes, sync, reconnects.

Every command is an argument list quoted by `device_tests.quoting`; shell output comes over shell_v2
(separate stdout/stderr and the exit status) when the device offers it, else over the legacy `shell:`
service, where stdout and stderr arrive merged (in `stdout`) and the exit status is read back from a
sentinel (`device_tests.legacy_shell`). Transport failures are told apart from command failures:
when the adb server is gone it is started again (and `adb connect` devices reconnected), and when the
device stays away longer than `reconnect_s` the caller gets `DeviceDisconnected`.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import adbutils
from adbutils._adb import AdbConnection
from adbutils.errors import AdbError, AdbTimeout

from device_tests.adb_server import server_port, server_running, start_server
from device_tests.errors import (
    AdbUnavailable,
    CommandMayHaveRun,
    DeviceCommandError,
    DeviceDisconnected,
    NoDevice,
)
from device_tests.legacy_shell import LegacyShellError, new_sentinel, unwrap, wrap
from device_tests.quoting import command_line, quote
from device_tests.sync_client import SyncLost, SyncSession

T = TypeVar("T")
TRANSPORT_ERRORS = (AdbError, OSError, EOFError, SyncLost)  # AdbTimeout is an AdbError
RECONNECT_S = 20.0  # how long a device may be away before we call it disconnected
SERVER_TIMEOUT_S = 30.0  # the longest we wait for any single answer from the adb server


@dataclass(frozen=True)
class ShellResult:
    argv: tuple[str, ...]  # what ran
    returncode: int  # exit status on the device
    stdout: str  # standard output (UTF-8, undecodable bytes replaced); stdout and stderr merged without shell_v2
    stderr: str  # standard error ("" without shell_v2: the legacy shell merges it into stdout)

    def summary(self) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return text[-1] if text else "no output"


def is_network_serial(serial: str) -> bool:
    """`host:port` serials belong to `adb connect` devices (farms, simulators off the emulator ports)."""
    return re.fullmatch(r"[\w.-]+:\d{1,5}", serial) is not None


class _Connection(AdbConnection):
    """A server connection that fails when the server is down (adbutils would run `adb start-server` itself,
    on whichever port the environment names and printing to stderr; `Adb.ensure_server` does it instead)."""

    def _safe_connect(self):  # noqa: ANN202
        return self._create_socket()


class _Client(adbutils.AdbClient):
    def make_connection(self, timeout: float | None = None) -> AdbConnection:
        conn = _Connection(self.host, self.port)
        conn.conn.settimeout(timeout or SERVER_TIMEOUT_S)
        return conn


class Adb:
    """The adb server at 127.0.0.1:`port` (default: ANDROID_ADB_SERVER_PORT or 5037)."""

    def __init__(self, port: int | None = None, reconnect_s: float = RECONNECT_S) -> None:
        self.port = port or server_port()
        self.reconnect_s = reconnect_s  # patience with a device that went away
        self.client = _Client(host="127.0.0.1", port=self.port)
        self.server_restarts = 0  # how often we had to start the server again
        self.connected: set[str] = set()  # host:port devices we `adb connect`ed (reconnected after a restart)
        self._lock = threading.Lock()

    def ensure_server(self) -> None:
        with self._lock:
            if server_running(self.port):
                return
            start_server(self.port)
            self.server_restarts += 1
            for addr in sorted(self.connected):
                with contextlib.suppress(*TRANSPORT_ERRORS):
                    self.client.connect(addr, timeout=5)

    def devices(self) -> dict[str, str]:
        """serial -> state (`device`, `offline`, `unauthorized`, ...) of everything attached."""
        self.ensure_server()
        try:
            return {info.serial: info.state for info in self.client.list()}
        except TRANSPORT_ERRORS as exc:
            raise AdbUnavailable(f"cannot list devices from the adb server on port {self.port}: {exc}") from None

    def connect(self, addr: str) -> str:
        """`adb connect host:port` (remote device farms, simulators on other ports)."""
        self.ensure_server()
        try:
            message = self.client.connect(addr, timeout=10)
        except TRANSPORT_ERRORS as exc:
            raise NoDevice(f"cannot connect to {addr}: {exc}") from None
        if not message.startswith(("connected", "already connected")):
            raise NoDevice(f"cannot connect to {addr}: {message}")
        self.connected.add(addr)
        return message

    def wait_for(self, serial: str, timeout_s: float) -> bool:
        """Wait until `serial` is attached and in state `device`; reconnects `adb connect` devices."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(AdbUnavailable):
                if self.devices().get(serial) == "device":
                    return True
                if serial in self.connected or is_network_serial(serial):
                    with contextlib.suppress(*TRANSPORT_ERRORS):
                        self.client.connect(serial, timeout=2)
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)

    def device(self, serial: str) -> Device:
        return Device(self, serial)


class Device:
    """One attached device."""

    def __init__(self, adb: Adb, serial: str) -> None:
        self.adb = adb
        self.serial = serial
        self._dev = adbutils.AdbDevice(adb.client, serial=serial)
        self._shell_v2: bool | None = None  # the device offers shell_v2 (asked once, on the first command)

    @property
    def shell_v2(self) -> bool:
        """True when the device's adbd offers the shell_v2 protocol (separate stderr, real exit status)."""
        if self._shell_v2 is None:
            features = self._call("asking for the device's features", self._dev.get_features, retry=True)
            self._shell_v2 = "shell_v2" in features.split(",")
        return self._shell_v2

    def _call(self, what: str, fn: Callable[[], T], retry: bool) -> T:
        """Run fn; on a transport failure recover (server, reconnect) and retry once if allowed."""
        try:
            return fn()
        except AdbTimeout:
            raise DeviceCommandError(f"{what} on {self.serial} timed out") from None
        except TRANSPORT_ERRORS as exc:
            first = exc
        self.adb.ensure_server()
        if not self.adb.wait_for(self.serial, self.adb.reconnect_s):
            raise DeviceDisconnected(f"{self.serial} disconnected during {what} ({_reason(first)})")
        if not retry:
            raise CommandMayHaveRun(f"{self.serial} dropped the connection during {what} ({_reason(first)}); "
                                    "it is back now, but the command may or may not have run")
        try:
            return fn()
        except AdbTimeout:
            raise DeviceCommandError(f"{what} on {self.serial} timed out") from None
        except TRANSPORT_ERRORS as exc:
            raise DeviceDisconnected(f"{self.serial} disconnected during {what} ({_reason(exc)})") from None

    def shell(self, argv: list[str], timeout_s: float = 60.0, check: bool = True, retry: bool = True) -> ShellResult:
        """Run one command (arguments quoted); DeviceCommandError on a non-zero exit when `check`."""
        line = command_line(argv)
        result = self._shell_line(line, argv, timeout_s, retry)
        if check and result.returncode != 0:
            raise DeviceCommandError(
                f"`{_short(argv)}` failed on {self.serial} (exit {result.returncode}): {result.summary()}")
        return result

    def script(self, commands: list[list[str]], timeout_s: float = 60.0) -> ShellResult:
        """Several quoted commands in one round trip (exit status of the last)."""
        line = "; ".join(command_line(c) for c in commands)
        return self._shell_line(line, [c[0] for c in commands], timeout_s, retry=True)

    def batch(self, commands: list[list[str]], timeout_s: float = 60.0) -> list[ShellResult]:
        """Several quoted commands in one round trip, each with its own exit status and output (its stderr
        merged into its stdout, `2>&1`); DeviceCommandError when the shell stops before the last one."""
        marker = new_sentinel()
        line = "; ".join(f"{command_line(c)} 2>&1; echo {quote(marker)}$?" for c in commands)
        text = self._shell_line(line, [c[0] for c in commands], timeout_s, retry=True).stdout
        pieces = re.split(re.escape(marker) + r"(\d{1,3})\n", text)
        if len(pieces) < 2 * len(commands) + 1:
            done = (len(pieces) - 1) // 2
            raise DeviceCommandError(f"the shell on {self.serial} stopped after {done} of {len(commands)} commands "
                                     f"(`{_short(commands[done])}` never finished); check the device and retry")
        return [ShellResult(tuple(argv), int(pieces[2 * k + 1]), pieces[2 * k], "")
                for k, argv in enumerate(commands)]

    def _shell_line(self, line: str, argv: list[str], timeout_s: float, retry: bool) -> ShellResult:
        def run_v2() -> ShellResult:
            raw = self._dev.shell2(line, timeout=timeout_s, encoding=None, v2=True)
            return ShellResult(tuple(argv), raw.returncode, raw.stdout.decode("utf-8", "replace"),
                               raw.stderr.decode("utf-8", "replace"))

        def run_legacy() -> ShellResult:
            sentinel = new_sentinel()
            raw = self._dev.shell(wrap(line, sentinel), timeout=timeout_s, encoding=None, rstrip=False)
            try:
                out = unwrap(raw, sentinel)
            except LegacyShellError as exc:
                raise AdbError(str(exc)) from None  # a transport failure: recovered (or retried) like one
            return ShellResult(tuple(argv), out.returncode, out.text.decode("utf-8", "replace"), "")

        return self._call(f"`{_short(argv)}`", run_v2 if self.shell_v2 else run_legacy, retry)

    @contextlib.contextmanager
    def sync(self, timeout_s: float = 60.0) -> Iterator[SyncSession]:
        """An open sync session (file transfer)."""
        def open_session() -> tuple[object, SyncSession]:
            conn = self._dev.open_transport(timeout=timeout_s)
            conn.send_command("sync:")
            conn.check_okay()
            conn.conn.settimeout(timeout_s)
            return conn, SyncSession(conn.conn, self.serial)

        conn, session = self._call("opening a file transfer", open_session, retry=True)
        try:
            yield session
            session.quit()
        finally:
            with contextlib.suppress(OSError, AdbError):
                conn.close()

    def with_retry(self, what: str, fn: Callable[[], T]) -> T:
        """Run an idempotent device operation, recovering once from a transport failure."""
        return self._call(what, fn, retry=True)

    def getprops(self) -> dict[str, str]:
        from device_tests.parsers import parse_getprop

        return parse_getprop(self.shell(["getprop"]).stdout)


def _short(argv: list[str] | tuple[str, ...]) -> str:
    text = " ".join(argv[:3]) + (" ..." if len(argv) > 3 else "")
    return text if len(text) < 80 else text[:77] + "..."


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (ConnectionRefusedError, socket.error)) and not isinstance(exc, SyncLost):
        return f"adb server: {exc}"
    return str(exc) or type(exc).__name__

"""The simulated device's adb endpoint: a TCP listener on loopback, one `Connection` per adb server.

adb 29 finds a device listening on an odd port 5555..5585 by itself (as `emulator-<port-1>`, polled when
the adb server starts, or at once when told `host:emulator:<port>`); any other port needs
`adb connect 127.0.0.1:<port>`. The server stops by itself after `lifetime_s`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from device_tests.errors import SimulatorError
from device_tests.sim.device import SimDevice
from device_tests.sim.options import serial_for
from device_tests.sim.protocol import banner
from device_tests.sim.transport import Connection


def announce(adb_server_port: int, sim_port: int) -> bool:
    """Tell a running adb server about an emulator port (what the Android emulator does at boot)."""
    payload = f"host:emulator:{sim_port}".encode()
    try:
        with socket.create_connection(("127.0.0.1", adb_server_port), timeout=2.0) as sock:
            sock.sendall(f"{len(payload):04x}".encode() + payload)
        return True
    except OSError:
        return False


class SimServer:
    def __init__(self, device: SimDevice, port: int, lifetime_s: float) -> None:
        self.device = device
        self.port = port
        self.lifetime_s = lifetime_s  # stop by itself after this long
        self._stop = threading.Event()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    @property
    def serial(self) -> str:
        return serial_for(self.port)

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError as exc:
            sock.close()
            raise SimulatorError(f"cannot listen on 127.0.0.1:{self.port}: {exc.strerror}; pick another --port") \
                from None
        sock.listen(16)
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]
        self._listener = sock
        self._deadline = time.monotonic() + self.lifetime_s
        threading.Thread(target=self._accept_loop, daemon=True, name="sim-accept").start()

    def wait(self) -> None:
        """Block until stopped or the lifetime is over."""
        while not self._stop.wait(0.2):
            if time.monotonic() >= self._deadline:
                self.stop()

    def stop(self) -> None:
        """Close the listener and every connection (the adb server sees the device go offline)."""
        self._stop.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.shutdown()

    def _accept_loop(self) -> None:
        device_banner = banner(self.device.banner_props(), self.device.features())
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock, device_banner, self.device.service)
            with self._lock:
                self._connections = [c for c in self._connections if c.alive] + [conn]
            threading.Thread(target=conn.serve, daemon=True, name="sim-connection").start()

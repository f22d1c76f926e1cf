"""One adb connection from the host's adb server: the handshake, stream multiplexing and flow control.

A reader thread owns the socket's input and routes each message to its stream; every service (shell,
sync) runs in a thread of its own and talks to its `Stream` with blocking `read`/`write` calls.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Callable

from device_tests.sim.protocol import (
    A_AUTH,
    A_CLSE,
    A_CNXN,
    A_OKAY,
    A_OPEN,
    A_WRTE,
    MAX_DATA,
    VERSION,
    Message,
    ProtocolError,
    read_message,
)

# service(stream) runs a service to completion; the device returns None for services it does not offer
ServiceFactory = Callable[[str], "Callable[[Stream], None] | None"]
ACK_TIMEOUT_S = 60.0  # give up on a host that stops acknowledging our writes


class StreamClosed(Exception):
    """The host closed the stream (or the whole connection)."""


class Stream:
    """A bidirectional byte stream inside a connection, with adb's one-WRTE-in-flight flow control."""

    def __init__(self, conn: Connection, local_id: int, remote_id: int) -> None:
        self.conn = conn
        self.local_id = local_id  # our id (arg0 of what we send)
        self.remote_id = remote_id  # the host's id
        self._inbox: deque[bytes] = deque()  # payloads of WRTEs not yet read, not yet acknowledged
        self._buffer = b""  # bytes taken from the inbox but not yet returned by read
        self._cond = threading.Condition()
        self._may_write = True  # False while our last WRTE is unacknowledged
        self.closed = False  # set by CLSE from the host or a dead connection
        self._sent_close = False

    # -- called by the connection's reader thread
    def on_write(self, data: bytes) -> None:
        with self._cond:
            self._inbox.append(data)
            self._cond.notify_all()

    def on_okay(self) -> None:
        with self._cond:
            self._may_write = True
            self._cond.notify_all()

    def on_close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # -- called by the service thread
    def _take(self, timeout: float | None) -> bool:
        """Move one inbox payload to the buffer (acknowledging it); False on close or timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._inbox or self.closed, timeout):
                return False
            if not self._inbox:
                return False
            data = self._inbox.popleft()
        self.conn.send(Message(A_OKAY, self.local_id, self.remote_id))
        self._buffer += data
        return True

    def read(self, n: int, timeout: float | None = None) -> bytes:
        """Up to n bytes (at least 1); b"" when the host closed the stream or on timeout."""
        if not self._buffer and not self._take(timeout):
            return b""
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def read_exact(self, n: int, timeout: float | None = ACK_TIMEOUT_S) -> bytes:
        """Exactly n bytes; raises StreamClosed if the stream ends first."""
        while len(self._buffer) < n:
            if not self._take(timeout):
                raise StreamClosed(f"stream closed with {len(self._buffer)} of {n} bytes read")
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def write(self, data: bytes) -> None:
        """Send data in WRTEs of at most maxdata bytes, each after the previous one is acknowledged."""
        view = memoryview(data)
        while view:
            with self._cond:
                if not self._cond.wait_for(lambda: self._may_write or self.closed, ACK_TIMEOUT_S):
                    raise StreamClosed("host stopped acknowledging writes")
                if self.closed:
                    raise StreamClosed("stream closed by the host")
                self._may_write = False
            chunk, view = view[:self.conn.max_data], view[self.conn.max_data:]
            self.conn.send(Message(A_WRTE, self.local_id, self.remote_id, bytes(chunk)))

    def close(self) -> None:
        """Tell the host we are done (once)."""
        if self._sent_close:
            return
        self._sent_close = True
        self.on_close()
        self.conn.forget(self.local_id)
        if self.conn.alive:
            self.conn.send(Message(A_CLSE, self.local_id, self.remote_id))


class Connection:
    """Serves one host connection until it drops or the device stops."""

    def __init__(self, sock: socket.socket, banner: bytes, services: ServiceFactory) -> None:
        self.sock = sock
        self.banner = banner  # CNXN payload we answer with
        self.services = services
        self.max_data = MAX_DATA  # lowered to the host's maxdata after the handshake
        self._send_lock = threading.Lock()
        self._streams: dict[int, Stream] = {}
        self._lock = threading.Lock()
        self._next_id = 1
        self.alive = True

    def send(self, msg: Message) -> None:
        """Send one message (thread-safe); a dead socket makes every stream closed."""
        try:
            with self._send_lock:
                self.sock.sendall(msg.pack())
        except OSError:
            self.shutdown()
            raise StreamClosed("connection lost") from None

    def forget(self, local_id: int) -> None:
        with self._lock:
            self._streams.pop(local_id, None)

    def shutdown(self) -> None:
        """Drop the connection: every stream sees a close."""
        self.alive = False
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            stream.on_close()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def serve(self) -> None:
        """Reader loop: handshake, then route messages until EOF."""
        try:
            while self.alive:
                self._dispatch(read_message(self.sock))
        except (ConnectionError, OSError, ProtocolError, StreamClosed):
            pass
        finally:
            self.shutdown()

    def _dispatch(self, msg: Message) -> None:
        if msg.command == A_CNXN:
            self.max_data = max(4096, min(MAX_DATA, msg.arg1))
            self.send(Message(A_CNXN, min(msg.arg0, VERSION), MAX_DATA, self.banner))
        elif msg.command == A_AUTH:
            # we never ask for AUTH; a host that sends it anyway gets our CNXN (we are "authorized")
            self.send(Message(A_CNXN, VERSION, MAX_DATA, self.banner))
        elif msg.command == A_OPEN:
            self._open(msg.arg0, msg.data.rstrip(b"\0").decode("utf-8", "replace"))
        elif msg.command in (A_OKAY, A_WRTE, A_CLSE):
            with self._lock:
                stream = self._streams.get(msg.arg1)
            if stream is None:
                if msg.command == A_WRTE:  # a stream we already closed: tell the host again
                    self.send(Message(A_CLSE, 0, msg.arg0))
                return
            if msg.command == A_OKAY:
                stream.remote_id = msg.arg0
                stream.on_okay()
            elif msg.command == A_WRTE:
                stream.on_write(msg.data)
            else:
                stream.on_close()
                stream.close()

    def _open(self, remote_id: int, service: str) -> None:
        handler = self.services(service)
        if handler is None:
            self.send(Message(A_CLSE, 0, remote_id))
            return
        with self._lock:
            local_id = self._next_id
            self._next_id += 1
            stream = Stream(self, local_id, remote_id)
            self._streams[local_id] = stream
        self.send(Message(A_OKAY, local_id, remote_id))
        threading.Thread(target=self._run_service, args=(handler, stream), daemon=True,
                         name=f"sim-service-{service.split(':')[0]}").start()

    @staticmethod
    def _run_service(handler: Callable[[Stream], None], stream: Stream) -> None:
        try:
            handler(stream)
        except StreamClosed:
            pass
        finally:
            with contextlib.suppress(StreamClosed):
                stream.close()

"""`banana live`: live mode (docs/DESIGN.md §9.1) in a browser, served on 127.0.0.1 only.

A `LiveServer` puts one page (inline HTML and JS: nothing is fetched from anywhere else) in front of a
`LiveSession`. The page POSTs the prompt as it is typed (debounced) and long-polls for the newest frame:

- `GET /` the page.
- `POST /prompt` `{"prompt": "..."}` -> `{"status": accepted|unchanged|refused, "message", "frame"}`
  (`Content-Type: application/json` only, so no other site can post prompts from a visitor's browser).
- `GET /frame?after=N&wait=S` -> the state once a frame newer than N is shown, or after S seconds (default 10,
  at most 30): `{index, prompt, png, fps, latency_ms, decoder, fallback, encode_ms, denoise_ms, decode_ms,
  cache_hit, counters}` (`index`/`png`... null before the first frame).
- `GET /frame.png?i=N` frame N as a PNG (the last few frames are kept; 404 for older ones).

Requests whose Host is not this server's loopback address are refused (DNS rebinding). The server binds to
127.0.0.1 only: the page has no authentication and runs whatever prompt reaches it.
"""

from __future__ import annotations

import errno
import io
import json
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from banana_sdk.errors import BananaError, ConfigError
from banana_sdk.runtime.live import Decoder, LiveConfig, LiveFrame, LiveSession

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_NAMES = ("127.0.0.1", "localhost")  # what --host accepts (both serve on 127.0.0.1)
MAX_BODY = 64 * 1024  # bytes of a POST /prompt body
MAX_WAIT_S = 30.0  # longest long poll
KEPT_FRAMES = 8  # PNGs kept for /frame.png?i=N


class LiveServerError(BananaError):
    """The live server cannot start (port in use, not a loopback host)."""


def check_host(host: str) -> str:
    """The address to bind: 127.0.0.1 for `127.0.0.1` or `localhost`; anything else is refused."""
    if host not in LOOPBACK_NAMES:
        raise LiveServerError(f"banana live serves on 127.0.0.1 only (the page has no authentication and runs any "
                              f"prompt it is sent); got --host {host}")
    return LOOPBACK


@dataclass
class _Png:
    index: int
    data: bytes


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads at shutdown
    timeout = 10  # seconds a client may take to send its request
    server_version = "banana-live"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass  # quiet: the terminal shows the URL and "stopped"

    # --- routing -------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if not self._host_ok():
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        live = self.server.live
        if url.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
        elif url.path == "/frame":
            after = _int(query, "after", -1)
            wait = _float(query, "wait", 10.0)
            if after is None or wait is None:
                self._json(HTTPStatus.BAD_REQUEST, {"error": "after must be an integer and wait a number"})
                return
            self._json(HTTPStatus.OK, live.state(after, wait))
        elif url.path == "/frame.png":
            index = _int(query, "i", None)
            png = live.png(index) if index is not None else None
            if png is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": "no such frame (only the last few are kept)"})
            else:
                self._send(HTTPStatus.OK, png, "image/png")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {url.path}"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return
        if urlsplit(self.path).path != "/prompt":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {self.path}"})
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self.server.origins:
            self._json(HTTPStatus.FORBIDDEN, {"error": "prompts are taken from this server's own page only"})
            return
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send {\"prompt\": ...} as application/json"})
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"the body must be 0-{MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            self._json(HTTPStatus.BAD_REQUEST, {"error": "send {\"prompt\": \"...\"}"})
            return
        status, answer = self.server.live.submit(body["prompt"])
        self._json(status, answer)

    # --- helpers -------------------------------------------------------------------------------------
    def _host_ok(self) -> bool:
        if self.headers.get("Host") in self.server.hosts:
            return True
        self._json(HTTPStatus.FORBIDDEN, {"error": "this server answers on 127.0.0.1 only"})
        return False

    def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away (reload, tab closed)


def _int(query: dict[str, list[str]], key: str, default: int | None) -> int | None:
    try:
        return int(query[key][0]) if key in query else default
    except ValueError:
        return None


def _float(query: dict[str, list[str]], key: str, default: float) -> float | None:
    try:
        value = float(query[key][0]) if key in query else default
    except ValueError:
        return None
    return min(max(value, 0.0), MAX_WAIT_S) if value == value else None  # NaN -> None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins every request thread
    live: LiveServer
    hosts: frozenset[str]
    origins: frozenset[str]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-request; the page retries


class LiveServer:
    """Serves a `LiveSession` on 127.0.0.1:`port` (0: any free port). The caller owns the session.

    `start()` serves on a background thread; `stop()` ends the long polls, stops serving and joins every
    thread (idempotent). Binding happens in the constructor, so a port in use fails before anything loads.
    """

    def __init__(self, port: int = DEFAULT_PORT, host: str = LOOPBACK) -> None:
        address = check_host(host)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port must be 0-65535, got {port!r}")
        try:
            self._httpd = _HTTPServer((address, port), _Handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LiveServerError(f"port {port} on {address} is in use; pass --port") from None
            if exc.errno == errno.EACCES:
                raise LiveServerError(f"port {port} on {address} needs privileges; pass --port above 1023") from None
            raise LiveServerError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
        self.host, self.port = address, self._httpd.server_address[1]
        self._httpd.live = self
        self._httpd.hosts = frozenset(f"{name}:{self.port}" for name in LOOPBACK_NAMES)
        self._httpd.origins = frozenset(f"http://{name}:{self.port}" for name in LOOPBACK_NAMES)
        self.session: LiveSession | None = None
        self._stopping = threading.Event()
        self._pngs: OrderedDict[int, bytes] = OrderedDict()
        self._png_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self, session: LiveSession) -> None:
        """Serve `session` on a background thread."""
        if self._thread is not None or self._closed:
            raise ConfigError("this live server was started already")
        self.session = session
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="banana-live-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: long polls answer at once, the socket closes, every thread is joined."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()  # joins the request threads (block_on_close)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the handler asks -----------------------------------------------------------------------
    def submit(self, prompt: str) -> tuple[HTTPStatus, dict[str, Any]]:
        assert self.session is not None
        try:
            result = self.session.submit(prompt)
        except BananaError as exc:
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}
        except RuntimeError as exc:  # the session's worker failed
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc).splitlines()[0]}
        return HTTPStatus.OK, {"status": result.status.value, "message": result.message, "frame": result.frame}

    def state(self, after: int, wait_s: float) -> dict[str, Any]:
        """The newest frame and the stats, once a frame with index > `after` is shown or `wait_s` has passed."""
        session = self.session
        assert session is not None
        frame = session.latest()
        deadline = wait_s
        while (frame is None or frame.index <= after) and deadline > 0 and not self._stopping.is_set():
            step = min(0.2, deadline)  # short waits: stop() answers every long poll within one
            try:
                frame = session.wait_for(after + 1, step) or session.latest()
            except (BananaError, RuntimeError):
                break
            deadline -= step
        stats = session.stats()
        state: dict[str, Any] = {
            "index": None, "prompt": None, "png": None, "encode_ms": None, "denoise_ms": None, "decode_ms": None,
            "cache_hit": None, "fps": stats.fps, "latency_ms": stats.latency_ms, "decoder": stats.decoder.value,
            "fallback": stats.decoder_fallback, "counters": stats.counters, "stopping": self._stopping.is_set(),
        }
        if frame is not None:
            self._keep_png(frame)
            state.update(index=frame.index, prompt=frame.prompt, png=f"/frame.png?i={frame.index}",
                         encode_ms=frame.encode_ms, denoise_ms=frame.denoise_ms, decode_ms=frame.decode_ms,
                         cache_hit=frame.cache_hit)
        return state

    def png(self, index: int) -> bytes | None:
        """Frame `index` as PNG bytes while it is among the last few; None otherwise."""
        assert self.session is not None
        frame = self.session.latest()
        if frame is not None and frame.index == index:
            return self._keep_png(frame)
        with self._png_lock:
            return self._pngs.get(index)

    def _keep_png(self, frame: LiveFrame) -> bytes:
        with self._png_lock:
            if frame.index in self._pngs:
                return self._pngs[frame.index]
        buffer = io.BytesIO()
        frame.image.save(buffer, format="PNG")  # lossless: the bytes decode to the frame's pixels
        data = buffer.getvalue()
        with self._png_lock:
            self._pngs[frame.index] = data
            while len(self._pngs) > KEPT_FRAMES:
                self._pngs.popitem(last=False)
        return data


@dataclass(frozen=True)
class LiveSummary:
    url: str
    counters: dict[str, int]  # the session's LiveCounters at the end


def wait_for_signal(stop: threading.Event | None = None) -> None:
    """Block until SIGINT or SIGTERM (or `stop` is set); the previous handlers are restored after."""
    stop = stop or threading.Event()
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in handled}
    try:
        while not stop.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve_live(
    bundle: str | Path, port: int = DEFAULT_PORT, host: str = LOOPBACK, steps: int = 1, seed: int = 0,
    decoder: Decoder = Decoder.FULL, threads: int = 2,
    on_ready: Callable[[LiveServer, LiveSession], None] | None = None, until: Callable[[], None] = wait_for_signal,
) -> LiveSummary:
    """Bind 127.0.0.1:`port`, load `bundle`, serve live mode until `until()` returns (default: SIGINT/SIGTERM),
    then stop the server, close the session and join every thread. `on_ready` runs once serving."""
    from banana_sdk.runtime.litert import LiteRTPipeline

    with LiveServer(port, host) as server:  # bind first: a port in use fails before the bundle loads
        pipe = LiteRTPipeline.load(bundle, threads=threads)
        with LiveSession(pipe, LiveConfig(steps=steps, seed=seed, decoder=decoder)) as session:
            try:
                server.start(session)
                if on_ready is not None:
                    on_ready(server, session)
                until()
            finally:
                server.stop()  # before the session closes: no request reaches a closed session
            return LiveSummary(server.url, session.stats().counters)


# --- the page ------------------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>banana live</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 40em; padding: 0 1em; color: #222; }
  #prompt { width: 100%; font-size: 1.2em; padding: .4em; box-sizing: border-box; }
  #frame { width: 320px; height: 320px; image-rendering: pixelated; background: #eee; display: block;
           margin: .8em 0 .3em; }
  #message { color: #b00020; min-height: 1.4em; }
  #fallback { color: #8a5a00; }
  #stats span { margin-right: 1.2em; }
  .muted { color: #777; }
</style>
</head>
<body>
<h1>banana live</h1>
<input id="prompt" type="text" autocomplete="off" autofocus placeholder="a red circle top left"
       aria-label="prompt">
<div id="message" role="alert"></div>
<div id="stats">
  <span>fps <b id="fps">-</b></span>
  <span>latency <b id="latency">-</b> ms</span>
  <span>decoder <b id="decoder">-</b></span>
</div>
<div id="fallback" hidden></div>
<div id="connection" class="muted"></div>
<img id="frame" alt="the newest frame">
<div id="caption" class="muted">no frame yet: type a prompt</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const input = $("prompt"), img = $("frame"), message = $("message");
let timer = null, sending = false, queued = null;

function send(prompt) {
  if (sending) { queued = prompt; return; }  // one POST in flight: prompts reach the server in order
  sending = true;
  fetch("/prompt", {method: "POST", headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({prompt: prompt})})
    .then((r) => r.json())
    .then((j) => {
      if (j.error) { message.textContent = "error: " + j.error; }
      else if (j.status === "refused") { message.textContent = j.message; }  // the last frame stays
      else { message.textContent = ""; }
      message.dataset.status = j.error ? "error" : j.status;
      message.dataset.prompt = prompt;
    })
    .catch(() => { message.textContent = "the server does not answer (stopped?)"; })
    .finally(() => {
      sending = false;
      if (queued !== null) { const next = queued; queued = null; send(next); }
    });
}

input.addEventListener("input", () => {
  clearTimeout(timer);
  const prompt = input.value;
  timer = setTimeout(() => send(prompt), 100);  // debounced: a frame per pause, not per key
});

function fmt(x, digits) { return x === null || x === undefined ? "-" : x.toFixed(digits); }

function show(s) {
  $("fps").textContent = fmt(s.fps, 1);
  $("latency").textContent = fmt(s.latency_ms, 0);
  $("decoder").textContent = s.decoder;
  const fb = $("fallback");
  fb.hidden = !s.fallback;
  fb.textContent = s.fallback ? "preview decoder asked for, but the " + s.fallback +
                                ": falls back to the full decoder" : "";
}

let after = -1;
async function poll() {
  let wait = 0;  // the first answer at once (decoder, fallback), then long polls
  for (;;) {
    try {
      const r = await fetch("/frame?after=" + after + "&wait=" + wait);
      const s = await r.json();
      $("connection").textContent = "";
      show(s);
      if (s.index !== null && s.index > after) {
        after = s.index;
        const index = s.index, prompt = s.prompt;
        img.onload = () => {
          img.dataset.index = index;
          img.dataset.prompt = prompt;
          $("caption").textContent = "frame " + index + ": " + prompt;
        };
        img.src = s.png;
      }
      if (s.stopping) { throw new Error("stopping"); }
      wait = 10;
    } catch (e) {
      $("connection").textContent = "the server does not answer (stopped?)";
      await new Promise((done) => setTimeout(done, 1000));
    }
  }
}
poll();
</script>
</body>
</html>
"""

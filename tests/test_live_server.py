"""`banana live` in a real headless browser: Debian's chromium driven through its chromedriver by selenium.

Nothing is downloaded: the browser and the driver are the system's (`make`'s `browser-deps` installs them with
apt), their paths are given to selenium, and Selenium Manager is pointed at /bin/false so that it cannot run.
A missing browser fails these tests; it never skips them.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import ROOT, assert_one_line_error, run_cli
from PIL import Image

from banana_sdk.live_server import LiveServer
from banana_sdk.runtime.litert import LiteRTPipeline

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
RED, BLUE = "a red circle top left", "a blue square bottom right"
LONG = " ".join(["a red circle"] * 20)  # over the tiny model's 32-token context
EMPTY_MESSAGE = "prompt is empty; describe the image to generate"
CANVAS_READBACK = """const img = arguments[0], canvas = document.createElement("canvas");
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
const ctx = canvas.getContext("2d"); ctx.drawImage(img, 0, 0);
return Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data);"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds (TIME_WAIT is no owner)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="module")
def bundle(bundle_factory) -> Path:  # noqa: ANN001
    return bundle_factory("int4")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless chromium (the system's), offline: selenium is given both paths and no Selenium Manager."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: `make pytest` installs Debian's chromium and chromium-driver "
                    "(mk/browser.mk)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    saved = {k: os.environ.get(k) for k in ("SE_OFFLINE", "SE_MANAGER_PATH")}
    os.environ["SE_OFFLINE"] = "true"
    os.environ["SE_MANAGER_PATH"] = "/bin/false"  # any attempt to run Selenium Manager fails
    profile = tempfile.TemporaryDirectory(prefix="banana-chromium-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile.name}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _banana_live(bundle: Path, port: int, *extra: str) -> Iterator[subprocess.Popen]:
    """`banana live` as a subprocess, once it answers on its port; killed if the test left it running."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "live", "--bundle", str(bundle), "--port",
                             str(port), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                assert r.status == 200
                break
            assert time.monotonic() < deadline, "banana live did not answer in 60 s"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        return np.asarray(image, dtype=np.uint8)


def test_the_page_follows_the_prompt_in_a_real_browser(bundle: Path, browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    pipe = LiteRTPipeline.load(bundle)
    expected = {p: np.asarray(pipe.run(p, steps=1, seed=0).image, dtype=np.uint8) for p in (RED, BLUE)}
    port = _free_port()
    # --decoder preview on a bundle without a preview decoder: the full decoder runs, and the page says so
    with _banana_live(bundle, port, "--decoder", "preview") as proc:
        url = f"http://127.0.0.1:{port}/"
        second = run_cli("live", "--bundle", bundle, "--port", port)  # a second server on the same port
        assert_one_line_error(second, f"port {port} on 127.0.0.1 is in use; pass --port")

        browser.get(url)
        wait = WebDriverWait(browser, 20)
        field, img = browser.find_element(By.ID, "prompt"), browser.find_element(By.ID, "frame")
        wait.until(lambda d: d.find_element(By.ID, "decoder").text == "full")
        fallback = browser.find_element(By.ID, "fallback")
        assert fallback.is_displayed()
        assert "no preview_decode" in fallback.text and "falls back to the full decoder" in fallback.text

        def shown(prompt: str) -> str:
            """Wait until the page shows a frame of `prompt`; check it pixel for pixel; return its src."""
            wait.until(lambda d: img.get_attribute("data-prompt") == prompt)
            src = img.get_attribute("src")
            assert src.startswith(url + "frame.png?i="), src
            with urllib.request.urlopen(src, timeout=10) as r:
                assert r.headers["Content-Type"] == "image/png"
                np.testing.assert_array_equal(_pixels(r.read()), expected[prompt])
            shown_pixels = browser.execute_script(CANVAS_READBACK, img)  # what the browser decoded and shows
            np.testing.assert_array_equal(
                np.asarray(shown_pixels, np.uint8).reshape(pipe.size, pipe.size, 4)[..., :3], expected[prompt])
            assert prompt in browser.find_element(By.ID, "caption").text
            return src

        field.send_keys(RED)
        shown(RED)
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(BLUE)  # replaces the selection
        src = shown(BLUE)
        wait.until(lambda d: d.find_element(By.ID, "fps").text != "-")  # two frames shown: a rate
        assert float(browser.find_element(By.ID, "fps").text) > 0
        assert float(browser.find_element(By.ID, "latency").text) >= 0

        message = browser.find_element(By.ID, "message")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.BACKSPACE)  # empty: refused, the frame stays
        wait.until(lambda d: message.text == EMPTY_MESSAGE)
        field.send_keys(LONG)  # over-long: refused with the tokenizer's line
        wait.until(lambda d: "tokens but the model's context holds 32" in message.text)
        assert len(message.text.splitlines()) == 1
        time.sleep(0.3)
        assert img.get_attribute("src") == src and img.get_attribute("data-prompt") == BLUE
        assert browser.find_element(By.ID, "caption").text.endswith(BLUE)

        # nothing on the page came from anywhere but this server
        resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert resources and all(name.startswith(url) for name in resources), resources

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert url in out and "Ctrl-C" in out, out
    assert out.splitlines()[-1].startswith("stopped"), out
    assert "Traceback" not in err, err
    assert _port_is_free(port)


def test_a_second_server_on_the_same_port_is_one_error_line(bundle: Path) -> None:
    with LiveServer(port=0) as first:  # the same bind as `banana live`, holding a port
        result = run_cli("live", "--bundle", bundle, "--port", first.port, in_process=True)
        assert_one_line_error(result, f"port {first.port} on 127.0.0.1 is in use; pass --port", alone=True)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_only_loopback_is_served(bundle: Path, host: str) -> None:
    result = run_cli("live", "--bundle", bundle, "--host", host, "--port", 0, in_process=True)
    assert_one_line_error(result, "127.0.0.1 only", f"--host {host}", alone=True)


def test_a_bundle_that_is_not_a_banana_bundle_is_one_error_line(tmp_path: Path) -> None:
    from converters.byom.module import convert_module

    (tmp_path / "lin.py").write_text("import torch\n\n\ndef build():\n    torch.manual_seed(0)\n"
                                     "    return torch.nn.Linear(4, 2)\n")
    module = convert_module(tmp_path / "mod", f"{tmp_path / 'lin.py'}:build", "input:1x4", "lin")
    result = run_cli("live", "--bundle", module, "--port", 0, in_process=True)
    assert_one_line_error(result, "not a text-to-image pipeline", alone=True)
    (tmp_path / "empty").mkdir()
    result = run_cli("live", "--bundle", tmp_path / "empty", "--port", 0, in_process=True)
    assert_one_line_error(result, "not a bundle", alone=True)


def test_the_server_answers_its_own_page_only_and_stops_with_a_long_poll_open(bundle: Path) -> None:
    import http.client
    import json
    import threading

    from banana_sdk.runtime.live import LiveConfig, LiveSession

    def request(method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()

    with LiveSession(LiteRTPipeline.load(bundle), LiveConfig()) as session, LiveServer(port=0) as server:
        server.start(session)
        json_type = {"Content-Type": "application/json"}
        assert request("GET", "/", Host="evil.example:80")[0] == 403  # DNS rebinding
        assert request("POST", "/prompt", b'{"prompt": "x"}', **{"Content-Type": "text/plain"})[0] == 415
        assert request("POST", "/prompt", b'{"prompt": "x"}', Origin="http://evil.example", **json_type)[0] == 403
        assert request("POST", "/prompt", b"not json", **json_type)[0] == 400
        assert request("GET", "/frame.png?i=5")[0] == 404
        status, body = request("POST", "/prompt", json.dumps({"prompt": RED}).encode(), **json_type)
        assert status == 200 and json.loads(body)["status"] == "accepted"
        state = json.loads(request("GET", "/frame?after=-1&wait=10")[1])
        assert state["index"] == 0 and state["prompt"] == RED and state["fallback"] is None
        polled: list[int] = []
        poll = threading.Thread(target=lambda: polled.append(request("GET", "/frame?after=0&wait=30")[0]))
        poll.start()
        time.sleep(0.3)
        start = time.monotonic()
        server.stop()  # answers the open long poll, joins every thread
        poll.join(5)
        assert polled == [200] and time.monotonic() - start < 3
    assert _port_is_free(server.port)

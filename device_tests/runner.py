"""Host side of the runner contract: launch `BenchmarkActivity`, wait for its result file, pull, validate."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device_tests.adb import Device
from device_tests.contract import COMPONENT, PACKAGE, RunRequest, am_start_argv, validate_result
from device_tests.errors import AppNotInstalled, CommandMayHaveRun, ContractError, Interrupted, RunnerError

POLL_S = 0.25  # how often we look for the result file
PROCESS_CHECK_S = 2.0  # how often we check that the app is still alive
GRACE_S = 1.0  # after the app is gone, how long a result may still take to appear


@dataclass(frozen=True)
class LaunchResult:
    result: dict[str, Any]  # the validated result file
    started_t: float  # host monotonic time when `am start` was sent
    finished_t: float  # host monotonic time when the result file was seen


def _check_am_output(device: Device, text: str) -> None:
    if "does not exist" in text or "unable to resolve Intent" in text:
        raise AppNotInstalled(f"{PACKAGE} (BenchmarkActivity) is not installed on {device.serial}: "
                              f"{_last_error(text)}; install the sample app")
    if "Error" in text:
        raise RunnerError(f"`am start` failed on {device.serial}: {_last_error(text)}")
    if "Activity not started" in text:
        raise RunnerError(f"the app on {device.serial} is still busy with an earlier run; stop it with "
                          f"`adb -s {device.serial} shell am force-stop {PACKAGE}` and try again")


def _am_failed(device: Device, status: int, said: str) -> str:
    """One line for an `am start` that exited non-zero without an error we know."""
    if status == 127:
        todo = (f"this device has no usable `am` (the activity manager client); check `adb -s {device.serial} shell "
                "am` by hand, or pass --benchmark-model PATH, which needs no app")
    else:
        todo = f"check `adb -s {device.serial} shell am start -n {COMPONENT}` by hand and reboot the device if it fails"
    return f"`am start` failed on {device.serial} (exit {status}: {said}); {todo}"


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if "Error" in line or "error" in line]
    return lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else "no output"


def app_running(device: Device) -> bool:
    return device.shell(["pidof", PACKAGE], check=False).returncode == 0


def log_tail(device: Device, lines: int = 3) -> str:
    out = device.shell(["logcat", "-d"], check=False).stdout.strip().splitlines()
    relevant = [line for line in out if "BenchmarkActivity" in line or "AndroidRuntime" in line]
    return " | ".join(relevant[-lines:]) or "no log lines from the app"


def launch(device: Device, request: RunRequest, timeout_s: float, on_poll: Callable[[], None] | None = None,
           stop: threading.Event | None = None) -> LaunchResult:
    """Start the activity, wait for the result (at most `timeout_s`), return it validated.

    `on_poll()` runs while waiting (a live run's parts are fetched there); `stop` set (Ctrl-C) stops the app and
    raises Interrupted. RunnerError when the app reports an error, dies without a result, or times out (it is
    then stopped).
    """
    if stop is not None and stop.is_set():
        raise Interrupted(f"interrupted (Ctrl-C) before the run on {device.serial} started")
    path = request.result_path
    device.shell(["rm", "-f", path], check=False)
    started = time.monotonic()
    _start_activity(device, request)
    deadline = started + timeout_s
    next_check = started + PROCESS_CHECK_S
    gone_since = None
    while True:
        stat = device.with_retry("waiting for the result", lambda: _stat(device, path))
        if stat:
            raw = device.with_retry("pulling the result", lambda: _pull(device, path))
            finished = time.monotonic()
            device.shell(["rm", "-f", path], check=False)
            return LaunchResult(_parse(device, raw, request), started, finished)
        if stop is not None and stop.is_set():
            device.shell(["am", "force-stop", PACKAGE], check=False)
            raise Interrupted(f"interrupted (Ctrl-C); the app on {device.serial} was stopped")
        if on_poll is not None:
            on_poll()
        now = time.monotonic()
        if now >= deadline:
            device.shell(["am", "force-stop", PACKAGE], check=False)
            raise RunnerError(f"no result from {device.serial} after {timeout_s:.0f} s; the app was stopped "
                              "(raise --timeout for big models)")
        if now >= next_check:
            next_check = now + PROCESS_CHECK_S
            if app_running(device):
                gone_since = None
            elif gone_since is None:
                gone_since = now
            elif now - gone_since > GRACE_S:
                raise RunnerError(f"the app on {device.serial} exited without writing a result "
                                  f"({log_tail(device)})")
        time.sleep(POLL_S)


def _start_activity(device: Device, request: RunRequest) -> None:
    """`am start -W` the run. Not repeated blindly: if the connection drops during it (a restarted adb server, a
    USB hiccup) and the device comes back, the run is started again only if neither the app nor its result is
    there (`am start -W` returns when the activity has launched; a drop before that may have lost the intent)."""
    try:
        am = device.shell(am_start_argv(request), retry=False, check=False)
    except CommandMayHaveRun:
        if app_running(device) or device.with_retry("waiting for the result",
                                                    lambda: _stat(device, request.result_path)):
            return  # it did start: wait for its result as usual
        am = device.shell(am_start_argv(request), retry=False, check=False)
    _check_am_output(device, am.stdout + am.stderr)
    if am.returncode != 0:
        raise RunnerError(_am_failed(device, am.returncode, am.summary()))


def _stat(device: Device, path: str) -> bool:
    with device.sync(timeout_s=30.0) as sync:
        return sync.stat(path).exists


def _pull(device: Device, path: str) -> bytes:
    with device.sync(timeout_s=30.0) as sync:
        return sync.pull(path, limit=64 * 1024 * 1024)


def _parse(device: Device, raw: bytes, request: RunRequest) -> dict[str, Any]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"result file from {device.serial} is not JSON ({exc})") from None
    result = validate_result(obj, expect_run_id=request.run_id)
    if result["status"] == "error":
        raise RunnerError(f"the app on {device.serial} reported an error: {result['error']}")
    if request.live and "live" not in result:
        raise ContractError(f"the app on {device.serial} answered a live run without a live section (an app "
                            "older than runner contract schema 2?)")
    validate_result(result, expect_run_id=request.run_id, expect_runs=None if request.live else request.runs)
    return result

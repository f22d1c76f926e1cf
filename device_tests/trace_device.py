"""`banana profile --trace`: record a Perfetto trace on the device around the timed runs and pull it beside RUN.json.

Before any timed run: `perfetto --version` (absent on Android < 9: a one-line DeviceError, nothing measured).
Then the config (`trace_config.py`) is pushed to /data/local/tmp/banana/traces/ and piped in, `cat CONFIG |
perfetto --background --txt -c - -o /data/misc/perfetto-traces/<name>.pftrace` (the documented way round the
SELinux rule that keeps perfetto from reading /data/local/tmp on Android 9-11), which prints the session's pid.
At the end (or when the run fails) `kill -TERM PID` stops it; once `kill -0 PID` fails the process has written
the file, which is pulled to `RUN.trace-<serial>.pftrace`, summarised (`trace_summary.py`) and journalled as a
`trace` event.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from banana_sdk.fileio import atomic_write_bytes
from device_tests.adb import Device
from device_tests.errors import DeviceCommandError, DeviceError, ReportError
from device_tests.push import push_side_files
from device_tests.quoting import command_line
from device_tests.trace_config import DEVICE_TRACE_DIR, TraceSpec

STOP_TIMEOUT_S = 60.0  # how long perfetto may take to write its file after SIGTERM
POLL_S = 0.2  # how often we ask whether it has exited
MAX_TRACE_BYTES = 2 << 30  # a trace larger than this is not pulled (the device keeps it)


class PerfettoMissing(DeviceError):
    """The device has no `perfetto` command (Android < 9)."""


@dataclass(frozen=True)
class ActiveTrace:
    pid: int  # the background perfetto process
    device_path: str  # where it writes the trace
    config_path: str  # the pushed text config (content-addressed under DEVICE_ROOT/traces/, kept)
    started_wall: float  # host time.time() when it started


def trace_file(run_json: Path, serial: str) -> Path:
    """`RUN.trace-<serial>.pftrace` beside RUN.json (characters a file name cannot hold become `_`)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", serial)
    return run_json.with_name(f"{run_json.stem}.trace-{safe}.pftrace")


def run_json_of(journal: Path) -> Path:
    """RUN.json of a journal `RUN.journal.jsonl`."""
    return journal.with_name(journal.name.removesuffix(".journal.jsonl") + ".json")


def check_perfetto(device: Device) -> None:
    """PerfettoMissing (one line) when the device cannot record a trace."""
    result = device.shell(["perfetto", "--version"], timeout_s=30, check=False)
    if result.returncode != 0:
        raise PerfettoMissing(f"perfetto is not on {device.serial} (Android < 9?): run without --trace "
                              f"({result.summary()})")


def start_trace(device: Device, spec: TraceSpec) -> ActiveTrace:
    """Push the config and start a background session; DeviceCommandError if perfetto refuses it."""
    name = f"banana-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    out = f"{DEVICE_TRACE_DIR}/{name}.pftrace"
    with tempfile.TemporaryDirectory(prefix="banana-trace-") as tmp:
        local = Path(tmp) / "config.pbtxt"
        local.write_text(spec.config_text(), encoding="utf-8")
        config_path = push_side_files(device, [local], "traces", ".pbtxt", "trace config")[local]
    pipeline = (command_line(["cat", config_path]) + " | "
                + command_line(["perfetto", "--background", "--txt", "-c", "-", "-o", out]))
    result = device.shell(["sh", "-c", pipeline], timeout_s=60, check=False)
    pid = result.stdout.strip().splitlines()[-1].strip() if result.stdout.strip() else ""
    if result.returncode != 0 or not pid.isdigit():
        raise DeviceCommandError(f"perfetto did not start on {device.serial} (exit {result.returncode}): "
                                 f"{result.summary()}")
    return ActiveTrace(int(pid), out, config_path, time.time())


def stop_trace(device: Device, active: ActiveTrace, host_path: Path, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM the session, wait for it to write and exit, pull the trace to `host_path`; returns its size."""
    device.shell(["kill", "-TERM", str(active.pid)], timeout_s=30, check=False)
    deadline = time.monotonic() + timeout_s
    while device.shell(["kill", "-0", str(active.pid)], timeout_s=30, check=False).returncode == 0:
        if time.monotonic() >= deadline:
            raise DeviceCommandError(f"perfetto (pid {active.pid}) on {device.serial} did not exit "
                                     f"{timeout_s:.0f} s after SIGTERM; its trace is in {active.device_path}")
        time.sleep(POLL_S)
    with device.sync() as sync:
        data = sync.pull(active.device_path, limit=MAX_TRACE_BYTES)
    atomic_write_bytes(host_path, data)
    with contextlib.suppress(DeviceError):  # the trace is ours now; a device that forbids deleting keeps a copy
        device.shell(["rm", "-f", active.device_path], timeout_s=30, check=False)
    return len(data)


@contextlib.contextmanager
def recording(device: Device, spec: TraceSpec | None, host_path: Path,
              emit: Callable[..., None]) -> Iterator[None]:
    """Record a trace around the block when `spec` is given; the `trace` event says where it went.

    The trace is stopped and pulled when the block fails too (what it recorded is kept); a failure to stop or
    pull it then becomes a note, so the run's own error is the one reported.
    """
    if spec is None:
        yield
        return
    active = start_trace(device, spec)
    emit("trace_start", pid=active.pid, device_path=active.device_path)  # where it is, should the harness die
    failed = True
    try:
        yield
        failed = False
    finally:
        try:
            _finish(device, active, spec, host_path, emit)
        except DeviceError as exc:
            if not failed:
                raise
            emit("note", text=f"the Perfetto trace was lost: {exc}")


def _finish(device: Device, active: ActiveTrace, spec: TraceSpec, host_path: Path, emit: Callable[..., None]) -> None:
    """Stop and pull the trace, summarise it (a trace that cannot be read is kept, with a note) and journal it."""
    from device_tests.trace_summary import summarize_trace

    size = stop_trace(device, active, host_path)
    try:
        summary = summarize_trace(host_path)
    except ReportError as exc:
        summary = None
        emit("note", text=f"the Perfetto trace {host_path.name} could not be summarised: {exc}")
    emit("trace", trace={"path": host_path.name, "device_path": active.device_path, "bytes": size,
                         "config": spec.config_text(), "summary": summary})

def spec_for(trace: bool, timeout_s: float, sustained_s: float | None = None, live_s: float | None = None,
             ) -> TraceSpec | None:
    """The trace a profile asks for: None without --trace; else one that stops by itself a launch timeout after
    the longest the measurement can take (the harness stops it long before)."""
    if not trace:
        return None
    longest_s = (sustained_s or 0.0) + (live_s or 0.0) + 2 * timeout_s
    return TraceSpec(duration_ms=int(longest_s * 1000))


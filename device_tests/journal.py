"""Append-only run journal: every event (device info, push, each result, each telemetry sample) is one
JSON line, flushed and fsynced as it arrives, so nothing measured is lost if the run dies."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from device_tests.errors import ReportError


def journal_path(run_json: Path) -> Path:
    """The journal that sits next to RUN.json (`RUN.journal.jsonl`)."""
    return run_json.with_name(run_json.stem + ".journal.jsonl")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._lock = threading.Lock()
        self.t0 = time.monotonic()  # event times are seconds since the journal opened

    def write(self, kind: str, serial: str | None = None, **data: Any) -> dict[str, Any]:
        """Append one event and return it (with its `t`)."""
        event = _finite({"kind": kind, "serial": serial, "t": round(time.monotonic() - self.t0, 4),
                         "wall": round(time.time(), 3), **data})
        line = json.dumps(event, separators=(",", ":"), allow_nan=False, default=str)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        return event

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def _finite(obj: Any) -> Any:
    """The same data with NaN/inf replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Events of a journal; a torn last line (the writer died mid-write) is ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ReportError(f"cannot read journal {path}: {exc.strerror}") from None
    events = []
    for k, line in enumerate(lines):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            if k == len(lines) - 1:
                break
            raise ReportError(f"{path} line {k + 1} is not a journal event") from None
    return events

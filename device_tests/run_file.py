"""Read a run: RUN.json as written at the end, or the journal of a run that died (rebuilt from its events)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from banana_sdk import __version__
from banana_sdk.fileio import read_versioned_json
from device_tests.errors import ReportError
from device_tests.journal import journal_path, read_journal
from device_tests.run_record import DeviceRun

RUN_FORMAT = "banana-profile-run"
RUN_SCHEMA_VERSION = 2  # 2: devices of a `--live` run carry `live` and `live_summary`; version 1 files read as they are


def build_run_json(runs: list[DeviceRun], bundle: dict[str, Any], settings: dict[str, Any], started: float,
                   command: list[str] | None = None) -> dict[str, Any]:
    """The run file: settings, bundle, one summary per device, and all ExecuTorch-style records."""
    devices = [r.summary(bundle, settings) for r in runs]
    return {
        "schema_version": RUN_SCHEMA_VERSION, "format": RUN_FORMAT, "created_by": f"banana-sdk {__version__}",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": command, "bundle": bundle,
        "settings": settings, "complete": all(d["complete"] for d in devices),
        "simulated": any(d["simulated"] for d in devices), "devices": devices,
        "records": [rec for d in devices for rec in d["records"]],
    }


def load_run(path: Path) -> dict[str, Any]:
    """A run dict from RUN.json or RUN.journal.jsonl; ReportError when it is neither."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return run_from_journal(path)
    if not path.is_file():
        journal = journal_path(path)
        if not path.exists() and journal.is_file():
            raise ReportError(f"{path} was not written (the run was killed?); its journal is {journal}: run "
                              f"`banana report {journal} -o REPORT.html` to see what was measured")
        raise ReportError(f"cannot read {path}: it does not exist or is not a file")
    data = read_versioned_json(path, fmt=RUN_FORMAT, max_version=RUN_SCHEMA_VERSION, error=ReportError,
                               what="banana profile run")
    if not isinstance(data.get("devices"), list):
        raise ReportError(f"{path} has no device list")
    return data


def run_from_journal(path: Path) -> dict[str, Any]:
    """Rebuild the run from its journal; devices without an `end` event are incomplete."""
    events = read_journal(path)
    start = next((e for e in events if e["kind"] == "start"), None)
    if start is None:
        raise ReportError(f"{path} has no start event; it is not a run journal")
    runs: dict[str, DeviceRun] = {}
    for serial in start.get("serials", []):
        runs[serial] = DeviceRun(serial)
    for event in events:
        serial = event.get("serial")
        if serial is None or event["kind"] == "start":
            continue
        runs.setdefault(serial, DeviceRun(serial)).apply(event)
    for run in runs.values():
        if not run.complete and run.error is None:
            run.error = "the run ended without finishing (rebuilt from its journal)"
    result = build_run_json(list(runs.values()), start["bundle"], start["settings"], start["wall"],
                            start.get("command"))
    result["rebuilt_from_journal"] = str(path)
    return result

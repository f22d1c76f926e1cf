"""The runner contract between the harness and the on-device app (normative; docs/DESIGN.md section 6).

The harness starts

    am start -W -n com.banana.sdk.app/.BenchmarkActivity --es bundle DIR --es prompt TEXT --ei steps N ...

with the extras of `EXTRAS` below (each value one literal argument), and the activity writes
`RESULT_DIR/<run_id>.json` atomically (temp file + rename) and finishes. The result is checked by
`validate_result`. Both sides of this repository use this module: the harness builds the command with
`am_start_argv`, the simulated device parses it back with `parse_am_args` and `RunRequest.from_extras`.
"""

from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from device_tests.errors import ContractError

SCHEMA_VERSION = 2  # result files with a newer schema_version are refused (2: the `live` mode and section)
PACKAGE = "com.banana.sdk.app"  # the sample app
ACTIVITY = ".BenchmarkActivity"  # the runner activity, relative to PACKAGE
COMPONENT = f"{PACKAGE}/{ACTIVITY}"  # what `am start -n` gets
FILES_DIR = f"/sdcard/Android/data/{PACKAGE}/files"  # the app's external files dir
RESULT_DIR = f"{FILES_DIR}/results"  # where result files appear
DEVICE_ROOT = "/data/local/tmp/banana"  # where the harness pushes bundles (one dir per bundle hash)
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # run ids name files: no separators
MODES = ("generate", "live")  # the `mode` extra: timed generations (default) or a live session (DESIGN §6, §9)
LIVE_EXTRAS = ("duration_s", "target_fps", "prompts", "edit_ms", "governor")  # only with mode=live, all required
LIVE_PART_S = 1.0  # a live run writes what happened since its last part this often (app seconds): `part_path`
MAX_TARGET_FPS = 240
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


class Delegate(str, Enum):
    """Which accelerator the app asks LiteRT for; `auto` lets the app choose and fall back."""

    AUTO = "auto"
    GPU = "gpu"
    NPU = "npu"
    NNAPI = "nnapi"
    CPU = "cpu"


class ExtraType(str, Enum):
    """`am` extra types we use, by their `am` flag."""

    STRING = "--es"
    INT = "--ei"
    LONG = "--el"


@dataclass(frozen=True)
class Extra:
    name: str  # extra key as the activity reads it
    type: ExtraType  # am flag, so also the Java type
    required: bool  # the activity refuses to start without it


EXTRAS: tuple[Extra, ...] = (
    Extra("bundle", ExtraType.STRING, True),
    Extra("prompt", ExtraType.STRING, True),
    Extra("steps", ExtraType.INT, True),
    Extra("size", ExtraType.INT, True),
    Extra("seed", ExtraType.LONG, True),
    Extra("delegate", ExtraType.STRING, True),
    Extra("threads", ExtraType.INT, True),
    Extra("warmup", ExtraType.INT, True),
    Extra("runs", ExtraType.INT, True),
    Extra("run_id", ExtraType.STRING, True),
    Extra("peels", ExtraType.STRING, False),
    Extra("subjects", ExtraType.STRING, False),
    Extra("mode", ExtraType.STRING, False),  # `generate` (default) or `live`
    Extra("duration_s", ExtraType.INT, False),  # live: seconds of the app's clock the session runs
    Extra("target_fps", ExtraType.INT, False),  # live: the governor's L0 frame rate (edits are paced to it)
    Extra("prompts", ExtraType.STRING, False),  # live: device path of a UTF-8 file, one prompt (edit) per line
    Extra("edit_ms", ExtraType.INT, False),  # live: the simulated user makes the next edit this often
    Extra("governor", ExtraType.INT, False),  # live: 1 = the thermal governor applies its levels, 0 = L0 only
)
EXTRAS_BY_NAME = {extra.name: extra for extra in EXTRAS}


@dataclass(frozen=True)
class RunRequest:
    """One launch of the runner activity."""

    bundle: str  # bundle directory on the device (absolute)
    prompt: str  # what to draw, any text; reaches the app as one literal argument
    steps: int  # denoising steps
    size: int  # image side in pixels
    seed: int  # noise seed (Java long)
    delegate: Delegate  # accelerator asked for
    threads: int  # XNNPACK CPU threads
    warmup: int  # untimed runs before the timed ones
    runs: int  # timed runs
    run_id: str  # names the result file; RUN_ID_PATTERN
    peels: str | None = None  # optional `path:weight,path:weight`
    subjects: str | None = None  # optional comma-separated subject files
    mode: str | None = None  # MODES; None = generate
    duration_s: int | None = None  # live: session length in the app's seconds
    target_fps: int | None = None  # live: L0's frame rate
    prompts: str | None = None  # live: device path of the prompts file (one edit per line, in order, cycled)
    edit_ms: int | None = None  # live: milliseconds between two edits of the simulated user
    governor: int | None = None  # live: 1 on, 0 off

    @property
    def live(self) -> bool:
        return self.mode == "live"

    def __post_init__(self) -> None:
        check_request(self)

    @classmethod
    def from_extras(cls, extras: dict[str, Any]) -> RunRequest:
        """Typed extras (as `parse_am_args` returns them) -> request; raises ContractError."""
        unknown = sorted(set(extras) - set(EXTRAS_BY_NAME))
        if unknown:
            raise ContractError(f"unknown extras {unknown}; the runner takes {sorted(EXTRAS_BY_NAME)}")
        missing = [e.name for e in EXTRAS if e.required and e.name not in extras]
        if missing:
            raise ContractError(f"missing extras {missing}")
        for name, value in extras.items():
            want = str if EXTRAS_BY_NAME[name].type is ExtraType.STRING else int
            if not isinstance(value, want) or isinstance(value, bool):
                raise ContractError(f"extra {name!r} must be passed with {EXTRAS_BY_NAME[name].type.value}")
        try:
            delegate = Delegate(extras["delegate"])
        except ValueError:
            raise ContractError(
                f"unknown delegate {extras['delegate']!r}; choose from {[d.value for d in Delegate]}"
            ) from None
        return cls(**{**extras, "delegate": delegate})

    def extras(self) -> list[tuple[Extra, str]]:
        """(extra, value as one argument) for each extra that is set, in EXTRAS order."""
        out = []
        for extra in EXTRAS:
            value = getattr(self, extra.name)
            if value is None:
                continue
            out.append((extra, value.value if isinstance(value, Delegate) else str(value)))
        return out

    @property
    def result_path(self) -> str:
        return result_path(self.run_id)


def check_request(req: RunRequest) -> None:
    """Raise ContractError unless every field is in range."""
    if not posixpath.isabs(req.bundle) or "\0" in req.bundle:
        raise ContractError(f"bundle must be an absolute device path, got {req.bundle!r}")
    if "\0" in req.prompt:
        raise ContractError("prompt must not contain NUL characters")
    for name, low in (("steps", 1), ("size", 8), ("threads", 1), ("warmup", 0), ("runs", 1)):
        value = getattr(req, name)
        if isinstance(value, bool) or not isinstance(value, int) or not (low <= value <= INT32[1]):
            raise ContractError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(req.seed, bool) or not isinstance(req.seed, int) or not (INT64[0] <= req.seed <= INT64[1]):
        raise ContractError(f"seed must be a 64-bit integer, got {req.seed!r}")
    if not isinstance(req.delegate, Delegate):
        raise ContractError(f"delegate must be one of {[d.value for d in Delegate]}, got {req.delegate!r}")
    if not isinstance(req.run_id, str) or not RUN_ID_PATTERN.match(req.run_id):
        raise ContractError(f"run_id must match {RUN_ID_PATTERN.pattern}, got {req.run_id!r}")
    if req.peels is not None:
        parse_peels(req.peels)
    if req.mode is not None and req.mode not in MODES:
        raise ContractError(f"mode must be one of {list(MODES)}, got {req.mode!r}")
    if not req.live:
        given = [name for name in LIVE_EXTRAS if getattr(req, name) is not None]
        if given:
            raise ContractError(f"extras {given} go with mode 'live' only")
        return
    missing = [name for name in LIVE_EXTRAS if getattr(req, name) is None]
    if missing:
        raise ContractError(f"mode 'live' needs the extras {missing}")
    for name, low, high in (("duration_s", 1, 24 * 3600), ("target_fps", 1, MAX_TARGET_FPS),
                            ("edit_ms", 1, INT32[1]), ("governor", 0, 1)):
        value = getattr(req, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ContractError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    if not isinstance(req.prompts, str) or not posixpath.isabs(req.prompts) or "\0" in req.prompts:
        raise ContractError(f"prompts must be an absolute device path, got {req.prompts!r}")


def parse_peels(text: str) -> list[tuple[str, float]]:
    """The `peels` extra `path:weight,path:weight` (weight optional, default 1) -> [(device path, weight)]."""
    out = []
    for item in text.split(","):
        path, sep, raw = item.strip().rpartition(":")
        if not sep:
            path, raw = item.strip(), "1"
        try:
            weight = float(raw)
        except ValueError:
            raise ContractError(f"peels: weight {raw!r} of {path!r} is not a number (use path:0.8)") from None
        if not posixpath.isabs(path) or "\0" in path:
            raise ContractError(f"peels: {path!r} must be an absolute device path")
        if not math.isfinite(weight):
            raise ContractError(f"peels: weight of {path!r} must be finite, got {raw!r}")
        out.append((path, weight))
    return out


def result_path(run_id: str) -> str:
    """Device path of the result file for `run_id`."""
    if not RUN_ID_PATTERN.match(run_id):
        raise ContractError(f"run_id must match {RUN_ID_PATTERN.pattern}, got {run_id!r}")
    return f"{RESULT_DIR}/{run_id}.json"


def part_prefix(run_id: str) -> str:
    """File-name prefix of a live run's parts in RESULT_DIR (`<run_id>.part<k>.json`, k = 0, 1, ...)."""
    result_path(run_id)
    return f"{run_id}.part"


def part_path(run_id: str, k: int) -> str:
    """Device path of part `k` of a live run: what happened since part k-1 (see `LIVE_PART_S`)."""
    return f"{RESULT_DIR}/{part_prefix(run_id)}{k}.json"


def am_start_argv(req: RunRequest) -> list[str]:
    """The `am start` command as an argument list (quote each argument before it reaches a shell)."""
    argv = ["am", "start", "-W", "-n", COMPONENT]
    for extra, value in req.extras():
        argv += [extra.type.value, extra.name, value]
    return argv


@dataclass(frozen=True)
class AmStart:
    """What `am start` was asked for."""

    component: str | None  # -n package/activity
    wait: bool  # -W: wait for the launch to complete
    stop_first: bool  # -S: force-stop the app first
    extras: dict[str, Any]  # typed extras


def parse_am_args(args: list[str]) -> AmStart:
    """Parse the arguments after `am start` the way Android's `am` does (the subset we use).

    Raises ContractError with `am`'s wording for unknown options or malformed values.
    """
    component, wait, stop, extras = None, False, False, {}
    i = 0

    def take(n: int) -> list[str]:
        nonlocal i
        if i + n > len(args):
            raise ContractError(f"Error: option {args[i - 1]!r} needs {n} argument(s)")
        out = args[i:i + n]
        i += n
        return out

    while i < len(args):
        opt = args[i]
        i += 1
        if opt == "-W":
            wait = True
        elif opt == "-S":
            stop = True
        elif opt == "-n":
            (component,) = take(1)
        elif opt in ("--es", "--ei", "--el"):
            key, raw = take(2)
            extras[key] = raw if opt == "--es" else _parse_int(opt, key, raw)
        elif opt == "--esn":
            (key,) = take(1)
            extras[key] = None
        elif opt == "--ez":
            key, raw = take(2)
            if raw.lower() not in ("true", "false", "t", "f", "1", "0"):
                raise ContractError(f"Error: invalid boolean value {raw!r} for {key!r}")
            extras[key] = raw.lower() in ("true", "t", "1")
        else:
            raise ContractError(f"Error: Unknown option: {opt}")
    return AmStart(component, wait, stop, extras)


def _parse_int(opt: str, key: str, raw: str) -> int:
    bounds = INT32 if opt == "--ei" else INT64
    if not re.fullmatch(r"-?[0-9]+", raw):
        raise ContractError(f"Error: invalid number {raw!r} for {key!r}")
    value = int(raw)
    if not bounds[0] <= value <= bounds[1]:
        raise ContractError(f"Error: number {raw!r} for {key!r} out of range")
    return value


# ---- the result file ------------------------------------------------------------------------------


def _number(value: Any, where: str, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ContractError(f"result {where} must be a finite number >= 0, got {value!r}")


def _check_run(run: Any, where: str) -> None:
    if not isinstance(run, dict):
        raise ContractError(f"result {where} must be an object")
    for key in ("e2e_ms", "text_ms", "decode_ms"):
        _number(run.get(key), f"{where}.{key}")
    steps = run.get("denoise_ms")
    if not isinstance(steps, list) or not steps:
        raise ContractError(f"result {where}.denoise_ms must be a non-empty list")
    for k, value in enumerate(steps):
        _number(value, f"{where}.denoise_ms[{k}]")


def validate_result(obj: Any, expect_run_id: str | None = None, expect_runs: int | None = None) -> dict:
    """Check a parsed result file against the contract; return it unchanged or raise ContractError."""
    if not isinstance(obj, dict):
        raise ContractError("result must be a JSON object")
    version = obj.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ContractError(f"result schema_version must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ContractError(f"result schema_version {version} is newer than this harness ({SCHEMA_VERSION})")
    if not isinstance(obj.get("run_id"), str):
        raise ContractError("result run_id must be a string")
    if expect_run_id is not None and obj["run_id"] != expect_run_id:
        raise ContractError(f"result is for run {obj['run_id']!r}, expected {expect_run_id!r}")
    status = obj.get("status")
    if status not in ("ok", "error"):
        raise ContractError(f"result status must be 'ok' or 'error', got {status!r}")
    if status == "error":
        if not isinstance(obj.get("error"), str) or not obj["error"]:
            raise ContractError("result with status 'error' must carry an error message")
        return obj
    if obj.get("error") is not None:
        raise ContractError("result with status 'ok' must have error null")
    delegate = obj.get("delegate")
    if not isinstance(delegate, dict) or not isinstance(delegate.get("requested"), str):
        raise ContractError("result delegate must be an object with a 'requested' string")
    for key in ("used", "fallback_reason"):
        if delegate.get(key) is not None and not isinstance(delegate[key], str):
            raise ContractError(f"result delegate.{key} must be a string or null")
    load = obj.get("load_ms")
    if not isinstance(load, dict) or not load:
        raise ContractError("result load_ms must be an object of signature -> ms")
    for name, value in load.items():
        _number(value, f"load_ms.{name}")
    live = obj.get("live")
    if live is not None:
        if version < 2:
            raise ContractError("result live section needs schema_version >= 2")
        check_live(live, "live")
    _number(obj.get("first_image_ms"), "first_image_ms", nullable=live is not None)  # live: null if none shown
    for key in ("warmup", "runs"):
        if not isinstance(obj.get(key), list):
            raise ContractError(f"result {key} must be a list")
        for k, run in enumerate(obj[key]):
            _check_run(run, f"{key}[{k}]")
    if not obj["runs"] and live is None:
        raise ContractError("result with status 'ok' must have at least one timed run")
    if expect_runs is not None and len(obj["runs"]) != expect_runs:
        raise ContractError(f"result has {len(obj['runs'])} timed runs, expected {expect_runs}")
    image = obj.get("image")
    if image is not None or live is None:
        if not isinstance(image, dict) or not isinstance(image.get("path"), str):
            raise ContractError("result image must be an object with a 'path'")
        if not re.fullmatch(r"[0-9a-f]{64}", str(image.get("sha256"))):
            raise ContractError("result image.sha256 must be 64 lower-case hex digits")
    thermal = obj.get("thermal")
    if not isinstance(thermal, dict):
        raise ContractError("result thermal must be an object")
    _number(thermal.get("headroom"), "thermal.headroom", nullable=True)
    status_value = thermal.get("status")
    if not isinstance(status_value, int) or isinstance(status_value, bool) or not 0 <= status_value <= 6:
        raise ContractError(f"result thermal.status must be an integer 0..6, got {status_value!r}")
    return obj


# ---- the live section (mode=live, schema_version 2) --------------------------------------------------------

LIVE_OUTCOMES = ("shown", "cancelled", "stale")  # what became of a frame (DESIGN §9.1)
EDIT_STATUSES = ("accepted", "unchanged", "refused", "held")  # held: replaced while paced to the level's fps
LIVE_LISTS = {  # list key -> keys every entry has
    "frames": ("t_s", "start_s", "prompt", "outcome", "cache_hit", "encode_ms", "denoise_ms", "decode_ms",
               "frame_ms", "latency_ms", "level"),
    "edits": ("t_s", "prompt", "status", "ttff_ms"),
    "fps": ("t_s", "fps", "level"),
    "thermal": ("t_s", "status", "headroom", "forecast", "level"),
    "decisions": ("t_s", "t_ms", "from", "to", "reason", "headroom", "status", "frame_ms"),
}
LIVE_NULLABLE = {"encode_ms", "denoise_ms", "decode_ms", "frame_ms", "latency_ms", "ttff_ms", "headroom",
                 "forecast"}


def check_live_lists(section: Any, where: str) -> None:
    """The lists of a live section or part: each an array of objects with LIVE_LISTS' keys, numbers finite."""
    for key, fields in LIVE_LISTS.items():
        items = section.get(key)
        if not isinstance(items, list):
            raise ContractError(f"result {where}.{key} must be a list")
        for k, item in enumerate(items):
            if not isinstance(item, dict):
                raise ContractError(f"result {where}.{key}[{k}] must be an object")
            missing = [f for f in fields if f not in item]
            if missing:
                raise ContractError(f"result {where}.{key}[{k}] lacks {missing}")
            for f in ("t_s", "start_s", "encode_ms", "denoise_ms", "decode_ms", "frame_ms", "latency_ms", "ttff_ms",
                      "fps", "headroom", "forecast", "t_ms"):
                if f in item:
                    _number(item[f], f"{where}.{key}[{k}].{f}", nullable=f in LIVE_NULLABLE)
        if key == "frames" and any(f["outcome"] not in LIVE_OUTCOMES for f in items):
            raise ContractError(f"result {where}.frames outcomes must be among {list(LIVE_OUTCOMES)}")
        if key == "edits" and any(e["status"] not in EDIT_STATUSES for e in items):
            raise ContractError(f"result {where}.edits statuses must be among {list(EDIT_STATUSES)}")


def check_live(live: Any, where: str = "live") -> dict:
    """Check a result's live section (DESIGN §6); return it unchanged or raise ContractError."""
    if not isinstance(live, dict):
        raise ContractError(f"result {where} must be an object")
    for key in ("duration_s", "target_fps", "edit_ms", "steps", "time_scale", "start_ms"):
        _number(live.get(key), f"{where}.{key}")
    if not isinstance(live.get("governor"), bool):
        raise ContractError(f"result {where}.governor must be true or false")
    if not isinstance(live.get("levels"), list) or not live["levels"]:
        raise ContractError(f"result {where}.levels must be a non-empty list")
    if not isinstance(live.get("prompts"), list) or not all(isinstance(p, str) for p in live["prompts"]):
        raise ContractError(f"result {where}.prompts must be a list of strings")
    check_live_lists(live, where)
    counters = live.get("counters")
    if not isinstance(counters, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                 for v in counters.values()):
        raise ContractError(f"result {where}.counters must be an object of counts")
    onset = live.get("throttle_onset")
    if onset is not None and (not isinstance(onset, dict) or "t_s" not in onset):
        raise ContractError(f"result {where}.throttle_onset must be null or an object with t_s")
    return live


def validate_part(obj: Any, expect_run_id: str, expect_part: int) -> dict:
    """Check one live part file (`part_path`): what happened since the previous part."""
    if not isinstance(obj, dict):
        raise ContractError("live part must be a JSON object")
    if obj.get("run_id") != expect_run_id or obj.get("part") != expect_part:
        raise ContractError(f"live part is {obj.get('run_id')!r} #{obj.get('part')!r}, expected "
                            f"{expect_run_id!r} #{expect_part}")
    version = obj.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 2 <= version <= SCHEMA_VERSION:
        raise ContractError(f"live part schema_version must be 2..{SCHEMA_VERSION}, got {version!r}")
    _number(obj.get("start_ms"), "part.start_ms")
    _number(obj.get("time_scale"), "part.time_scale")
    check_live_lists(obj, "part")
    return obj

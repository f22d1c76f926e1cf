"""Live mode of the simulated `BenchmarkActivity` (runner contract `mode=live`, docs/DESIGN.md §6 and §9).

The app does what the sample app's live screen does, with the SDK's own parts: a `LiveSession` (two worker
threads, real LiteRT inference) at the level a `ThermalGovernor` chooses, edits paced to the level's frame rate
(an edit within 1000 / fps ms of the last one submitted is held, the newest held edit wins; the Kotlin
`LiveController`), and a governor tick once a thermal second with PowerManager's readings: the thermal status and
a 10-second headroom forecast, extrapolated from the recent headroom the way Android's forecast is (a linear fit).
A level with other steps or another decoder reopens the session. The simulated user makes one edit every
`edit_ms`: the prompts file's lines in order, cycling.

Each graph call is stretched to the phone's time like the generate runs (`pace.py`) and heats the thermal model by
its energy (`app.py`). Two clocks: the app's (wall) seconds, in which frames are paced and timed, and thermal
seconds (the app's times the simulator's `--thermal-speedup`, `time_scale` in the result), in which the governor
ticks and decides: a 10-minute thermal session takes a minute at speedup 10, like `--sustained` runs.

Every `LIVE_PART_S` the app writes what happened since its last part (`contract.part_path`), so a harness that
loses the device keeps the frames so far; the final result carries the whole live section.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from banana_sdk.runtime.governor import Capabilities, Decision, ThermalGovernor, levels_for
from banana_sdk.runtime.live import (
    PREVIEW_SIGNATURE,
    FrameRecord,
    LiveConfig,
    LiveSession,
    Op,
    Outcome,
)
from device_tests.contract import (
    FILES_DIR,
    LIVE_PART_S,
    SCHEMA_VERSION,
    Delegate,
    RunRequest,
    part_path,
)
from device_tests.errors import ContractError
from device_tests.live_stats import fps_bins, throttle_onset, time_to_first_frame
from device_tests.sim.pace import Pace

SimApp = Any  # device_tests.sim.app.SimApp (which imports this module)

FORECAST_S = 10.0  # getThermalHeadroom(10): the governor's forecast horizon (thermal seconds)
FIT_WINDOW_S = 10.0  # the forecast's linear fit looks back this long (thermal seconds)
TICK_S = 1.0  # one governor tick per thermal second (PowerManager refreshes the headroom about once a second)
SETTLE_S = 2.0  # after the last edit, frames in flight may finish this long (app seconds)
MAX_PROMPTS_BYTES = 1 << 20


def parse_prompts(data: bytes, where: str) -> list[str]:
    """The prompts file: UTF-8, one prompt per line (blank lines skipped); ContractError when none."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ContractError(f"prompts file {where} is not UTF-8 text") from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    prompts = [line for line in lines if line.strip()]
    if not prompts:
        raise ContractError(f"prompts file {where} has no prompts")
    return prompts


class HeadroomForecast:
    """PowerManager.getThermalHeadroom(forecast) from the current headroom: a least-squares line through the
    last FIT_WINDOW_S of readings, extended `FORECAST_S` ahead (never below 0)."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()

    def __call__(self, thermal_s: float, headroom: float) -> float:
        self._samples.append((thermal_s, headroom))
        while self._samples and self._samples[0][0] < thermal_s - FIT_WINDOW_S:
            self._samples.popleft()
        n = len(self._samples)
        if n < 2 or self._samples[-1][0] - self._samples[0][0] < 1.0:
            return headroom
        mt = sum(t for t, _ in self._samples) / n
        mh = sum(h for _, h in self._samples) / n
        var = sum((t - mt) ** 2 for t, _ in self._samples)
        slope = sum((t - mt) * (h - mh) for t, h in self._samples) / var if var > 0 else 0.0
        return max(0.0, headroom + slope * FORECAST_S)


class PacedPipe:
    """The loaded `LiteRTPipeline` as `LiveSession` calls it from its two worker threads: each graph call is
    stretched to the phone's time at the current clock cap and deposits its energy in the thermal model. The
    process's CPU time is booked once, by whichever call ends next, so overlapping lanes do not count it twice."""

    def __init__(self, inner: Any, app: SimApp, cancel: threading.Event, work: dict[str, tuple[float, float]],
                 cancelled: type[Exception]) -> None:
        self._inner, self._app, self._cancel, self._work = inner, app, cancel, work
        self._cancelled = cancelled
        self._pace = Pace(app.device.profile.speed)
        self._lock = threading.Lock()
        self._cpu_mark = time.process_time()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _call(self, key: tuple, work: str | None, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._cancel.is_set():
            raise self._cancelled()
        device = self._app.device
        wall0 = time.perf_counter()
        out = fn(*args, **kwargs)
        host_s = time.perf_counter() - wall0
        with self._lock:
            cpu = time.process_time()
            spent, self._cpu_mark = cpu - self._cpu_mark, cpu
            target = self._pace.phone_s(key, host_s, device.thermal.state().freq_cap)
        device.thermal.add_cpu_time(spent / device.profile.speed)
        if work in self._work:
            device.thermal.add_work(*self._work[work])
        if target > host_s:
            time.sleep(target - host_s)
        return out

    @staticmethod
    def _shapes(*arrays: Any) -> tuple:
        return tuple(getattr(a, "shape", None) for a in arrays)

    def encode_text(self, tokens, segments):  # noqa: ANN001, ANN201
        return self._call(("encode_text", *self._shapes(tokens, segments)), "encode_text", self._inner.encode_text,
                          tokens, segments)

    def denoise(self, latent, t, context, context_mask, subjects, subject_mask):  # noqa: ANN001, ANN201
        return self._call(("denoise", *self._shapes(latent, context)), "denoise", self._inner.denoise, latent, t,
                          context, context_mask, subjects, subject_mask)

    def decode(self, latent):  # noqa: ANN001, ANN201
        return self._call(("decode", *self._shapes(latent)), "decode", self._inner.decode, latent)

    def _run(self, name: str, **inputs: Any) -> Any:  # LiveSession runs the preview decoder through it
        work = "decode_preview" if name == PREVIEW_SIGNATURE else None
        return self._call(("_run", name, *self._shapes(*inputs.values())), work, self._inner._run, name, **inputs)


class _LogTap(deque):
    """The planner's log of finished frames, telling `sink` about each one as it is appended."""

    def __init__(self, sink: Any, maxlen: int | None) -> None:
        super().__init__(maxlen=maxlen)
        self._sink = sink

    def append(self, record: FrameRecord) -> None:
        super().append(record)
        self._sink(record)


class TapSession(LiveSession):
    """A `LiveSession` that reports every finished frame (shown, cancelled or stale) with its start time and
    timings; frames still in flight when it closes are reported as cancelled."""

    def __init__(self, pipe: Any, config: LiveConfig, report: Any) -> None:
        self._report = report  # report(record, start, live_frame | None, timing | None, now)
        self._starts: dict[int, float] = {}  # frame -> perf_counter() when its first action was dispatched
        super().__init__(pipe, config)
        self._planner.log = _LogTap(self._finished, self._planner.log.maxlen)

    def _dispatch(self, actions: Any) -> None:
        now = time.perf_counter()
        for action in actions:
            if action.op is Op.ENCODE or (action.op is Op.STEP and action.step == 0):
                self._starts.setdefault(action.frame, now)
        super()._dispatch(actions)

    def _finished(self, record: FrameRecord) -> None:
        """Under the session's lock, as the planner files a finished frame."""
        latest = self._latest if record.outcome is Outcome.SHOWN else None
        if latest is not None and latest.index != record.index:
            latest = None
        timing = self._timing.get(record.index)
        self._report(record, self._starts.pop(record.index, None), latest, timing, time.perf_counter())

    def close(self) -> None:
        super().close()
        with self._cond:
            for record in sorted(self._planner.frames.values(), key=lambda r: r.index):
                record.outcome = Outcome.CANCELLED
                self._finished(record)
            self._planner.frames.clear()


class LiveRun:
    """One live session of the app: the user's edits, the pacing, the governor, the records."""

    def __init__(self, app: SimApp, req: RunRequest, pipe: PacedPipe, prompts: list[str], size: int) -> None:
        self.app, self.req, self.pipe, self.prompts = app, req, pipe, prompts
        self.index = {}  # prompt -> its first line number
        for k, p in enumerate(prompts):
            self.index.setdefault(p, k)
        caps = Capabilities.of_bundle(pipe.typed.signatures, size)
        self.levels = levels_for(caps, float(req.target_fps), req.steps, size)
        self.governor = ThermalGovernor(self.levels) if req.governor else None
        self.scale = float(app.device.options.thermal_speedup)  # thermal seconds per app second
        self.frames: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self.thermal: list[dict[str, Any]] = []
        self.decisions: list[dict[str, Any]] = []
        self.counters: dict[str, int] = {}
        self.held_replaced = 0
        self.sessions = 0
        self.last_image: Any = None
        self.last_work_ms: float | None = None
        self.first_shown: float | None = None  # perf_counter()
        self.start_ms = 0.0  # from the activity's start to the session's t = 0
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()  # the session's t = 0 (set again when it starts)
        self._held: str | None = None
        self._last_prompt: str | None = None
        self._last_submit_ms: float | None = None
        self.session = self._open(self.level)
        self._part, self._sent = 0, {"frames": 0, "edits": 0, "thermal": 0, "decisions": 0}

    # ---- the controller (Kotlin LiveController)
    @property
    def level(self) -> Any:
        return self.governor.level if self.governor else self.levels[0]

    @property
    def level_index(self) -> int:
        return self.governor.index if self.governor else 0

    def _open(self, level: Any) -> TapSession:
        self.sessions += 1
        config = LiveConfig(steps=level.steps, seed=self.req.seed, decoder=level.decoder)
        return TapSession(self.pipe, config, self._on_frame)

    def _close(self, session: TapSession) -> None:
        session.close()
        for key, value in session.stats().counters.items():
            self.counters[key] = self.counters.get(key, 0) + value

    def submit(self, prompt: str, now_ms: float) -> str:
        self._last_prompt = prompt
        frame_ms = 1000.0 / self.level.fps
        if self._last_submit_ms is not None and now_ms - self._last_submit_ms < frame_ms:
            if self._held is not None:
                self.held_replaced += 1
            self._held = prompt
            return "held"
        self._held = None
        self._last_submit_ms = now_ms
        return self.session.submit(prompt).status.value

    def pump(self, now_ms: float) -> None:
        if self._held is not None and (self._last_submit_ms is None
                                       or now_ms - self._last_submit_ms >= 1000.0 / self.level.fps):
            self.submit(self._held, now_ms)

    def tick(self, thermal_ms: int, headroom: float, status: int, now_ms: float) -> Decision | None:
        if self.governor is None:
            return None
        before = self.governor.level
        decision = self.governor.tick(thermal_ms, headroom, status, self.last_work_ms)
        if decision is None:
            return None
        after = self.governor.level
        if after.steps != before.steps or after.decoder != before.decoder:
            latest = self.session.latest()
            on_screen = latest.prompt if latest is not None else None
            self._close(self.session)
            self.session = self._open(after)
            prompt, self._held = self._held or self._last_prompt, None
            if prompt is not None and prompt != on_screen:
                self._last_submit_ms = now_ms
                self.session.submit(prompt)
        return decision

    # ---- records
    def _t(self, perf: float) -> float:
        return round(perf - self._t0, 4)

    def _on_frame(self, record: FrameRecord, start: float | None, latest: Any, timing: Any, now: float) -> None:
        encode_ms = denoise_ms = decode_ms = latency_ms = None
        if latest is not None:
            encode_ms, denoise_ms, decode_ms = latest.encode_ms, latest.denoise_ms, latest.decode_ms
            latency_ms = round(latest.latency_ms, 3)
            work = encode_ms + denoise_ms + decode_ms
            self.last_work_ms, self.last_image = work, latest.image
            if self.first_shown is None:
                self.first_shown = now
        elif timing is not None:
            encode_ms, denoise_ms = timing
        parts = [x for x in (encode_ms, denoise_ms, decode_ms) if x is not None]
        entry = {"t_s": self._t(now), "start_s": self._t(start if start is not None else now),
                 "prompt": self.index.get(record.prompt, -1), "outcome": record.outcome.value,
                 "cache_hit": record.cache_hit, "encode_ms": _r(encode_ms), "denoise_ms": _r(denoise_ms),
                 "decode_ms": _r(decode_ms), "frame_ms": _r(sum(parts)) if parts else None,
                 "latency_ms": latency_ms, "level": self.level_index}
        with self._lock:
            self.frames.append(entry)

    def _write_part(self) -> None:
        with self._lock:
            new = {key: getattr(self, key)[self._sent[key]:] for key in self._sent}
            for key, items in new.items():
                self._sent[key] += len(items)
        part = {"schema_version": SCHEMA_VERSION, "run_id": self.req.run_id, "part": self._part,
                "start_ms": self.start_ms, "time_scale": self.scale, "fps": [], **new}
        self.app.device.fs.write_bytes(part_path(self.req.run_id, self._part), json.dumps(part).encode())
        self._part += 1

    # ---- the session
    def run(self, cancel: threading.Event, cancelled: type[Exception], started: float) -> None:
        """Edits for `duration_s` from now (`started`: the activity's start, perf_counter())."""
        req, thermal, forecast = self.req, self.app.device.thermal, HeadroomForecast()
        self._t0 = time.perf_counter()
        self.start_ms = round((self._t0 - started) * 1e3, 3)
        duration, edit_s = float(req.duration_s), req.edit_ms / 1e3
        next_edit, next_tick, next_part, k = 0.0, 0.0, LIVE_PART_S, 0
        try:
            while True:
                if cancel.is_set():
                    raise cancelled()
                now = time.perf_counter() - self._t0
                if now >= duration:
                    break
                while now >= next_edit:
                    prompt = self.prompts[k % len(self.prompts)]
                    status = self.submit(prompt, now * 1e3)
                    self.edits.append({"t_s": round(now, 4), "prompt": k % len(self.prompts), "status": status,
                                       "ttff_ms": None})
                    k += 1
                    next_edit = k * edit_s
                self.pump(now * 1e3)
                if now >= next_tick:
                    self._tick(now, thermal, forecast)
                    next_tick = max(next_tick + TICK_S / self.scale, now)
                if now >= next_part:
                    self._write_part()
                    next_part += LIVE_PART_S
                due = [next_edit, next_tick, next_part, duration]
                if self._held is not None and self._last_submit_ms is not None:
                    due.append((self._last_submit_ms + 1000.0 / self.level.fps) / 1e3)
                time.sleep(min(0.005, max(0.0005, min(due) - (time.perf_counter() - self._t0))))
            try:
                self.session.wait_idle(SETTLE_S)
            except Exception:
                if cancel.is_set():
                    raise cancelled() from None
                raise
        finally:
            self._close(self.session)

    def _tick(self, now: float, thermal: Any, forecast: HeadroomForecast) -> None:
        state = thermal.state()
        thermal_s = now * self.scale
        ahead = forecast(thermal_s, state.headroom)
        decision = self.tick(int(round(thermal_s * 1e3)), ahead, state.status, now * 1e3)
        with self._lock:
            if decision is not None:
                self.decisions.append({"t_s": round(now, 4), **decision.to_dict()})
            self.thermal.append({"t_s": round(now, 4), "status": state.status, "headroom": round(state.headroom, 4),
                                 "forecast": round(ahead, 4), "level": self.level_index,
                                 "skin_c": round(state.skin_c, 2), "freq_cap": state.freq_cap})

    def section(self) -> dict[str, Any]:
        """The result's live section."""
        self.frames.sort(key=lambda f: f["t_s"])
        for edit, ttff in zip(self.edits, time_to_first_frame(self.edits, self.frames), strict=True):
            edit["ttff_ms"] = ttff
        return {
            "duration_s": self.req.duration_s, "target_fps": self.req.target_fps, "edit_ms": self.req.edit_ms,
            "governor": bool(self.req.governor), "steps": self.req.steps, "time_scale": self.scale,
            "start_ms": self.start_ms, "prompts": self.prompts, "levels": [lv.to_dict() for lv in self.levels],
            "frames": self.frames, "edits": self.edits,
            "fps": fps_bins(self.frames, self.thermal, float(self.req.duration_s)),
            "thermal": self.thermal, "decisions": self.decisions, "throttle_onset": throttle_onset(self.thermal),
            "counters": {**self.counters, "held": self.held_replaced, "sessions": self.sessions,
                         "edits": len(self.edits)},
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run_live(app: SimApp, req: RunRequest, started: float, cancel: threading.Event, cancelled: type[Exception],
             bundle_work: Callable[[Any], dict[str, tuple[float, float]]]) -> dict[str, Any]:
    """The activity in live mode: load, run the session, write its result (as `SimApp._benchmark` returns).
    `cancelled` is raised when the app is force-stopped; `bundle_work(dir)` counts the graphs' FLOPs and bytes."""
    from banana_sdk.runtime.litert import LiteRTPipeline

    device, fs = app.device, app.device.fs
    if fs.stat(req.bundle) is None or fs.stat(f"{req.bundle}/manifest.json") is None:
        raise ContractError(f"bundle not found on the device: {req.bundle}")
    assert req.prompts is not None
    if fs.stat(req.prompts) is None:
        raise ContractError(f"prompts file not found on the device: {req.prompts}")
    if fs.stat(req.prompts).size > MAX_PROMPTS_BYTES:
        raise ContractError(f"prompts file {req.prompts} is over {MAX_PROMPTS_BYTES} bytes")
    prompts = parse_prompts(fs.read(req.prompts), req.prompts)
    load0 = time.perf_counter()
    pipeline = LiteRTPipeline.load(fs.host_path(req.bundle), threads=req.threads, check_files=False)
    stretch = 1.0 / (device.profile.speed * device.thermal.state().freq_cap)
    time.sleep((time.perf_counter() - load0) * (stretch - 1.0))
    load_ms = {name: ms * stretch for name, ms in pipeline.load_ms.items()}
    count0 = time.perf_counter()
    work = bundle_work(fs.host_path(req.bundle))  # simulator work: off the phone's clock
    started += time.perf_counter() - count0
    if req.size != pipeline.size:
        raise ContractError(f"live mode runs at the bundle's size ({pipeline.size}px), asked for {req.size}px")
    live = LiveRun(app, req, PacedPipe(pipeline, app, cancel, work, cancelled), prompts, pipeline.size)
    live.run(cancel, cancelled, started)
    section = live.section()
    image = None
    if live.last_image is not None:
        png = io.BytesIO()
        live.last_image.save(png, format="PNG")
        path = f"{FILES_DIR}/images/{req.run_id}.png"
        fs.write_bytes(path, png.getvalue())
        image = {"path": path, "sha256": hashlib.sha256(png.getvalue()).hexdigest()}
    state = device.thermal.state()
    fallback = None if req.delegate in (Delegate.AUTO, Delegate.CPU) else (
        f"the simulated device has no {req.delegate.value} delegate; ran on CPU (XNNPACK)")
    return {
        "schema_version": SCHEMA_VERSION, "run_id": req.run_id, "status": "ok", "error": None,
        "delegate": {"requested": req.delegate.value, "used": Delegate.CPU.value, "fallback_reason": fallback},
        "load_ms": load_ms,
        "first_image_ms": None if live.first_shown is None else (live.first_shown - started) * 1e3,
        "warmup": [], "runs": [], "image": image,
        "thermal": {"headroom": round(state.headroom, 4), "status": state.status},
        "live": section,
    }

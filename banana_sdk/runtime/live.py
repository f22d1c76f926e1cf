"""Live mode (docs/DESIGN.md §9.1): an image that follows the prompt as it is typed.

Three parts, one job each:
- `LivePlanner`: the pure state machine of §9.1. It has no clock and no threads: drivers tell it what happened
  (`edit`, `done`) and run the `Action`s it returns. The Kotlin `com.banana.sdk.core.live` planner mirrors it.
- `simulate`: a deterministic virtual-clock driver with fixed per-call costs (tests, golden vectors).
- `LiveSession`: the real driver over a loaded banana `LiteRTPipeline`: a denoise worker thread (text encoder and
  sampler steps) and a decode worker thread, an LRU of text encodings, the initial noise computed once and
  preallocated latent buffers. A frame is bit-identical to `pipe.run(prompt, steps, seed)`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from banana_sdk.errors import BananaError, ConfigError, PromptError
from banana_sdk.imageio import to_pil
from banana_sdk.sampling.base import check_steps
from banana_sdk.sampling.noise import check_seed, gaussian
from banana_sdk.sampling.registry import get_sampler
from banana_sdk.sampling.schedule import time_grid
from banana_sdk.tokenizer import WORD_OFFSET, Tokenizer, vocabulary

if TYPE_CHECKING:
    from banana_sdk.runtime.litert import LiteRTPipeline

PREVIEW_SIGNATURE = "preview_decode"  # optional bundle signature, same I/O as `vae_decode` (§1)
NO_PREVIEW = "bundle has no preview_decode signature"  # LiveSession.decoder_fallback when PREVIEW falls back

PromptCheck = Callable[[str], object]  # raises PromptError for a prompt that cannot be encoded


class Lane(str, Enum):
    DENOISE = "denoise"  # text encoder + sampler steps (and the decoder too when overlap is off)
    DECODE = "decode"  # the decoder, overlapping the next frame's denoising


class Op(str, Enum):
    ENCODE = "encode"  # run the text encoder for the frame's prompt (a cache miss)
    STEP = "step"  # run sampler step `Action.step` (0-based)
    DECODE = "decode"  # decode the frame's clean latent and show it


class Outcome(str, Enum):
    RUNNING = "running"  # on the denoise lane
    QUEUED = "queued"  # denoised, waiting for the decode lane
    DECODING = "decoding"  # on the decode lane
    SHOWN = "shown"  # decoded and shown
    CANCELLED = "cancelled"  # a newer edit started at one of its step boundaries
    STALE = "stale"  # denoised, but a newer frame was denoised before the decode lane took it


class EditStatus(str, Enum):
    ACCEPTED = "accepted"  # pending: a frame starts now or at the next free lane / step boundary
    UNCHANGED = "unchanged"  # the stream already targets this prompt: no frame
    REFUSED = "refused"  # the tokenizer refuses it (empty, over-long): nothing changes


class Decoder(str, Enum):
    FULL = "full"  # the bundle's `vae_decode`
    PREVIEW = "preview"  # the bundle's optional `preview_decode` (cheaper, same I/O); FULL when absent


@dataclass(frozen=True)
class Action:
    op: Op  # what to run
    frame: int  # frame index (frames started so far when it started)
    prompt: str  # the frame's prompt
    lane: Lane  # the worker that runs it
    step: int = -1  # Op.STEP: 0-based step index; -1 otherwise


@dataclass(frozen=True)
class EditResult:
    status: EditStatus  # what became of the edit
    message: str | None = None  # the one-line PromptError message when refused
    actions: tuple[Action, ...] = ()  # what to run now (a frame started on a free lane)
    edit: int | None = None  # sequence number of an accepted edit (0, 1, ...); None otherwise


@dataclass
class FrameRecord:
    index: int  # frames started before this one
    prompt: str  # its prompt
    edit: int  # the accepted edit it renders
    cache_hit: bool  # True: its text encoding came from the cache (no encoder call)
    outcome: Outcome = Outcome.RUNNING  # where it is now (final: SHOWN, CANCELLED, STALE)
    steps_done: int = 0  # sampler steps completed


@dataclass
class LiveCounters:
    started: int = 0  # frames started
    shown: int = 0  # frames decoded and shown
    cache_hits: int = 0  # frames whose text encoding came from the cache
    dropped: int = 0  # pending edits replaced before they started
    unchanged: int = 0  # edits equal to the stream's target
    cancelled: int = 0  # frames cancelled at a step boundary by a newer edit
    stale: int = 0  # denoised frames skipped by the decode lane for a newer one
    refused: int = 0  # edits the tokenizer refused

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class LivePlanner:
    """Decides what runs next (docs/DESIGN.md §9.1). Not thread-safe: drivers call it under one lock.

    `edit(prompt)` for each user edit, `done(action)` when an action it returned has finished; both return the
    actions to run now, at most one in flight per lane.
    """

    def __init__(self, steps: int, overlap: bool = True, cache_size: int = 16, check: PromptCheck | None = None,
                 history: int | None = None) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"live steps must be a positive integer, got {steps!r}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigError(f"live cache_size must be an integer >= 0, got {cache_size!r}")
        self.steps = steps  # sampler steps per frame
        self.overlap = overlap  # True: decode lane separate from the denoise lane
        self.cache_size = cache_size  # distinct prompts whose encodings are kept (0: none)
        self.counters = LiveCounters()
        self.cache: OrderedDict[str, None] = OrderedDict()  # cached prompts, least recently used first
        self.frames: dict[int, FrameRecord] = {}  # every frame not finished yet, by index
        self.log: deque[FrameRecord] = deque(maxlen=history)  # finished frames, oldest first
        self.pending: tuple[str, int] | None = None  # (prompt, edit) waiting for the denoise lane
        self.current: str | None = None  # prompt of the last frame started
        self.running: int | None = None  # frame on the denoise lane
        self.decoding: int | None = None  # frame on the decode lane
        self.queued: list[int] = []  # denoised frames waiting for the decode lane, oldest first
        self._check = check
        self._edits = 0

    # --- events --------------------------------------------------------------------------------------
    def edit(self, prompt: str) -> EditResult:
        """A user edit: refused, unchanged, or accepted as the pending edit (replacing an older one)."""
        if self._check is not None:
            try:
                self._check(prompt)
            except PromptError as exc:
                self.counters.refused += 1
                return EditResult(EditStatus.REFUSED, str(exc))
        target = self.pending[0] if self.pending is not None else self.current
        if prompt == target:
            self.counters.unchanged += 1
            return EditResult(EditStatus.UNCHANGED)
        if self.pending is not None:
            self.pending = None
            self.counters.dropped += 1
            if prompt == self.current:  # back to what the last frame started renders
                self.counters.unchanged += 1
                return EditResult(EditStatus.UNCHANGED)
        edit, self._edits = self._edits, self._edits + 1
        self.pending = (prompt, edit)
        return EditResult(EditStatus.ACCEPTED, actions=tuple(self._start_if_free()), edit=edit)

    def done(self, action: Action) -> list[Action]:
        """`action` finished; returns what runs next."""
        frame = self.frames[action.frame]
        if action.op is Op.ENCODE:
            if self.cache_size:
                self.cache[frame.prompt] = None
                self.cache.move_to_end(frame.prompt)
                while len(self.cache) > self.cache_size:
                    self.cache.popitem(last=False)
            return self._boundary(frame, 0)
        if action.op is Op.STEP:
            frame.steps_done = action.step + 1
            if frame.steps_done < self.steps:
                return self._boundary(frame, frame.steps_done)
            self.running = None
            frame.outcome = Outcome.QUEUED
            self.queued.append(frame.index)
            if not self.overlap:
                return self._take_decode()
            return (self._take_decode() if self.decoding is None else []) + self._start_if_free()
        self.decoding = None
        self._finish(frame, Outcome.SHOWN)
        self.counters.shown += 1
        return self._take_decode() + self._start_if_free()

    # --- state ---------------------------------------------------------------------------------------
    @property
    def idle(self) -> bool:
        """Nothing pending, running, queued or decoding."""
        return self.pending is None and self.running is None and self.decoding is None and not self.queued

    def frame(self, index: int) -> FrameRecord | None:
        """The record of frame `index` while unfinished or still in the log."""
        if index in self.frames:
            return self.frames[index]
        return next((f for f in self.log if f.index == index), None)

    # --- internals -----------------------------------------------------------------------------------
    def _lane_free(self) -> bool:
        return self.running is None and (self.overlap or self.decoding is None)

    def _start_if_free(self) -> list[Action]:
        if self.pending is None or not self._lane_free():
            return []
        (prompt, edit), self.pending = self.pending, None
        index = self.counters.started
        hit = prompt in self.cache
        self.frames[index] = FrameRecord(index, prompt, edit, hit)
        self.counters.started += 1
        self.current, self.running = prompt, index
        if hit:
            self.cache.move_to_end(prompt)
            self.counters.cache_hits += 1
            return [Action(Op.STEP, index, prompt, Lane.DENOISE, 0)]
        return [Action(Op.ENCODE, index, prompt, Lane.DENOISE)]

    def _boundary(self, frame: FrameRecord, next_step: int) -> list[Action]:
        """A step boundary of the running frame: a pending edit cancels it and starts, else the next step runs."""
        if self.pending is not None:
            self.running = None
            self._finish(frame, Outcome.CANCELLED)
            self.counters.cancelled += 1
            return self._start_if_free()
        return [Action(Op.STEP, frame.index, frame.prompt, Lane.DENOISE, next_step)]

    def _take_decode(self) -> list[Action]:
        if not self.queued:
            return []
        *older, newest = self.queued
        self.queued = []
        for index in older:
            self._finish(self.frames[index], Outcome.STALE)
            self.counters.stale += 1
        self.decoding = newest
        frame = self.frames[newest]
        frame.outcome = Outcome.DECODING
        return [Action(Op.DECODE, newest, frame.prompt, Lane.DECODE if self.overlap else Lane.DENOISE)]

    def _finish(self, frame: FrameRecord, outcome: Outcome) -> None:
        frame.outcome = outcome
        del self.frames[frame.index]
        self.log.append(frame)


def prompt_check(context_length: int, vocab_size: int | None = None) -> PromptCheck:
    """The tokenizer's refusal rule (empty, over-long) for a model context of `context_length` tokens."""
    tokenizer = Tokenizer(context_length, vocab_size or WORD_OFFSET + len(vocabulary()))
    return tokenizer.encode


# --- the virtual-clock driver --------------------------------------------------------------------------


@dataclass(frozen=True)
class Costs:
    encode_ms: float  # one text-encoder call
    step_ms: float  # one sampler step (one denoiser call)
    decode_ms: float  # one decoder call

    def of(self, op: Op) -> float:
        return {Op.ENCODE: self.encode_ms, Op.STEP: self.step_ms, Op.DECODE: self.decode_ms}[op]


def simulate(
    scenario: Iterable[tuple[float, str]], costs: Costs, steps: int, overlap: bool = True, cache_size: int = 16,
    context_length: int = 32,
) -> dict[str, Any]:
    """Drive a `LivePlanner` on a virtual clock: edits `(t_ms, prompt)`, every call taking its fixed cost.

    At equal times completions come first (the denoise lane's before the decode lane's), then edits in input
    order. Runs until every lane is idle. Returns `{"edits": [{t_ms, prompt, status, message?}], "frames":
    [{index, prompt, start_ms, denoised_ms, shown_ms, cache_hit, steps_done, outcome}], "counters": {...}}`
    (`denoised_ms`/`shown_ms` null when the frame never got there).
    """
    if min(costs.encode_ms, costs.step_ms, costs.decode_ms) <= 0:
        raise ConfigError(f"simulated costs must be positive, got {costs}")
    edits = sorted(enumerate(scenario), key=lambda item: (item[1][0], item[0]))
    planner = LivePlanner(steps, overlap, cache_size, prompt_check(context_length))
    in_flight: dict[Lane, tuple[float, Action]] = {}  # lane -> (end time, action)
    times: dict[int, dict[str, float | None]] = {}
    edit_log: list[dict[str, Any]] = []

    def run(actions: Sequence[Action], now: float) -> None:
        for action in actions:
            assert action.lane not in in_flight, f"two actions on lane {action.lane}"
            in_flight[action.lane] = (now + costs.of(action.op), action)
            times.setdefault(action.frame, {"start_ms": now, "denoised_ms": None, "shown_ms": None})

    next_edit = 0
    while next_edit < len(edits) or in_flight:
        ends = [end for end, _ in in_flight.values()]
        now = min(ends + ([edits[next_edit][1][0]] if next_edit < len(edits) else []))
        for lane in (Lane.DENOISE, Lane.DECODE):  # completions at `now`, denoise lane first
            if lane in in_flight and in_flight[lane][0] == now:
                _, action = in_flight.pop(lane)
                if action.op is Op.STEP and action.step == steps - 1:
                    times[action.frame]["denoised_ms"] = now
                if action.op is Op.DECODE:
                    times[action.frame]["shown_ms"] = now
                run(planner.done(action), now)
        while next_edit < len(edits) and edits[next_edit][1][0] == now:
            t_ms, prompt = edits[next_edit][1]
            result = planner.edit(prompt)
            entry: dict[str, Any] = {"t_ms": t_ms, "prompt": prompt, "status": result.status.value}
            if result.message is not None:
                entry["message"] = result.message
            edit_log.append(entry)
            run(result.actions, now)
            next_edit += 1
    frames = sorted(planner.log, key=lambda f: f.index)
    return {
        "edits": edit_log,
        "frames": [{"index": f.index, "prompt": f.prompt, **times[f.index], "cache_hit": f.cache_hit,
                    "steps_done": f.steps_done, "outcome": f.outcome.value} for f in frames],
        "counters": planner.counters.as_dict(),
    }


# --- the real driver -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveConfig:
    steps: int = 1  # sampler steps per frame (within the bundle's min_steps..max_steps)
    seed: int = 0  # noise seed: same prompt, steps and seed -> the same image as `pipe.run`
    overlap: bool = True  # decode frame n on its own thread while frame n+1 denoises
    cache_size: int = 16  # distinct prompts whose text encodings are kept (LRU; 0 = none)
    decoder: Decoder = Decoder.FULL  # PREVIEW uses the bundle's `preview_decode` when it has one
    fps_window: int = 20  # shown frames that `stats().fps` averages over (>= 2)


@dataclass(frozen=True)
class SubmitResult:
    status: EditStatus  # accepted, unchanged or refused
    message: str | None = None  # the PromptError line when refused
    frame: int | None = None  # index of the frame it started at once (None: pending, or no frame)

    @property
    def accepted(self) -> bool:
        return self.status is EditStatus.ACCEPTED


@dataclass(frozen=True)
class LiveFrame:
    index: int  # frame index (frames started before it)
    prompt: str  # the prompt it renders
    image: Image.Image  # RGB, the bundle's size; pixel-equal to `pipe.run(prompt, steps, seed).image`
    encode_ms: float  # text-encoder wall time (0 on a cache hit)
    denoise_ms: float  # wall time of its sampler steps together
    decode_ms: float  # decoder wall time
    cache_hit: bool  # its text encoding came from the cache
    latency_ms: float  # from the `submit` that asked for it to the moment it was shown
    shown_at: float  # time.perf_counter() seconds when shown

    @property
    def pixels(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        return np.asarray(self.image, dtype=np.uint8)


@dataclass(frozen=True)
class LiveStats:
    counters: dict[str, int]  # LiveCounters: started, shown, cache_hits, dropped, unchanged, cancelled, ...
    fps: float | None  # shown frames per second over the last `fps_window` frames (None: under 2 shown)
    latency_ms: float | None  # mean edit-to-shown latency over the same frames
    decoder: Decoder  # the decoder in use
    decoder_fallback: str | None  # why PREVIEW runs FULL (None: as asked)


class _Buffers:
    """The latents of one session, allocated once: read-only noise, the re-noised state, a clean-estimate scratch
    and three output slots (one decoding, one queued, one being written) that the decode lane reads from."""

    SLOTS = 3

    def __init__(self, shape: tuple[int, ...], grid: np.ndarray, seed: int, renoise: bool) -> None:
        self.noise = gaussian(seed, 0, shape)  # stream 0: the initial latent of every frame
        self.noise.flags.writeable = False
        # t_{i+1} * eps_{i+1} for LCM's re-noising of steps 0..N-2 (the same float32 product add_noise forms)
        self.scaled_eps = [np.multiply(gaussian(seed, i + 1, shape), float(grid[i + 1]))
                           for i in range(len(grid) - 2)] if renoise else []
        self.state = np.empty(shape, np.float32)  # x_t between steps
        self.scratch = np.empty(shape, np.float32)  # LCM's clean estimate of a step that is not the last
        self.slots = [np.empty(shape, np.float32) for _ in range(self.SLOTS)]


class LiveSession:
    """Live generation over a loaded banana bundle: `submit` edits, read `latest()`; see docs/DESIGN.md §9.1.

    Use as a context manager or call `close()`. Thread-safe: `submit`, `latest`, `wait_for`, `stats` may be called
    from any thread.
    """

    def __init__(self, pipe: LiteRTPipeline, config: LiveConfig = LiveConfig()) -> None:
        cfg = pipe.config
        if cfg is None:
            raise ConfigError(f"live mode runs banana bundles; {pipe.bundle} is a {pipe.kind!r} bundle")
        self.pipe, self.config = pipe, config
        sampler = get_sampler(cfg.sampler.kind)
        if sampler.name not in _UPDATES:
            raise ConfigError(f"live mode steps the {sorted(_UPDATES)} samplers, not {sampler.name!r}")
        check_steps(sampler, config.steps)
        low, high = pipe.steps_range
        if not low <= config.steps <= high:
            raise ConfigError(f"this bundle takes {low}-{high} steps (its manifest's sampler.min_steps/max_steps), "
                              f"got {config.steps}")
        try:
            check_seed(config.seed)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if isinstance(config.fps_window, bool) or not isinstance(config.fps_window, int) or config.fps_window < 2:
            raise ConfigError(f"fps_window must be an integer >= 2, got {config.fps_window!r}")
        self.decoder, self.decoder_fallback = config.decoder, None
        if config.decoder is Decoder.PREVIEW and not pipe.has_preview:
            self.decoder, self.decoder_fallback = Decoder.FULL, NO_PREVIEW
        self._tokenizer = Tokenizer(cfg.tokenizer.context_length, cfg.tokenizer.vocab_size)
        self._grid = time_grid(config.steps, cfg.sampler.shift)
        if not np.array_equal(sampler.timesteps(config.steps, cfg.sampler.shift), self._grid[:-1]):
            raise ConfigError(f"sampler {sampler.name!r} does not step on the rectified-flow time grid")
        self._update = _UPDATES[sampler.name]
        shape = (1, cfg.vae.latent_channels, pipe.size // cfg.downsample, pipe.size // cfg.downsample)
        self._buf = _Buffers(shape, self._grid, config.seed, renoise=sampler.name == "lcm")
        slots = cfg.denoiser.max_subjects
        self._subjects = np.zeros((1, slots, cfg.text.width), np.float32)  # no subjects (§7.1)
        self._subject_mask = np.zeros((1, slots), np.float32)
        self._scale = cfg.sampler.guidance_scale
        self._uncond = None  # the empty prompt's encoding, once, when the bundle guides
        if self._scale != 1.0:
            unc = self._tokenizer.unconditional()
            self._uncond = pipe.encode_text(unc.ids[None], unc.segments[None].astype(np.float32))
        # shared state, guarded by _cond's lock
        self._cond = threading.Condition()
        self._planner = LivePlanner(config.steps, config.overlap, config.cache_size, self._tokenizer.encode,
                                    history=64)
        self._contexts: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # the planner's cached prompts
        self._active: tuple[int, np.ndarray, np.ndarray] | None = None  # (frame, context, mask) denoising
        self._slot_of: dict[int, int] = {}  # frame -> output slot of its clean latent
        self._timing: dict[int, list[float]] = {}  # frame -> [encode_ms, denoise_ms]
        self._edit_time: dict[int, float] = {}  # accepted edit -> perf_counter() at submit
        self._latest: LiveFrame | None = None
        self._recent: deque[LiveFrame] = deque(maxlen=config.fps_window)
        self._error: BaseException | None = None
        self._closed = False
        lanes = [Lane.DENOISE, Lane.DECODE] if config.overlap else [Lane.DENOISE]
        self._queues: dict[Lane, queue.SimpleQueue[Action | None]] = {lane: queue.SimpleQueue() for lane in lanes}
        self._threads = [threading.Thread(target=self._worker, args=(lane,), name=f"banana-live-{lane.value}",
                                          daemon=True) for lane in lanes]
        for thread in self._threads:
            thread.start()

    # --- public API ----------------------------------------------------------------------------------
    def submit(self, prompt: str) -> SubmitResult:
        """An edit of the prompt; returns at once (the frame renders on the worker threads)."""
        now = time.perf_counter()
        with self._cond:
            self._raise_if_failed()
            if self._closed:
                raise ConfigError("this live session is closed")
            result = self._planner.edit(prompt)
            if result.edit is not None:
                self._edit_time[result.edit] = now
            self._dispatch(result.actions)
            started = next((a.frame for a in result.actions), None)
            return SubmitResult(result.status, result.message, started)

    def latest(self) -> LiveFrame | None:
        """The frame on screen (None before the first one is shown)."""
        with self._cond:
            return self._latest

    def wait_for(self, index: int, timeout_s: float) -> LiveFrame | None:
        """Block until a frame with index >= `index` is shown and return the latest one; None on timeout.

        A frame that is cancelled or stale never shows, but a newer one always does, so this returns."""
        with self._cond:
            self._cond.wait_for(lambda: self._error is not None or self._closed or (
                self._latest is not None and self._latest.index >= index), timeout_s)
            self._raise_if_failed()
            latest = self._latest
            return latest if latest is not None and latest.index >= index else None

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing is pending, running or decoding; False on timeout."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._error is not None or self._closed or self._planner.idle,
                                     timeout_s)
            self._raise_if_failed()
            return bool(ok) and self._planner.idle

    def stats(self) -> LiveStats:
        with self._cond:
            recent = list(self._recent)
            counters = self._planner.counters.as_dict()
        fps = latency = None
        if len(recent) >= 2 and recent[-1].shown_at > recent[0].shown_at:
            fps = (len(recent) - 1) / (recent[-1].shown_at - recent[0].shown_at)
        if recent:
            latency = sum(f.latency_ms for f in recent) / len(recent)
        return LiveStats(counters, fps, latency, self.decoder, self.decoder_fallback)

    def close(self) -> None:
        """Stop the worker threads (each finishes the call it is in); idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            for q in self._queues.values():
                q.put(None)
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- workers -------------------------------------------------------------------------------------
    def _dispatch(self, actions: Iterable[Action]) -> None:
        """Hand actions to their lanes (under the lock); a last step gets a free output slot first."""
        if self._closed:
            return
        for action in actions:
            if action.op is Op.STEP and action.step == self.config.steps - 1:
                busy = {self._slot_of[f] for f in (self._planner.decoding, *self._planner.queued[-1:])
                        if f is not None}
                self._slot_of[action.frame] = next(s for s in range(_Buffers.SLOTS) if s not in busy)
            self._queues[action.lane].put(action)

    def _worker(self, lane: Lane) -> None:
        while True:
            action = self._queues[lane].get()
            if action is None:
                return
            start = time.perf_counter()
            try:
                image = self._execute(action)
            except Exception as exc:  # surfaced to the caller by submit / wait_for / wait_idle
                with self._cond:
                    self._error = exc
                    self._cond.notify_all()
                return
            elapsed_ms = (time.perf_counter() - start) * 1e3
            with self._cond:
                self._record(action, elapsed_ms, image)
                actions = self._planner.done(action)
                if action.op is Op.ENCODE:  # keep exactly the planner's cached encodings
                    for prompt in [p for p in self._contexts if p not in self._planner.cache]:
                        del self._contexts[prompt]
                self._dispatch(actions)
                self._cond.notify_all()

    def _execute(self, action: Action) -> Image.Image | None:
        """Run one action on this worker's lane (no lock held); a decode returns the frame's image."""
        if action.op is Op.ENCODE:
            enc = self._tokenizer.encode(action.prompt)
            context, mask = self.pipe.encode_text(enc.ids[None], enc.segments[None].astype(np.float32))
            self._active = (action.frame, context, mask)
            if self.config.cache_size:
                self._contexts[action.prompt] = (context, mask)
            return None
        if action.op is Op.STEP:
            self._step(action)
            return None
        latent = self._buf.slots[self._slot_of[action.frame]]
        if self.decoder is Decoder.PREVIEW:
            image = self.pipe.decode_preview(latent)  # same I/O as vae_decode (§1)
        else:
            image = self.pipe.decode(latent)
        return to_pil(image)

    def _step(self, action: Action) -> None:
        """One sampler step of the running frame, exactly as the registry sampler computes it, into the buffers."""
        i, buf = action.step, self._buf
        if self._active is None or self._active[0] != action.frame:  # a cache hit: its first step
            self._active = (action.frame, *self._contexts[action.prompt])
        _, context, mask = self._active
        x = buf.noise if i == 0 else buf.state
        t = float(self._grid[i])
        v = self.pipe.denoise(x, t, context, mask, self._subjects, self._subject_mask)
        if self._uncond is not None:  # v_uncond + scale * (v - v_uncond), as generate_with
            v_uncond = self.pipe.denoise(x, t, *self._uncond, self._subjects, self._subject_mask)
            np.subtract(v, v_uncond, out=v)
            np.multiply(v, self._scale, out=v)
            np.add(v_uncond, v, out=v)
        last = i == self.config.steps - 1
        out = buf.slots[self._slot_of[action.frame]] if last else buf.scratch
        self._update(buf, i, x, v, t, float(self._grid[i + 1]), out, last)

    def _record(self, action: Action, elapsed_ms: float, image: Image.Image | None) -> None:
        """Book a finished action (under the lock): timings, and a decoded frame becomes the latest."""
        if action.op is Op.ENCODE:
            self._timing[action.frame] = [elapsed_ms, 0.0]
            return
        if action.op is Op.STEP:
            self._timing.setdefault(action.frame, [0.0, 0.0])[1] += elapsed_ms
            return
        assert image is not None
        record = self._planner.frame(action.frame)
        assert record is not None
        shown_at = time.perf_counter()
        submitted = self._edit_time.pop(record.edit, shown_at)
        encode_ms, denoise_ms = self._timing.get(action.frame, [0.0, 0.0])
        for table in (self._timing, self._slot_of):  # this frame and the cancelled / stale ones before it
            for index in [f for f in table if f <= action.frame]:
                del table[index]
        for edit in [e for e in self._edit_time if e < record.edit]:  # edits that never showed
            del self._edit_time[edit]
        frame = LiveFrame(action.frame, action.prompt, image, encode_ms, denoise_ms, elapsed_ms, record.cache_hit,
                          (shown_at - submitted) * 1e3, shown_at)
        self._latest = frame
        self._recent.append(frame)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            if isinstance(self._error, BananaError):
                raise self._error
            raise RuntimeError(f"live session failed: {self._error!r}") from self._error


def _lcm_update(buf: _Buffers, i: int, x: np.ndarray, v: np.ndarray, t: float, t_next: float, out: np.ndarray,
                last: bool) -> None:
    """LCM: x0 = x - t v into `out`; unless last, state = (1 - t_next) x0 + t_next eps_{i+1} (float32 throughout,
    the operations of `predict_x0` and `add_noise`)."""
    np.multiply(v, t, out=v)
    np.subtract(x, v, out=out)
    if not last:
        np.multiply(out, 1.0 - t_next, out=buf.state)
        np.add(buf.state, buf.scaled_eps[i], out=buf.state)


def _euler_update(buf: _Buffers, i: int, x: np.ndarray, v: np.ndarray, t: float, t_next: float, out: np.ndarray,
                  last: bool) -> None:
    """Euler: x + (t_next - t) v into `out` (the state, or the output slot on the last step)."""
    np.multiply(v, t_next - t, out=v)
    np.add(x, v, out=out if last else buf.state)


_UPDATES = {"lcm": _lcm_update, "euler": _euler_update}  # sampler name -> in-place step update

"""The thermal governor of live mode (docs/DESIGN.md §9.2): a pure policy, no clock reads, no device calls.

The app feeds `ThermalGovernor.tick` the time, PowerManager's thermal headroom forecast and status and the last
frame's duration; it answers with a `Decision` when the live stream should move one level down (cooler) or up.
The ladder spends a small frame-rate budget first (x0.95 of the target: the sustained-fps goal allows 10 %), then the
preview decoder, one step and half the size; after a step down it waits `settle_ms` for the cooler level to show in
the 10-second forecast before it takes another.
The Kotlin `com.banana.sdk.core.live` governor mirrors it (golden vectors: tests/golden/android/governor.json).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from banana_sdk.errors import ConfigError
from banana_sdk.runtime.live import PREVIEW_SIGNATURE, Decoder

THERMAL_STATUS_NONE = 0  # PowerManager.THERMAL_STATUS_NONE
THERMAL_STATUS_SEVERE = 3  # PowerManager.THERMAL_STATUS_SEVERE


class Degradation(str, Enum):
    FPS_95 = "fps_x0.95"  # target fps x 0.95 of L0's (the default ladder's only frame-rate level)
    FPS_90 = "fps_x0.9"  # target fps x 0.9 of L0's
    FPS_75 = "fps_x0.75"  # target fps x 0.75 of L0's
    FPS_50 = "fps_x0.5"  # target fps x 0.5 of L0's
    PREVIEW = "preview_decoder"  # the bundle's preview decoder (impossible without one)
    ONE_STEP = "steps_1"  # one sampler step (impossible when the session already takes 1)
    HALF_SIZE = "half_size"  # half the image side (impossible for a bundle of one size)


FPS_PERCENT = {Degradation.FPS_95: 95, Degradation.FPS_90: 90, Degradation.FPS_75: 75, Degradation.FPS_50: 50}
DEFAULT_LEVELS = (Degradation.FPS_95, Degradation.PREVIEW, Degradation.ONE_STEP, Degradation.HALF_SIZE)


class Reason(str, Enum):
    HOT = "hot"  # headroom >= down_at held for hold_ms (and settle_ms after a step down)
    SEVERE = "severe"  # thermal status >= severe_status
    COOL = "cool"  # headroom <= up_at (or, headroom unknown, status NONE) held for cool_ms


@dataclass(frozen=True)
class Level:
    fps: float  # target frames per second (the ADPF session's target frame time is 1000 / fps ms)
    decoder: Decoder  # full or preview decoder
    steps: int  # sampler steps per frame
    size: int  # image side in pixels

    def to_dict(self) -> dict[str, Any]:
        return {"fps": self.fps, "decoder": self.decoder.value, "steps": self.steps, "size": self.size}


@dataclass(frozen=True)
class Capabilities:
    preview_decoder: bool  # the bundle has a `preview_decode` signature
    sizes: tuple[int, ...]  # image sides the bundle can generate

    @classmethod
    def of_bundle(cls, signatures: Any, size: int) -> Capabilities:
        """From a bundle's signature names and its (one) image size."""
        return cls(PREVIEW_SIGNATURE in signatures, (size,))


@dataclass(frozen=True)
class GovernorConfig:
    down_at: float = 0.9  # headroom at or above which the stream is hot
    up_at: float = 0.8  # headroom at or below which the stream is cool
    hold_ms: int = 2000  # hot this long before stepping down; also the least time between two changes
    settle_ms: int = 20000  # after a step down, the next hot step down waits this long from it
    cool_ms: int = 10000  # cool this long before stepping up
    severe_status: int = THERMAL_STATUS_SEVERE  # thermal status at or above which it steps down at once
    levels: tuple[Degradation, ...] = DEFAULT_LEVELS  # degradations in the order they are applied

    def __post_init__(self) -> None:
        if not 0 < self.up_at < self.down_at:
            raise ConfigError(f"governor thresholds need 0 < up_at < down_at, got {self.up_at} and {self.down_at}")
        if min(self.hold_ms, self.settle_ms, self.cool_ms) < 0:
            raise ConfigError(f"governor hold_ms, settle_ms and cool_ms must be >= 0, got {self.hold_ms}, "
                              f"{self.settle_ms} and {self.cool_ms}")


@dataclass(frozen=True)
class Decision:
    t_ms: int  # tick time
    from_level: int  # index into the levels before
    to_level: int  # index after (from_level + 1 = cooler)
    reason: Reason  # which rule fired
    headroom: float | None  # the tick's headroom (None: unknown)
    status: int  # the tick's thermal status
    frame_ms: float | None  # the tick's last frame duration (reported, not a rule input)

    def to_dict(self) -> dict[str, Any]:
        return {"t_ms": self.t_ms, "from": self.from_level, "to": self.to_level, "reason": self.reason.value,
                "headroom": self.headroom, "status": self.status, "frame_ms": self.frame_ms}


def levels_for(caps: Capabilities, target_fps: float, steps: int, size: int,
               config: GovernorConfig = GovernorConfig()) -> list[Level]:
    """L0 (`target_fps`, full decoder, `steps`, `size`), then each degradation of `config.levels` on top of the
    previous level, skipping those impossible for the bundle."""
    if not (math.isfinite(target_fps) and target_fps > 0):
        raise ConfigError(f"target fps must be positive, got {target_fps}")
    levels = [Level(float(target_fps), Decoder.FULL, steps, size)]
    for degradation in config.levels:
        last = levels[-1]
        if degradation in FPS_PERCENT:
            levels.append(replace(last, fps=float(target_fps) * FPS_PERCENT[degradation] / 100))
        elif degradation is Degradation.PREVIEW and caps.preview_decoder:
            levels.append(replace(last, decoder=Decoder.PREVIEW))
        elif degradation is Degradation.ONE_STEP and last.steps > 1:
            levels.append(replace(last, steps=1))
        elif degradation is Degradation.HALF_SIZE and last.size // 2 in caps.sizes:
            levels.append(replace(last, size=last.size // 2))
    return levels


class ThermalGovernor:
    """Moves one level at a time through `levels` (index 0 = full quality) by the rules of §9.2: down on SEVERE at
    once, or hot (forecast >= down_at) held hold_ms and, after a step down, settle_ms since it; up when cool
    (forecast <= up_at) held cool_ms; never two changes within hold_ms."""

    def __init__(self, levels: list[Level], config: GovernorConfig = GovernorConfig()) -> None:
        if not levels:
            raise ConfigError("the governor needs at least one level")
        self.levels = levels
        self.config = config
        self.index = 0  # current level
        self.decisions: list[Decision] = []  # every change so far
        self._hot_since: int | None = None  # first tick of the current hot run
        self._cool_since: int | None = None  # first tick of the current cool run
        self._changed_at: int | None = None  # time of the last change
        self._last_down = False  # the last change was a step down

    @property
    def level(self) -> Level:
        return self.levels[self.index]

    @property
    def target_frame_ms(self) -> float:
        """The ADPF PerformanceHintManager target for the current level."""
        return 1000.0 / self.level.fps

    def tick(self, now_ms: int, headroom: float | None, status: int, frame_ms: float | None = None
             ) -> Decision | None:
        """One probe: `headroom` from getThermalHeadroom (None or NaN: unknown), `status` from
        getCurrentThermalStatus. Returns the change it makes, if any."""
        cfg = self.config
        if headroom is not None and not math.isfinite(headroom):
            headroom = None
        hot = headroom is not None and headroom >= cfg.down_at
        cool = headroom <= cfg.up_at if headroom is not None else status <= THERMAL_STATUS_NONE
        severe = status >= cfg.severe_status
        self._hot_since = (now_ms if self._hot_since is None else self._hot_since) if hot else None
        self._cool_since = (now_ms if self._cool_since is None else self._cool_since) if cool and not severe else None
        since = None if self._changed_at is None else now_ms - self._changed_at
        if since is not None and since < cfg.hold_ms:
            return None  # never two changes within hold_ms
        settled = since is None or not self._last_down or since >= cfg.settle_ms
        reason, to = None, self.index
        if severe and self.index + 1 < len(self.levels):
            reason, to = Reason.SEVERE, self.index + 1
        elif (hot and settled and self.index + 1 < len(self.levels)
              and self._held(self._hot_since, now_ms) >= cfg.hold_ms):
            reason, to = Reason.HOT, self.index + 1
        elif cool and not severe and self.index > 0 and self._held(self._cool_since, now_ms) >= cfg.cool_ms:
            reason, to = Reason.COOL, self.index - 1
        if reason is None:
            return None
        decision = Decision(now_ms, self.index, to, reason, headroom, status, frame_ms)
        self._last_down = to > self.index
        self.index, self._changed_at = to, now_ms
        self.decisions.append(decision)
        return decision

    def _held(self, since: int | None, now_ms: int) -> int:
        """How long a condition has held, counted from the last change at the latest."""
        assert since is not None
        start = since if self._changed_at is None else max(since, self._changed_at)
        return now_ms - start

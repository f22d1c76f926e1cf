"""The simulated app's trace sections: what `android.os.Trace.beginSection/endSection` write on a phone.

Each generation of the runner is one `banana:run K` section (`banana:warmup K` for an untimed one) holding its
stages: the app marks `banana:text encode` (from the generation's start to the first denoise call),
`banana:denoise step K` (from the end of the previous step to the sampler's step callback K, the span the result's
`denoise_ms[K-1]` measures) and `banana:decode` (the decode call), as atrace markers `B|pid|name` / `E|pid` on the
device's boot clock. They reach a running `perfetto` session only if its config traces the app (`atrace_apps`).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from device_tests.sim import trace_recorder
from device_tests.trace_config import DECODE_SECTION, TEXT_SECTION, denoise_section, run_section

if TYPE_CHECKING:
    from device_tests.sim.device import SimDevice


class Stage(str, Enum):
    IDLE = "idle"  # between generations
    TEXT = "text"  # text encode section open
    DENOISE = "denoise"  # a denoise step section open
    DECODE = "decode"  # decode section open


class StageMarks:
    """Opens and closes one generation's sections as the backend's graph calls and the sampler's steps happen."""

    def __init__(self, device: SimDevice, pid: int, per_step: bool = True) -> None:
        self.device = device
        self.pid = pid  # the app's process id (the tgid in the markers)
        self.per_step = per_step  # False: the sampler reports no steps (upscaled runs): no denoise sections
        self.stage = Stage.IDLE

    def _begin(self, name: str) -> None:
        trace_recorder.mark(self.device, self.pid, f"B|{self.pid}|{name}")

    def _end(self) -> None:
        trace_recorder.mark(self.device, self.pid, f"E|{self.pid}")

    def begin_run(self, index: int, warmup: bool) -> None:
        """A generation of the runner starts: `banana:run K` (timed) or `banana:warmup K`, 1-based."""
        self._close()
        self._begin(run_section(index, warmup))

    def end_run(self) -> None:
        self._close()
        self._end()

    def begin_generation(self) -> None:
        self._close()
        self._begin(TEXT_SECTION)
        self.stage = Stage.TEXT

    def before_call(self, call: str) -> None:
        """A backend graph call (`encode_text`, `denoise`, `decode`) is about to run."""
        if call == "denoise" and self.stage is Stage.TEXT:
            self._end()
            self.stage = Stage.IDLE
            if self.per_step:
                self._begin(denoise_section(1))
                self.stage = Stage.DENOISE
        elif call == "decode":
            self._close()
            self._begin(DECODE_SECTION)
            self.stage = Stage.DECODE

    def after_call(self, call: str) -> None:
        """A backend graph call returned (its phone time included)."""
        if call == "decode" and self.stage is Stage.DECODE:
            self._close()

    def step_done(self, i: int, n: int) -> None:
        """The sampler's step callback: step i (0-based) of n finished."""
        if self.stage is Stage.DENOISE:
            self._end()
            self.stage = Stage.IDLE
            if i + 1 < n:
                self._begin(denoise_section(i + 2))
                self.stage = Stage.DENOISE

    def _close(self) -> None:
        if self.stage is not Stage.IDLE:
            self._end()
            self.stage = Stage.IDLE

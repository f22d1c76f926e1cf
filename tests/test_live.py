"""Live mode (docs/DESIGN.md §9): the planner case by case, the virtual-clock driver against the golden vectors,
LiveSession on a real tiny bundle, and every rule of the thermal governor on a fake clock."""

from __future__ import annotations

import json
import math
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from banana_sdk.errors import ConfigError
from banana_sdk.runtime.governor import (
    Capabilities,
    Degradation,
    GovernorConfig,
    Level,
    Reason,
    ThermalGovernor,
    levels_for,
)
from banana_sdk.runtime.litert import LiteRTPipeline
from banana_sdk.runtime.live import (
    NO_PREVIEW,
    Action,
    Costs,
    Decoder,
    EditStatus,
    Lane,
    LiveConfig,
    LivePlanner,
    LiveSession,
    Op,
    Outcome,
    prompt_check,
    simulate,
)

GOLDEN = Path(__file__).resolve().parent / "golden" / "android"
COSTS = Costs(encode_ms=10, step_ms=20, decode_ms=15)
RED, BLUE, GREEN = "a red circle top left", "a blue square", "a green triangle"


def _frames(log: dict) -> list[tuple]:
    return [(f["index"], f["prompt"], f["outcome"], f["cache_hit"], f["steps_done"]) for f in log["frames"]]


# --- the planner -------------------------------------------------------------------------------------------


def test_an_edit_on_an_idle_stream_starts_a_frame_at_once() -> None:
    planner = LivePlanner(steps=2, overlap=True, cache_size=4, check=prompt_check(32))
    result = planner.edit(RED)
    assert result.status is EditStatus.ACCEPTED and result.edit == 0
    assert result.actions == (Action(Op.ENCODE, 0, RED, Lane.DENOISE),)
    assert planner.done(result.actions[0]) == [Action(Op.STEP, 0, RED, Lane.DENOISE, 0)]
    assert planner.done(Action(Op.STEP, 0, RED, Lane.DENOISE, 0)) == [Action(Op.STEP, 0, RED, Lane.DENOISE, 1)]
    decode = planner.done(Action(Op.STEP, 0, RED, Lane.DENOISE, 1))
    assert decode == [Action(Op.DECODE, 0, RED, Lane.DECODE)]
    assert planner.frame(0).outcome is Outcome.DECODING and not planner.idle
    assert planner.done(decode[0]) == [] and planner.idle
    assert planner.frame(0).outcome is Outcome.SHOWN
    assert planner.counters.as_dict() == dict(started=1, shown=1, cache_hits=0, dropped=0, unchanged=0,
                                              cancelled=0, stale=0, refused=0)


def test_a_returning_prompt_is_a_cache_hit_and_the_cache_is_lru() -> None:
    edits = [(0, RED), (100, BLUE), (200, GREEN), (300, BLUE), (400, RED), (500, GREEN)]
    log = simulate(edits, COSTS, steps=1, cache_size=2)
    # cache of 2: BLUE comes back while cached; RED was evicted by GREEN; GREEN was evicted by RED
    assert [f[3] for f in _frames(log)] == [False, False, False, True, False, False]
    assert log["counters"]["cache_hits"] == 1
    hit = log["frames"][3]
    assert hit["denoised_ms"] - hit["start_ms"] == COSTS.step_ms  # no encoder call
    assert [f[3] for f in _frames(simulate(edits, COSTS, steps=1, cache_size=0))] == [False] * 6


def test_unchanged_edits_give_no_frame() -> None:
    log = simulate([(0, RED), (5, RED), (300, RED)], COSTS, steps=2)
    assert [e["status"] for e in log["edits"]] == ["accepted", "unchanged", "unchanged"]
    assert len(log["frames"]) == 1 and log["counters"]["unchanged"] == 2
    # equal to the pending edit: unchanged; back to the running frame's prompt: the pending edit is dropped
    log = simulate([(0, RED), (1, BLUE), (2, BLUE), (3, RED)], COSTS, steps=2)
    assert [e["status"] for e in log["edits"]] == ["accepted", "accepted", "unchanged", "unchanged"]
    assert _frames(log) == [(0, RED, "shown", False, 2)]
    assert log["counters"]["dropped"] == 1 and log["counters"]["unchanged"] == 2


def test_a_burst_of_edits_renders_only_the_newest() -> None:
    log = simulate([(0, RED), (1, "a"), (2, "a b"), (3, BLUE), (4, GREEN)], COSTS, steps=4)
    assert _frames(log) == [(0, RED, "cancelled", False, 0), (1, GREEN, "shown", False, 4)]
    assert log["frames"][1]["start_ms"] == COSTS.encode_ms  # at frame 0's first boundary (after its encode)
    assert log["counters"] == dict(started=2, shown=1, cache_hits=0, dropped=3, unchanged=0, cancelled=1,
                                   stale=0, refused=0)


def test_an_edit_mid_step_cancels_at_the_next_step_boundary() -> None:
    log = simulate([(0, RED), (35, BLUE)], COSTS, steps=4)  # frame 0: encode 0-10, step 0 10-30, step 1 30-50
    assert _frames(log) == [(0, RED, "cancelled", False, 2), (1, BLUE, "shown", False, 4)]
    assert log["frames"][1]["start_ms"] == 50
    # one step: no boundary after the encoder's, so the running frame finishes and the edit follows
    log = simulate([(0, RED), (15, BLUE)], COSTS, steps=1)
    assert _frames(log) == [(0, RED, "shown", False, 1), (1, BLUE, "shown", False, 1)]
    assert log["frames"][1]["start_ms"] == 30


def test_overlap_starts_the_next_frame_while_the_last_one_decodes() -> None:
    edits = [(0, RED), (40, BLUE), (80, GREEN)]
    on, off = (simulate(edits, COSTS, steps=1, overlap=overlap) for overlap in (True, False))
    assert [f["start_ms"] for f in on["frames"]] == [0, 40, 80]
    assert [f["start_ms"] for f in off["frames"]] == [0, 45, 90]  # one lane: waits for each decode
    assert [f["shown_ms"] for f in on["frames"]] == [45, 85, 125]


def test_a_slow_decoder_skips_stale_frames_for_the_newest() -> None:
    slow = Costs(encode_ms=5, step_ms=10, decode_ms=45)
    log = simulate([(0, RED), (16, BLUE), (32, GREEN)], slow, steps=1)
    assert _frames(log) == [(0, RED, "shown", False, 1), (1, BLUE, "stale", False, 1),
                            (2, GREEN, "shown", False, 1)]
    assert log["counters"]["stale"] == 1 and log["frames"][1]["denoised_ms"] == 31
    # equal times: the denoise lane's completion first, so GREEN (denoised at 60, as the decoder frees) makes the
    # queued BLUE stale
    log = simulate([(0, RED), (16, BLUE), (45, GREEN)], slow, steps=1)
    assert [f[2] for f in _frames(log)] == ["shown", "stale", "shown"]


def test_refused_prompts_change_nothing() -> None:
    planner = LivePlanner(steps=1, check=prompt_check(32))
    started = planner.edit(RED).actions
    assert planner.edit(BLUE).status is EditStatus.ACCEPTED  # pending behind the running frame
    empty, long = planner.edit(""), planner.edit("a red circle " * 11)
    assert empty.status is EditStatus.REFUSED and empty.message == "prompt is empty; describe the image to generate"
    assert long.status is EditStatus.REFUSED and "context holds 32" in long.message
    assert planner.pending == (BLUE, 1) and planner.counters.refused == 2
    assert planner.done(started[0])[0] == Action(Op.ENCODE, 1, BLUE, Lane.DENOISE)  # the pending edit still wins


def test_planner_and_simulate_refuse_bad_settings() -> None:
    with pytest.raises(ConfigError, match="steps"):
        LivePlanner(steps=0)
    with pytest.raises(ConfigError, match="cache_size"):
        LivePlanner(steps=1, cache_size=-1)
    with pytest.raises(ConfigError, match="positive"):
        simulate([(0, RED)], Costs(0, 1, 1), steps=1)


def test_simulate_reproduces_the_golden_vectors() -> None:
    data = json.loads((GOLDEN / "live.json").read_text())
    names = {c["name"] for c in data["cases"]}
    assert {"cache_hit_on_return", "unchanged_edits", "burst_dropped", "edit_mid_denoise", "overlap",
            "stale_decode", "refused_prompts"} <= names
    for case in data["cases"]:
        costs = Costs(**case["costs"])
        edits = [(e["t_ms"], e["prompt"]) for e in case["edits"]]
        log = simulate(edits, costs, case["steps"], case["overlap"], case["cache_size"], case["context_length"])
        assert log == case["expected"], (case["name"], case["steps"], case["overlap"])
    counters = [c["expected"]["counters"] for c in data["cases"]]
    for key in ("cache_hits", "dropped", "unchanged", "cancelled", "stale", "refused"):
        assert any(c[key] for c in counters), f"no golden case exercises {key}"


# --- LiveSession on a real bundle --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipe(bundle_factory) -> LiteRTPipeline:  # noqa: ANN001
    return LiteRTPipeline.load(bundle_factory("int4"), threads=1)


class _Counting:
    """Wraps a pipeline method: counts calls and can hold the first call until released."""

    def __init__(self, fn, hold: bool = False) -> None:  # noqa: ANN001
        self.fn, self.calls = fn, 0
        self.entered, self.release = threading.Event(), threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN204
        self.calls += 1
        self.entered.set()
        assert self.release.wait(30)
        return self.fn(*args, **kwargs)


@pytest.mark.parametrize(("steps", "overlap"), [(1, True), (4, True), (2, False)])
def test_a_live_frame_equals_pipe_run(pipe: LiteRTPipeline, steps: int, overlap: bool) -> None:
    with LiveSession(pipe, LiveConfig(steps=steps, seed=7, overlap=overlap)) as session:
        for k, prompt in enumerate((RED, BLUE, RED)):
            session.submit(prompt)
            frame = session.wait_for(k, timeout_s=30)
            assert frame is not None and frame.prompt == prompt and frame.index == k
            expected = pipe.run(prompt, steps=steps, seed=7).image
            assert np.array_equal(frame.pixels, np.asarray(expected))
            assert frame.image.size == (pipe.size, pipe.size)
        assert frame.cache_hit and frame.encode_ms == 0.0 and frame.denoise_ms > 0 and frame.decode_ms > 0
        assert frame.latency_ms >= frame.decode_ms


@pytest.mark.parametrize(("sampler", "guidance", "steps"), [("lcm", 2.5, 2), ("euler", 1.0, 3)])
def test_guided_and_euler_frames_equal_pipe_run(pipe: LiteRTPipeline, monkeypatch, sampler: str,  # noqa: ANN001
                                                guidance: float, steps: int) -> None:
    cfg = pipe.config
    monkeypatch.setattr(pipe, "config", replace(cfg, sampler=replace(cfg.sampler, kind=sampler,
                                                                     guidance_scale=guidance)))
    with LiveSession(pipe, LiveConfig(steps=steps, seed=3)) as session:
        session.submit(BLUE)
        frame = session.wait_for(0, timeout_s=30)
    assert np.array_equal(frame.pixels, np.asarray(pipe.run(BLUE, steps=steps, seed=3).image))


def test_unchanged_prompt_and_cache_hits_skip_the_encoder(pipe: LiteRTPipeline, monkeypatch) -> None:  # noqa: ANN001
    encoder = _Counting(pipe.encode_text)
    monkeypatch.setattr(pipe, "encode_text", encoder)
    with LiveSession(pipe, LiveConfig(cache_size=2)) as session:
        for prompt in (RED, BLUE, RED):
            assert session.submit(prompt).accepted
            assert session.wait_idle(30)
        assert encoder.calls == 2  # RED came back from the cache
        unchanged = session.submit(RED)
        assert unchanged.status is EditStatus.UNCHANGED and unchanged.frame is None
        assert session.wait_idle(30) and session.latest().index == 2
        assert session.stats().counters == dict(started=3, shown=3, cache_hits=1, dropped=0, unchanged=1,
                                                cancelled=0, stale=0, refused=0)


def test_a_burst_of_submits_renders_only_the_newest(pipe: LiteRTPipeline, monkeypatch) -> None:  # noqa: ANN001
    encoder = _Counting(pipe.encode_text, hold=True)
    monkeypatch.setattr(pipe, "encode_text", encoder)
    with LiveSession(pipe, LiveConfig(steps=2)) as session:
        first = session.submit(RED)
        assert first.frame == 0 and encoder.entered.wait(30)  # frame 0 is inside its encoder call
        for prompt in ("a", "a b", BLUE, GREEN):
            assert session.submit(prompt).frame is None  # pending
        encoder.release.set()
        assert session.wait_idle(30)
        frame = session.latest()
        assert frame.index == 1 and frame.prompt == GREEN
        assert encoder.calls == 2  # RED's (cancelled after it) and GREEN's
        counters = session.stats().counters
        assert (counters["started"], counters["shown"], counters["dropped"], counters["cancelled"]) == (2, 1, 3, 1)
        assert np.array_equal(frame.pixels, np.asarray(pipe.run(GREEN, steps=2).image))


def test_a_refused_prompt_keeps_the_last_frame(pipe: LiteRTPipeline) -> None:
    with LiveSession(pipe) as session:
        session.submit(RED)
        shown = session.wait_for(0, 30)
        for prompt in ("", "  ", "a red circle " * 11):
            result = session.submit(prompt)
            assert result.status is EditStatus.REFUSED and result.message and "\n" not in result.message
        assert session.wait_idle(30) and session.latest() is shown
        assert session.stats().counters["refused"] == 3 and session.stats().counters["started"] == 1


def test_close_joins_the_workers_and_is_idempotent(pipe: LiteRTPipeline) -> None:
    session = LiveSession(pipe, LiveConfig(overlap=True))
    threads = list(session._threads)
    assert all(t.is_alive() for t in threads) and len(threads) == 2
    session.submit(RED)
    session.close()
    session.close()
    assert not any(t.is_alive() for t in threads)
    with pytest.raises(ConfigError, match="closed"):
        session.submit(BLUE)
    with LiveSession(pipe, LiveConfig(overlap=False)) as single:
        assert len(single._threads) == 1  # one lane, one worker


def test_preview_falls_back_to_the_full_decoder(pipe: LiteRTPipeline) -> None:
    with LiveSession(pipe, LiveConfig(decoder=Decoder.PREVIEW)) as session:
        stats = session.stats()
        assert (stats.decoder, stats.decoder_fallback) == (Decoder.FULL, NO_PREVIEW)
        assert session.submit(RED).accepted and session.wait_for(0, 30) is not None
        assert stats.fps is None
    with LiveSession(pipe) as session:
        assert session.decoder_fallback is None


def test_live_session_refuses_bad_configs(pipe: LiteRTPipeline) -> None:
    with pytest.raises(ConfigError, match="takes 1-8 steps"):
        LiveSession(pipe, LiveConfig(steps=9))
    with pytest.raises(ConfigError, match="seed"):
        LiveSession(pipe, LiveConfig(seed=-1))
    with pytest.raises(ConfigError, match="fps_window"):
        LiveSession(pipe, LiveConfig(fps_window=1))


def test_stats_report_fps_over_the_last_frames(pipe: LiteRTPipeline) -> None:
    with LiveSession(pipe, LiveConfig(fps_window=3)) as session:
        for k, prompt in enumerate((RED, BLUE, GREEN, "a pip top left")):
            session.submit(prompt)
            session.wait_for(k, 30)
        stats = session.stats()
        assert stats.fps is not None and stats.fps > 0 and stats.latency_ms > 0


# --- the thermal governor ----------------------------------------------------------------------------------

CAPS = Capabilities(preview_decoder=True, sizes=(64,))


def _governor(steps: int = 4, caps: Capabilities = CAPS) -> ThermalGovernor:
    return ThermalGovernor(levels_for(caps, 8.0, steps, 64))


def test_levels_skip_what_the_bundle_cannot_do() -> None:
    full = levels_for(Capabilities(True, (64, 32)), 10.0, 4, 64)
    assert full == [Level(10.0, Decoder.FULL, 4, 64), Level(9.5, Decoder.FULL, 4, 64),
                    Level(9.5, Decoder.PREVIEW, 4, 64), Level(9.5, Decoder.PREVIEW, 1, 64),
                    Level(9.5, Decoder.PREVIEW, 1, 32)]
    bare = levels_for(Capabilities(False, (64,)), 10.0, 1, 64)
    assert [lv.fps for lv in bare] == [10.0, 9.5] and {lv.decoder for lv in bare} == {Decoder.FULL}
    assert [lv.fps for lv in levels_for(CAPS, 24.0, 1, 64)] == [24.0, 22.8, 22.8]  # percent of L0, exact
    assert Capabilities.of_bundle({"denoise": 0, "preview_decode": 0}, 64) == Capabilities(True, (64,))
    order = GovernorConfig(levels=(Degradation.ONE_STEP, Degradation.FPS_50))
    assert levels_for(CAPS, 8.0, 4, 64, order) == [Level(8.0, Decoder.FULL, 4, 64), Level(8.0, Decoder.FULL, 1, 64),
                                                   Level(4.0, Decoder.FULL, 1, 64)]
    finer = GovernorConfig(levels=(Degradation.FPS_95, Degradation.FPS_90, Degradation.FPS_75, Degradation.PREVIEW))
    assert [(lv.fps, lv.decoder) for lv in levels_for(CAPS, 8.0, 1, 64, finer)] == [
        (8.0, Decoder.FULL), (7.6, Decoder.FULL), (7.2, Decoder.FULL), (6.0, Decoder.FULL), (6.0, Decoder.PREVIEW)]
    with pytest.raises(ConfigError):
        levels_for(CAPS, 0.0, 4, 64)
    with pytest.raises(ConfigError):
        GovernorConfig(down_at=0.6, up_at=0.65)
    with pytest.raises(ConfigError):
        GovernorConfig(settle_ms=-1)


def test_hot_must_hold_for_hold_ms_and_a_break_restarts_it() -> None:
    gov = _governor()
    assert gov.tick(0, 0.95, 0) is None and gov.tick(1999, 0.95, 0) is None
    assert gov.tick(2100, 0.89, 0) is None  # cooler than down_at: the hot run ends
    assert gov.tick(2500, 0.9, 0) is None and gov.tick(4499, 0.95, 0) is None
    decision = gov.tick(4500, 0.95, 1, frame_ms=120.0)
    assert decision is not None and (decision.from_level, decision.to_level, decision.reason) == (0, 1, Reason.HOT)
    assert decision.to_dict() == {"t_ms": 4500, "from": 0, "to": 1, "reason": "hot", "headroom": 0.95, "status": 1,
                                  "frame_ms": 120.0}
    assert gov.level.fps == 7.6 and gov.target_frame_ms == pytest.approx(1000 / 7.6)


def test_after_a_step_down_the_next_waits_settle_ms() -> None:
    gov = _governor()  # 8 fps, 7.6 fps, preview, 1 step
    gov.tick(0, 0.95, 0)
    assert gov.tick(2000, 0.95, 0).to_level == 1
    for t in range(3000, 22000, 1000):  # still hot: the forecast needs settle_ms to show the cooler level
        assert gov.tick(t, 0.95, 0) is None
    assert gov.tick(22000, 0.95, 0).to_level == 2
    assert gov.tick(41999, 0.95, 0) is None and gov.tick(42000, 0.95, 0).to_level == 3
    assert gov.tick(80000, 0.99, 2) is None and gov.index == 3  # the bottom
    # a hot run that starts late in the settle time still needs hold_ms of its own
    gov = _governor()
    gov.tick(0, 0.95, 0)
    gov.tick(2000, 0.95, 0)
    assert gov.tick(21000, 0.85, 0) is None and gov.tick(21500, 0.95, 0) is None
    assert gov.tick(23000, 0.95, 0) is None and gov.tick(23500, 0.95, 0).to_level == 2
    # after a step up, hot steps down again after hold_ms only
    gov = _governor()
    gov.tick(0, 0.95, 0)
    gov.tick(2000, 0.95, 0)
    for t in range(3000, 13001, 1000):
        gov.tick(t, 0.7, 0)
    assert gov.index == 0 and gov.decisions[-1].reason is Reason.COOL
    assert gov.tick(14000, 0.95, 0) is None and gov.tick(16000, 0.95, 0).to_level == 1


def test_severe_status_steps_down_at_once_but_never_twice_within_hold_ms() -> None:
    gov = _governor()
    assert gov.tick(0, 0.2, 3).reason is Reason.SEVERE
    assert gov.tick(1999, 0.2, 4) is None
    assert gov.tick(2000, None, 3).to_level == 2  # SEVERE does not wait settle_ms
    for t in range(4000, 20000, 2000):
        gov.tick(t, 0.2, 3)
    assert gov.index == len(gov.levels) - 1  # the bottom: no further decision
    assert gov.tick(30000, 0.99, 6) is None
    assert gov.tick(40000, 0.1, 3) is None and gov.index == len(gov.levels) - 1  # no cooling while severe


def test_cooling_needs_cool_ms_below_up_at_with_hysteresis() -> None:
    gov = _governor()
    gov.tick(0, 0.95, 0)
    gov.tick(2000, 0.95, 0)
    assert gov.index == 1
    for t in range(3000, 30000, 1000):  # between up_at and down_at: no change either way
        assert gov.tick(t, 0.85, 0) is None
    assert gov.tick(30000, 0.8, 0) is None and gov.tick(39999, 0.75, 0) is None
    decision = gov.tick(40000, 0.75, 0)
    assert decision.reason is Reason.COOL and decision.to_level == 0
    assert gov.tick(60000, 0.1, 0) is None  # already at L0


def test_unknown_headroom_leaves_it_to_the_status() -> None:
    gov = _governor()
    for t in range(0, 10000, 1000):
        assert gov.tick(t, None, 2) is None and gov.tick(t + 500, math.nan, 2) is None
    assert gov.tick(10000, math.nan, 3).headroom is None
    assert gov.tick(12000, None, 1) is None and gov.tick(30000, None, 1) is None  # LIGHT: not cool
    assert gov.tick(31000, None, 0) is None and gov.tick(41000, None, 0).reason is Reason.COOL


def test_governor_reproduces_the_golden_vectors() -> None:
    data = json.loads((GOLDEN / "governor.json").read_text())
    config = GovernorConfig()
    assert data["config"] == {"down_at": config.down_at, "up_at": config.up_at, "hold_ms": config.hold_ms,
                              "settle_ms": config.settle_ms, "cool_ms": config.cool_ms,
                              "severe_status": config.severe_status, "levels": [d.value for d in config.levels]}
    for case in data["cases"]:
        caps = Capabilities(case["preview_decoder"], tuple(case["sizes"]))
        gov = ThermalGovernor(levels_for(caps, case["target_fps"], case["steps"], case["size"]), config)
        assert [lv.to_dict() for lv in gov.levels] == case["levels"]
        after = []
        for tick in case["ticks"]:
            gov.tick(tick["t_ms"], tick["headroom"], tick["status"], tick["frame_ms"])
            after.append(gov.index)
        assert after == case["level_after_tick"], case["name"]
        assert [d.to_dict() for d in gov.decisions] == case["decisions"], case["name"]

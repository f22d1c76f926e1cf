"""`banana profile`: push a bundle, run it on one or many devices, record latency, memory and thermals.

Per device: describe -> check ABI/app -> push (hash-skipped, verified) -> cool-down gate -> cpufreq
time_in_state -> telemetry at 1 Hz in the background -> launches of the runner (one, or back to back for
`--sustained`; or one live session for `--live`, its parts pulled while it runs) -> time_in_state again. Every
step is a journal event (appended and fsynced at once) and the run JSON is written atomically at the end, complete
or not; devices run in parallel threads. Ctrl-C stops every device's app, keeps what was measured and writes it.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from banana_sdk.bundle.reader import load_manifest
from banana_sdk.errors import BananaError, ConfigError
from banana_sdk.fileio import atomic_write_json
from device_tests import benchmark_tool
from device_tests.adb import Adb
from device_tests.contract import Delegate, RunRequest
from device_tests.cooldown import cool_down
from device_tests.devices import check_runnable, describe, resolve_serials
from device_tests.errors import DeviceError
from device_tests.journal import Journal, journal_path
from device_tests.live import PartReader, check_live_bundle, push_prompts
from device_tests.push import bundle_files, manifest_summary, push_bundle, push_peels, push_subjects
from device_tests.run_file import build_run_json
from device_tests.run_record import DeviceRun
from device_tests.runner import launch
from device_tests.telemetry import TelemetrySampler, read_time_in_state
from device_tests.thermal_source import probe_source
from device_tests.trace_device import check_perfetto, recording, run_json_of, spec_for, trace_file

DEFAULT_PROMPT = "a small red circle top left and a large blue square bottom right"


@dataclass(frozen=True)
class ProfileSettings:
    prompt: str = DEFAULT_PROMPT  # what to draw (reaches the app as one literal argument)
    steps: int | None = None  # denoising steps; None: the bundle's default
    seed: int = 0  # noise seed
    delegate: Delegate = Delegate.AUTO  # accelerator asked for
    threads: int = 4  # CPU threads for XNNPACK
    warmup: int = 1  # untimed runs before the timed ones (first launch only)
    runs: int = 5  # timed runs per launch
    sustained_s: float | None = None  # run back-to-back launches for this long; None: one launch
    cooldown_c: float | None = 38.0  # wait until skin/battery <= this before measuring; None: no gate
    cooldown_timeout_s: float = 300.0  # give up waiting (and say so) after this long
    telemetry_interval_s: float | None = 1.0  # sampling period; None: no telemetry (overhead baseline)
    throttle_rise_pct: float = 10.0  # latency rise that counts as throttling (with status >= LIGHT)
    timeout_s: float = 600.0  # per launch
    benchmark_model: Path | None = None  # run LiteRT's benchmark_model binary instead of the app
    peels: tuple[tuple[Path, float], ...] = ()  # (peel file, weight): pushed beside the bundle, applied by the app
    subjects: tuple[Path, ...] = ()  # subject files (`banana subject add`): pushed, bound to the prompt's names
    size: int | None = None  # output side in px; None: the bundle's; above it through its tile signature (4096)
    live_s: float | None = None  # one live session this long (the app's seconds); None: timed generations
    target_fps: int = 30  # live: the governor's L0 frame rate; frames over 1000 / target_fps ms are over budget
    prompts: tuple[str, ...] = ()  # live: the edits, in order, cycled (empty: device_tests.live.DEMO_PROMPTS)
    prompts_file: str | None = None  # live: where `prompts` came from (None: the built-in list)
    edit_ms: int | None = None  # live: ms between two edits; None: 1000 / target_fps (one per frame at L0)
    governor: bool = True  # live: the thermal governor applies its levels (False: L0 throughout)
    trace: bool = False  # record a Perfetto trace on the device during the measurement (device_tests/trace_device.py)

    @property
    def live_prompts(self) -> tuple[str, ...]:
        from device_tests.live import DEMO_PROMPTS

        return self.prompts or DEMO_PROMPTS

    @property
    def live_edit_ms(self) -> int:
        return self.edit_ms if self.edit_ms is not None else max(1, round(1000 / self.target_fps))

    def check(self) -> None:
        """ConfigError for out-of-range values, before any device work."""
        from banana_sdk.requests import check_finite, check_seed_value

        for option, value in (("--cooldown", self.cooldown_c), ("--cooldown-timeout", self.cooldown_timeout_s),
                              ("--timeout", self.timeout_s), ("--throttle-rise", self.throttle_rise_pct),
                              ("--sustained", self.sustained_s), ("telemetry interval", self.telemetry_interval_s),
                              ("--live", self.live_s)):
            check_finite(option, value)
        check_seed_value(self.seed)
        positive = {"threads": self.threads, "runs": self.runs, "timeout_s": self.timeout_s,
                    "cooldown_timeout_s": self.cooldown_timeout_s}
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.sustained_s is not None and not (0 < self.sustained_s < 24 * 3600):
            raise ConfigError(f"sustained duration must be between 0 and 24 h, got {self.sustained_s} s")
        if self.telemetry_interval_s is not None and not self.telemetry_interval_s >= 0.1:
            raise ConfigError(f"telemetry interval must be >= 0.1 s, got {self.telemetry_interval_s}")
        if self.throttle_rise_pct <= 0 or not math.isfinite(self.throttle_rise_pct):
            raise ConfigError(f"throttle rise must be a positive percentage, got {self.throttle_rise_pct}")
        if self.benchmark_model is not None and not Path(self.benchmark_model).is_file():
            raise ConfigError(f"--benchmark-model {self.benchmark_model} is not a file")
        if self.benchmark_model is not None:
            app_only = [flag for flag, given in (("--peel", self.peels), ("--subject", self.subjects),
                                                 ("--size", self.size is not None)) if given]
            if app_only:
                raise ConfigError(f"{app_only[0]} runs through the sample app; it does not go with --benchmark-model")
        if self.live_s is not None:
            self._check_live()

    def _check_live(self) -> None:
        from device_tests.contract import MAX_TARGET_FPS

        if not 1 <= self.live_s <= 24 * 3600:
            raise ConfigError(f"--live duration must be between 1 s and 24 h, got {self.live_s} s")
        clash = [flag for flag, given in (("--sustained", self.sustained_s is not None),
                                          ("--benchmark-model", self.benchmark_model is not None),
                                          ("--peel", bool(self.peels)), ("--subject", bool(self.subjects)),
                                          ("--size", self.size is not None)) if given]
        if clash:
            raise ConfigError(f"--live does not go with {clash[0]} (a live session runs the bundle as it is, at its "
                              "size)")
        if isinstance(self.target_fps, bool) or not isinstance(self.target_fps, int) or not (
                1 <= self.target_fps <= MAX_TARGET_FPS):
            raise ConfigError(f"--target-fps must be an integer in 1..{MAX_TARGET_FPS}, got {self.target_fps!r}")
        if self.edit_ms is not None and (isinstance(self.edit_ms, bool) or not isinstance(self.edit_ms, int)
                                         or not 1 <= self.edit_ms <= 3_600_000):
            raise ConfigError(f"--edit-ms must be an integer in 1..3600000, got {self.edit_ms!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["delegate"] = self.delegate.value
        out["benchmark_model"] = str(self.benchmark_model) if self.benchmark_model else None
        out["peels"] = [[str(p), w] for p, w in self.peels]
        out["subjects"] = [str(p) for p in self.subjects]
        return out


def parse_duration(text: str) -> float:
    """`10m`, `90s`, `1h`, `45` (seconds) -> seconds; ConfigError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600}
    raw = text.strip().lower()
    scale = units.get(raw[-1:], None)
    number = raw[:-1] if scale else raw
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise ConfigError(f"duration {text!r} is not like 90s, 10m or 1h") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"duration {text!r} must be positive")
    return value


def check_app_request(bundle: Path, manifest: dict[str, Any], settings: ProfileSettings) -> None:
    """What the app would refuse, refused on the host before any device work: peels it cannot apply (PeelError:
    base, rank, layers, values), a size the bundle cannot make (below its base, or a side its tile chain does
    not reach: UpscaleError lists the reachable ones) and subjects that are unreadable, too many or not named in
    the prompt (SubjectError)."""
    if settings.peels:
        from banana_sdk.peels.config import check_weight
        from banana_sdk.peels.device import load_for_bundle
        from banana_sdk.peels.diffusers_lora import load_for_diffusers_bundle

        diffusers = (manifest.get("model") or {}).get("kind") == "diffusers"
        for path, weight in settings.peels:
            check_weight(weight, str(path))
            (load_for_diffusers_bundle if diffusers else load_for_bundle)(path, manifest)
    base = int(manifest["image"]["size"])
    if settings.size is not None and settings.size != base:
        if settings.size < base:
            raise ConfigError(f"--size {settings.size}: this bundle makes {base} px images (and larger ones through "
                              "its tile signature), not smaller ones")
        from banana_sdk.runtime.tiles import bundle_tiles
        from banana_sdk.upscale.chain import plan_chain

        if "upscale_tile" not in manifest["signatures"]:
            raise ConfigError(f"--size {settings.size}: this bundle has no upscale_tile signature to go above "
                              f"{base} px; convert with --upscaler DIR")
        tiles, scale = bundle_tiles(manifest, bundle)
        plan_chain(base, settings.size, tiles, scale)
    if settings.subjects:
        from banana_sdk.config import ModelConfig
        from banana_sdk.subjects.binding import bind, encoder_model
        from banana_sdk.subjects.store import read_subject

        config = ModelConfig.from_dict(manifest["model"]["config"])
        bind(settings.prompt, [read_subject(p) for p in settings.subjects], config.denoiser.max_subjects,
             config.text.width, encoder_model(config, manifest["model"].get("weights_sha256")))


def profile_device(adb: Adb, serial: str, bundle: Path, settings: ProfileSettings, journal: Journal,
                   manifest: dict[str, Any], stop: threading.Event | None = None) -> DeviceRun:
    """Profile one device; errors end its run (marked incomplete, everything measured kept)."""
    run = DeviceRun(serial)

    def emit(kind: str, **data: Any) -> None:
        run.apply(journal.write(kind, serial, **data))

    emit("plan", sustained_s=settings.sustained_s, live_s=settings.live_s)
    device = adb.device(serial)
    restarts = adb.server_restarts
    sampler = None
    try:
        info = describe(device)
        emit("device", info=info.to_dict())
        check_runnable(info, need_app=settings.benchmark_model is None)
        pushed = push_bundle(device, bundle)
        emit("push", push=pushed.to_dict())
        peels = push_peels(device, settings.peels)
        subjects = push_subjects(device, settings.subjects)
        prompts = push_prompts(device, settings.live_prompts) if settings.live_s is not None else None
        source = probe_source(device)  # one thermal source for the gate, the samples and the report
        emit("thermal_source", source=source.to_dict())
        if settings.cooldown_c is not None:
            gate = cool_down(device, settings.cooldown_c, settings.cooldown_timeout_s, source=source)
            emit("cooldown", cooldown=gate.to_dict())
            if not gate.reached:
                emit("note", text=gate.message)
        emit("time_in_state", when="before", policies=read_time_in_state(device))
        t0 = time.monotonic()
        if settings.telemetry_interval_s:
            sampler = TelemetrySampler(device, lambda s: emit("telemetry", sample=s.to_dict()),
                                       settings.telemetry_interval_s, t0, source).start()
        with recording(device, spec_for(settings.trace, settings.timeout_s, settings.sustained_s, settings.live_s),
                       trace_file(run_json_of(journal.path), serial), emit):
            if settings.benchmark_model is not None:
                _run_benchmark_model(device, info.abilist, pushed.remote_dir, manifest, settings, emit)
            elif prompts is not None:
                _run_live(device, pushed.remote_dir, manifest, settings, emit, t0, prompts, stop)
            else:
                _run_app(device, pushed.remote_dir, manifest, settings, emit, t0, peels, subjects, stop)
        if sampler:
            sampler.stop()
            sampler = None
        emit("time_in_state", when="after", policies=read_time_in_state(device))
        emit("end", complete=True)
    except BananaError as exc:
        if sampler:
            sampler.stop()
        emit("error", message=str(exc), type=type(exc).__name__)
        emit("end", complete=False)
    finally:
        if adb.server_restarts > restarts:
            emit("note", text=f"the adb server was restarted {adb.server_restarts - restarts} time(s) during the run")
    return run


def _run_app(device, remote_dir: str, manifest: dict, settings: ProfileSettings, emit, t0: float,  # noqa: ANN001
             peels: str | None = None, subjects: str | None = None, stop: threading.Event | None = None) -> None:
    tag = f"r{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    steps = settings.steps or int(manifest["sampler"]["default_steps"])
    size = settings.size or int(manifest["image"]["size"])
    deadline = t0 + (settings.sustained_s or 0.0)
    k = 0
    while True:
        request = RunRequest(bundle=remote_dir, prompt=settings.prompt, steps=steps, size=size, seed=settings.seed,
                             delegate=settings.delegate, threads=settings.threads,
                             warmup=settings.warmup if k == 0 else 0, runs=settings.runs, run_id=f"{tag}-{k}",
                             peels=peels, subjects=subjects)
        done = launch(device, request, settings.timeout_s, stop=stop)
        emit("launch_result", result=done.result, started_s=round(done.started_t - t0, 4),
             finished_s=round(done.finished_t - t0, 4))
        k += 1
        if settings.sustained_s is None or time.monotonic() >= deadline:
            return


def live_steps(settings: ProfileSettings, manifest: Any) -> int:
    """Steps of a live run: --steps, else the fewest the bundle takes (live mode's 1 for ours)."""
    if settings.steps is not None:
        return settings.steps
    data = manifest.to_dict() if hasattr(manifest, "to_dict") else manifest
    return int(data["sampler"].get("min_steps") or 1)


def _run_live(device, remote_dir: str, manifest: dict, settings: ProfileSettings, emit, t0: float,  # noqa: ANN001
              prompts: str, stop: threading.Event | None) -> None:
    """One live session; its parts are journalled as they arrive (the frames so far survive a lost device)."""
    run_id = f"l{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    request = RunRequest(bundle=remote_dir, prompt=settings.live_prompts[0], steps=live_steps(settings, manifest),
                         size=int(manifest["image"]["size"]), seed=settings.seed, delegate=settings.delegate,
                         threads=settings.threads, warmup=0, runs=1, run_id=run_id, mode="live",
                         duration_s=math.ceil(settings.live_s), target_fps=settings.target_fps, prompts=prompts,
                         edit_ms=settings.live_edit_ms, governor=int(settings.governor))
    emit("live_plan", plan={"duration_s": request.duration_s, "target_fps": request.target_fps,
                            "edit_ms": request.edit_ms, "governor": settings.governor, "steps": request.steps,
                            "prompts": list(settings.live_prompts)})
    started = time.monotonic()
    reader = PartReader(device, run_id, lambda part: emit("live_part", part=part,
                                                         started_s=round(started - t0, 4)))
    done = launch(device, request, request.duration_s + settings.timeout_s, on_poll=reader.poll, stop=stop)
    reader.finish()
    emit("launch_result", result=done.result, started_s=round(done.started_t - t0, 4),
         finished_s=round(done.finished_t - t0, 4))


def _run_benchmark_model(device, abilist, remote_dir: str, manifest: dict, settings: ProfileSettings, emit) -> None:  # noqa: ANN001
    benchmark_tool.push_binary(device, Path(settings.benchmark_model), tuple(abilist))
    for name, sig in sorted(manifest["signatures"].items()):
        result = benchmark_tool.run_graph(device, f"{remote_dir}/{sig['file']}", name, settings.threads,
                                          settings.warmup, settings.runs, settings.delegate is Delegate.GPU,
                                          settings.timeout_s)
        emit("benchmark_model", result=result)


def profile(bundle: Path, out: Path, serial: str | None, settings: ProfileSettings, adb: Adb | None = None,
            command: list[str] | None = None, overwrite: bool = True) -> dict[str, Any]:
    """Profile `bundle` on the selected devices, write `out` (RUN.json) and return its content.

    Everything the host can check (settings, bundle files, prompt, steps, seed, peels, subjects, size, and with
    `overwrite` False an existing `out`: the CLI without --force) is refused before any adb call.
    Raises DeviceError after writing `out` when any device failed (its partial results are in `out`).
    """
    from banana_sdk.fileio import refuse_overwrite
    from banana_sdk.requests import check_bundle_inputs

    settings.check()
    refuse_overwrite(out, overwrite)
    bundle = Path(bundle)
    bundle_files(bundle)  # BundleError before touching any device
    manifest = load_manifest(bundle)
    if settings.live_s is not None:  # every edit the app will make, tokenized here
        check_live_bundle(bundle, manifest, settings.live_prompts, live_steps(settings, manifest), settings.seed)
    elif settings.benchmark_model is None:  # the app tokenizes the prompt and steps the sampler; benchmark_model not
        check_bundle_inputs(bundle, manifest, settings.prompt, settings.steps, settings.seed)
    check_app_request(bundle, manifest, settings)
    adb = adb or Adb()
    serials = resolve_serials(adb, serial)
    for s in serials if settings.trace else ():  # every device can trace, or nothing runs (Android < 9 cannot)
        check_perfetto(adb.device(s))
    out = Path(out)
    jpath = journal_path(out)
    if jpath.exists():
        os.replace(jpath, jpath.with_name(jpath.stem + ".prev.jsonl"))
    journal = Journal(jpath)
    started = time.time()
    info = manifest_summary(bundle)
    journal.write("start", bundle=info, settings=settings.to_dict(), serials=serials, command=command)
    runs: dict[str, DeviceRun] = {}
    crashes: list[BaseException] = []
    stop = threading.Event()  # Ctrl-C: every device stops its app, keeps what it measured, and RUN.json is written

    finished = {s: threading.Event() for s in serials}

    def work(s: str) -> None:
        try:
            runs[s] = profile_device(adb, s, bundle, settings, journal, manifest, stop)
        except BaseException as exc:  # a bug: keep the other devices' results, re-raise below
            crashes.append(exc)
            runs[s] = DeviceRun(s, error=f"internal error: {type(exc).__name__}: {exc}")
        finally:
            finished[s].set()

    threads = [threading.Thread(target=work, args=(s,), name=f"profile-{s}") for s in serials]
    for t in threads:
        t.start()
    interrupted = False
    try:  # events, not Thread.join: a join interrupted by Ctrl-C marks a running thread as stopped (bpo-45274)
        for event in finished.values():
            event.wait()
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        for event in finished.values():
            event.wait()
    for t in threads:
        t.join()
    journal.close()
    result = build_run_json([runs[s] for s in serials], info, settings.to_dict(), started, command)
    atomic_write_json(out, result)
    if interrupted:
        raise KeyboardInterrupt(f"interrupted; what was measured is in {out}")
    if crashes:
        raise crashes[0]
    failed = [d for d in result["devices"] if not d["complete"]]
    if failed:
        details = "; ".join(f"{d['serial']}: {' '.join(str(d['error']).split())} ({len(d['runs'])} timed runs kept)"
                            for d in failed)
        raise DeviceError(f"{len(failed)} of {len(serials)} device(s) did not finish; run marked incomplete in {out}: "
                          f"{details}")
    return result

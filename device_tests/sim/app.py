"""The simulated sample app: `BenchmarkActivity` executing the runner contract with real LiteRT inference.

`am start` launches a run in a thread (the app's "process"); the run loads the bundle from the device
filesystem, generates with the bundle's graphs on this host's CPU, and writes the contract's result file
atomically. The phone's slowness is simulated by sleeping after each graph call until it has taken the
phone's time: the call's cost (the fastest host time seen for that graph and input shapes, host work
since the previous call included) over `speed * freq_cap`, where `speed` is the profile's speed and
`freq_cap` the thermal model's clock cap (`pace.py`). Each call heats the thermal model by its energy: its real
CPU time (the busy cores) plus the FLOPs and the bytes the called graph moves, counted once per bundle on its
graphs (`banana_sdk.bundle.traffic`; the count is simulator work, kept off the phone's clock).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import itertools
import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from banana_sdk.bundle.traffic import bundle_traffic
from banana_sdk.errors import BananaError
from device_tests.contract import (
    ACTIVITY,
    COMPONENT,
    FILES_DIR,
    PACKAGE,
    SCHEMA_VERSION,
    AmStart,
    Delegate,
    RunRequest,
    parse_peels,
    result_path,
)
from device_tests.errors import ContractError
from device_tests.sim.app_trace import StageMarks
from device_tests.sim.pace import Pace

if TYPE_CHECKING:
    from device_tests.sim.device import SimDevice

MAX_GAP_S = 0.5  # host work between graph calls longer than this is not part of a generation
LAUNCH_MS = 40  # simulated activity launch time reported by `am start -W`
_pids = itertools.count(5100)
CALL_SIGNATURES = {"encode_text": "text_encoder", "denoise": "denoise", "decode": "vae_decode",  # call -> graph
                   "decode_preview": "preview_decode"}
_WORK: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}  # (manifest path, mtime) -> its bundle's work
_WORK_LOCK = threading.Lock()


def bundle_work(bundle_dir: Any) -> dict[str, tuple[float, float]]:
    """{backend call name: (FLOPs, bytes moved)} of a bundle's graphs, counted once per bundle version."""
    manifest = Path(bundle_dir) / "manifest.json"
    key = (str(manifest.resolve()), manifest.stat().st_mtime_ns)
    with _WORK_LOCK:
        if key not in _WORK:
            traffic = bundle_traffic(bundle_dir)
            _WORK[key] = {call: (traffic[sig].flops, traffic[sig].total_bytes)
                          for call, sig in CALL_SIGNATURES.items() if sig in traffic}
        return _WORK[key]


class Cancelled(Exception):
    """The app was force-stopped mid-run."""


class ThrottledBackend:
    """A `Backend` that runs the bundle's graphs and stretches each call to the simulated phone's speed."""

    def __init__(self, inner: Any, device: SimDevice, cancel: threading.Event,
                 work: dict[str, tuple[float, float]] | None = None, marks: StageMarks | None = None) -> None:
        self.inner = inner
        self.marks = marks  # the app's trace sections (device_tests/sim/app_trace.py); None: not marked
        self.work = work or {}  # backend call name -> (FLOPs, bytes moved) of its graph
        self.config = getattr(inner, "config", None)  # None for a diffusers bundle (its generator has its own)
        self.size = getattr(inner, "size", None)  # the converted size (base_size_of reads it)
        self.device = device
        self.cancel = cancel
        self._last_end: float | None = None  # when the previous graph call (and its stretch) ended
        self.pace = Pace(device.profile.speed)  # host cost -> phone time

    def begin(self) -> None:
        """A generation starts now: host work until the first graph call is stretched with it."""
        self._last_end = time.perf_counter()

    def call(self, fn: Any, *args: Any) -> Any:
        if self.cancel.is_set():
            raise Cancelled()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        # host work since the previous graph call (sampler, tokenizer) runs on the phone's CPU too
        gap = wall0 - self._last_end if self._last_end is not None and wall0 - self._last_end < MAX_GAP_S else 0.0
        if self.marks is not None:
            self.marks.before_call(fn.__name__)
        out = fn(*args)
        self.device.thermal.add_cpu_time((time.process_time() - cpu0) / self.device.profile.speed)  # phone CPU time
        name = fn.__name__
        if name == "decode" and getattr(self.inner, "use_preview", False):
            name = "decode_preview"  # the pipeline decodes with its preview decoder
        if name in self.work:
            self.device.thermal.add_work(*self.work[name])
        key = (fn.__name__, tuple(getattr(a, "shape", None) for a in args))
        self.pace.pad(key, wall0 - gap, self.device.thermal.state().freq_cap)
        self._last_end = time.perf_counter()
        if self.marks is not None:
            self.marks.after_call(fn.__name__)
        return out

    def encode_text(self, tokens, segments):  # noqa: ANN001, ANN201
        return self.call(self.inner.encode_text, tokens, segments)

    def denoise(self, latent, t, context, context_mask, subjects, subject_mask):  # noqa: ANN001, ANN201
        return self.call(self.inner.denoise, latent, t, context, context_mask, subjects, subject_mask)

    def decode(self, latent):  # noqa: ANN001, ANN201
        return self.call(self.inner.decode, latent)

    def runner(self, call: str, fn: Any) -> Any:
        """A signature runner (named inputs -> named outputs) whose calls are paced and marked like `call`
        (encode_text, denoise or decode): how a diffusers bundle's generation runs on the simulated phone."""

        def run(**inputs: Any) -> Any:
            bound = functools.partial(fn, **inputs)
            bound.__name__ = call  # type: ignore[attr-defined]
            return self.call(bound)

        return run


class SimApp:
    """`com.banana.sdk.app` on the simulated device."""

    def __init__(self, device: SimDevice, installed: bool) -> None:
        self.device = device
        self.installed = installed  # False simulates a phone without the sample app
        self.pid: int | None = None  # set while a run is in progress
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    # ---- am start / force-stop
    def start(self, am: AmStart, out: Any) -> int:
        """Handle `am start`; `out(text)` prints. Returns am's exit status."""
        full = f"{PACKAGE}/{PACKAGE}{ACTIVITY}"
        if am.component not in (COMPONENT, full):
            out(f"Error: Activity not started, unable to resolve Intent {{ cmp={am.component} }}\n")
            return 1
        out(f"Starting: Intent {{ cmp={COMPONENT}{' (has extras)' if am.extras else ''} }}\n")
        if not self.installed:
            out(f"Error type 3\nError: Activity class {{{full}}} does not exist.\n")
            return 1
        if am.stop_first:
            self.stop()
        with self._lock:
            if self.pid is not None:
                out("Warning: Activity not started, intent has been delivered to currently running top-most "
                    "instance.\n")
                return 0
            self.pid = next(_pids)
            self._cancel = threading.Event()
        started = time.perf_counter()
        threading.Thread(target=self._main, args=(am.extras, started, self._cancel), daemon=True,
                         name="sim-benchmark-activity").start()
        if am.wait:
            time.sleep(LAUNCH_MS / 1e3)
            out(f"Status: ok\nLaunchState: COLD\nActivity: {COMPONENT}\nTotalTime: {LAUNCH_MS}\n"
                f"WaitTime: {LAUNCH_MS + 3}\nComplete\n")
        return 0

    def stop(self) -> None:
        """`am force-stop`: the run ends at its next graph call and writes nothing."""
        with self._lock:
            self._cancel.set()
            self.pid = None

    # ---- the activity
    def _main(self, extras: dict[str, Any], started: float, cancel: threading.Event) -> None:
        try:
            self._activity(extras, started, cancel)
        finally:  # the process ends only after the result file is in place
            with self._lock:
                if self._cancel is cancel:
                    self.pid = None

    def _activity(self, extras: dict[str, Any], started: float, cancel: threading.Event) -> None:
        log = self.device.log
        run_id = extras.get("run_id") if isinstance(extras.get("run_id"), str) else None
        log.append("I BenchmarkActivity: request " + json.dumps(extras, ensure_ascii=True))
        self.device.thermal.set_busy(True)
        try:
            request = RunRequest.from_extras(extras)
            result = self._benchmark(request, started, cancel)
        except Cancelled:
            log.append("I BenchmarkActivity: force-stopped; no result written")
            return
        except (BananaError, ContractError) as exc:
            result = _error_result(run_id or "", str(exc))
        except Exception as exc:  # a crash: like a real app, it dies without a result
            log.append(f"E AndroidRuntime: FATAL EXCEPTION: main {type(exc).__name__}: {exc}")
            return
        finally:
            self.device.thermal.set_busy(False)
        if run_id is None:
            log.append("E BenchmarkActivity: no valid run_id extra; result not written")
            return
        try:
            self.device.fs.write_bytes(result_path(run_id), (json.dumps(result, indent=1) + "\n").encode())
        except (OSError, ContractError) as exc:
            log.append(f"E BenchmarkActivity: cannot write result: {exc}")
            return
        log.append(f"I BenchmarkActivity: run {run_id} finished with status {result['status']}")

    def _diffusers_generator(self, pipeline: Any, backend: ThrottledBackend) -> Any:
        """The generator of a converted diffusers pipeline over its paced signature runners."""
        from banana_sdk.runtime.diffusers import DiffusersGenerator

        generator = DiffusersGenerator(pipeline.bundle, pipeline.manifest, _diffusers_runners(pipeline, backend))
        generator.peel = pipeline.peel_feed  # the runtime peels set on the pipeline (a LoRA of its UNet), if any
        return generator

    def _subjects(self, req: RunRequest, pipeline: Any) -> tuple[str, Any, Any]:
        """(prompt to encode, subject tokens, mask) for the request's subject files, or ContractError/SubjectError."""
        from banana_sdk.subjects.binding import bind, bound_prompt, encoder_model
        from banana_sdk.subjects.store import read_subject

        fs, loaded = self.device.fs, []
        for path in _subject_files(req.subjects or ""):
            if fs.stat(path) is None:
                raise ContractError(f"subject not found on the device: {path}")
            loaded.append(read_subject(fs.host_path(path)))
        cfg = pipeline.config
        tokens, mask, names = bind(req.prompt, loaded, cfg.denoiser.max_subjects, cfg.text.width,
                                   encoder_model(cfg, pipeline.typed.model.weights_sha256))
        return bound_prompt(req.prompt, names, cfg), tokens, mask

    def _benchmark(self, req: RunRequest, started: float, cancel: threading.Event) -> dict[str, Any]:
        from banana_sdk.pipeline import generate_with
        from banana_sdk.runtime.litert import LiteRTPipeline

        if req.live:  # a live session (device_tests/sim/live_app.py)
            from device_tests.sim.live_app import run_live

            return run_live(self, req, started, cancel, Cancelled, bundle_work)
        fs = self.device.fs
        if fs.stat(req.bundle) is None or fs.stat(f"{req.bundle}/manifest.json") is None:
            raise ContractError(f"bundle not found on the device: {req.bundle}")
        load0 = time.perf_counter()
        pipeline = LiteRTPipeline.load(fs.host_path(req.bundle), threads=req.threads, check_files=False)
        stretch = 1.0 / (self.device.profile.speed * self.device.thermal.state().freq_cap)
        time.sleep((time.perf_counter() - load0) * (stretch - 1.0))  # a load happens once: its own time is its cost
        load_ms = {name: ms * stretch for name, ms in pipeline.load_ms.items()}
        count0 = time.perf_counter()
        work = bundle_work(fs.host_path(req.bundle))  # simulator work: off the phone's clock
        started += time.perf_counter() - count0
        tiles = "upscale_tile" in pipeline.manifest["signatures"]
        if req.size < pipeline.size or (req.size > pipeline.size and not tiles):
            raise ContractError(f"bundle was converted for {pipeline.size}px images, asked for {req.size}px"
                                + ("" if req.size < pipeline.size else " (no upscale_tile signature to go above it)"))
        subjects = subject_mask = None
        prompt = req.prompt
        if pipeline.kind == "diffusers" and req.subjects:
            raise ContractError("subjects need a banana bundle; this bundle is a converted diffusers pipeline")
        if req.subjects:  # subject files on the device, bound to the prompt's names like the app does
            prompt, subjects, subject_mask = self._subjects(req, pipeline)
        if req.peels:  # runtime peels: set once, before the runs (the base stays loaded)
            peels = []
            for path, weight in parse_peels(req.peels):
                if fs.stat(path) is None:
                    raise ContractError(f"peel not found on the device: {path}")
                peels.append((fs.host_path(path), weight))
            pipeline.set_peels(peels)
        marks = StageMarks(self.device, self.pid or 0, per_step=req.size <= pipeline.size)
        backend = ThrottledBackend(pipeline, self.device, cancel, work, marks)
        diffusers = None
        if pipeline.kind == "diffusers":  # a converted diffusers pipeline: its own generator over paced runners
            diffusers = self._diffusers_generator(pipeline, backend)
        runner = None
        if req.size > pipeline.size:  # base size, then the bundle's tiled upscaler (e.g. 4096): loaded once
            from banana_sdk.runtime.tiles import LiteRTTileRunner
            from banana_sdk.upscale.chain import generate_upscaled

            runner = LiteRTTileRunner.from_bundle(pipeline.bundle, req.threads)
        used = Delegate.CPU.value
        fallback = None if req.delegate in (Delegate.AUTO, Delegate.CPU) else (
            f"the simulated device has no {req.delegate.value} delegate; ran on CPU (XNNPACK)")
        first_image_ms, runs, warm, image = None, [], [], None
        for k in range(req.warmup + req.runs):
            marks.begin_run(k - req.warmup + 1 if k >= req.warmup else k + 1, warmup=k < req.warmup)
            backend.begin()
            marks.begin_generation()
            if runner is not None:
                up = generate_upscaled(backend, runner, prompt, req.size, req.steps, req.seed,
                                       subjects=subjects, subject_mask=subject_mask)
                gen = dataclasses.replace(up.base, image=up.image, e2e_ms=up.e2e_ms)
            elif diffusers is not None:
                gen = diffusers.run(req.prompt, req.steps, req.seed, callback=marks.step_done)
            else:
                gen = generate_with(backend, prompt, req.steps, req.seed, None,
                                    subjects=subjects, subject_mask=subject_mask, callback=marks.step_done)
            marks.end_run()
            if first_image_ms is None:
                first_image_ms = (time.perf_counter() - started) * 1e3
            record = {"e2e_ms": gen.e2e_ms, "text_ms": gen.text_ms, "denoise_ms": list(gen.denoise_ms),
                      "decode_ms": gen.decode_ms}
            (warm if k < req.warmup else runs).append(record)
            image = gen.image
        png = io.BytesIO()
        image.save(png, format="PNG")
        image_path = f"{FILES_DIR}/images/{req.run_id}.png"
        fs.write_bytes(image_path, png.getvalue())
        state = self.device.thermal.state()
        return {
            "schema_version": SCHEMA_VERSION, "run_id": req.run_id, "status": "ok", "error": None,
            "delegate": {"requested": req.delegate.value, "used": used, "fallback_reason": fallback},
            "load_ms": load_ms, "first_image_ms": first_image_ms, "warmup": warm, "runs": runs,
            "image": {"path": image_path, "sha256": hashlib.sha256(png.getvalue()).hexdigest()},
            "thermal": {"headroom": round(state.headroom, 4), "status": state.status},
        }


def _diffusers_runners(pipeline: Any, backend: ThrottledBackend) -> dict[str, Any]:
    """The bundle's signature runners (its three, and the rank-bucket denoisers of runtime peels), each paced as
    the call the banana backend would make."""
    runners = pipeline.signature_runners()
    calls = {"text_encoder": "encode_text", "denoise": "denoise", "vae_decode": "decode"}
    calls.update({sig: "denoise" for sig in (pipeline.manifest.get("peels") or {}).get("signatures", {}).values()})
    return {sig: backend.runner(call, runners[sig]) for sig, call in calls.items() if sig in runners}


def _subject_files(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _error_result(run_id: str, message: str) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "run_id": run_id, "status": "error", "error": message,
            "delegate": None, "load_ms": {}, "first_image_ms": None, "warmup": [], "runs": [], "image": None,
            "thermal": None}

"""Requests of the model-side commands: what `banana generate` asks for, checked here (not in the CLI).

A command parses its options into a frozen request, and calls one library function with it; the request's
`validate()` refuses bad input with one `ConfigError` line before anything is loaded or written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from banana_sdk.errors import BundleError, ConfigError
from banana_sdk.sampling.registry import DIFFUSERS_SAMPLERS, FLOW_SAMPLERS, SAMPLERS


def check_finite(option: str, value: float | None) -> None:
    """ConfigError naming `option` when `value` is nan or infinite (None: the option was not given)."""
    if value is not None and not math.isfinite(value):
        raise ConfigError(f"{option} must be a finite number, got {value}")


def samplers_for(kind: str) -> tuple[str, ...]:
    """The registry samplers a model of this kind steps with: rectified flow (banana) or a stored schedule
    (diffusers: DDPM or flow matching, by the bundle's `sampler.schedule.kind`)."""
    return DIFFUSERS_SAMPLERS if kind == "diffusers" else FLOW_SAMPLERS


def check_sampler(sampler: str | None, kind: str | None = "banana") -> None:
    """ConfigError unless `sampler` (None: the model's own) is a registry name that fits a `kind` model
    (kind None: a model not read yet, any registry name passes)."""
    if sampler is None:
        return
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; choose from {list(SAMPLERS)}")
    if kind is None:
        return
    valid = samplers_for(kind)
    if sampler not in valid:
        what = "a diffusers bundle (a stored schedule)" if kind == "diffusers" else f"a {kind} model (rectified flow)"
        raise ConfigError(f"sampler {sampler!r} does not fit {what}; choose from {list(valid)}")


def check_seed_value(seed: int) -> int:
    """The seed if valid (non-negative 64-bit), else ConfigError."""
    from banana_sdk.sampling.noise import check_seed

    try:
        return check_seed(seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class GenerateRequest:
    """One `banana generate`: exactly one of `preset`, `model_dir`, `bundle`."""

    prompt: str  # what to draw
    out: Path  # the PNG file to write (atomically)
    preset: str | None = None  # random-weight preset name
    model_dir: Path | None = None  # checkpoint directory (PyTorch)
    bundle: Path | None = None  # LiteRT bundle directory (a banana or a diffusers bundle)
    steps: int | None = None  # denoising steps; None: the model's default
    seed: int = 0  # noise seed, 0 .. 2**63-1
    size: int | None = None  # image side in px; None: the model's; above it: generated, then upscaled by tiles
    sampler: str | None = None  # a `banana_sdk.sampling.registry` name fitting the model; None: the model's
    guidance: float | None = None  # classifier-free guidance scale; None: the model's
    threads: int = 2  # LiteRT CPU threads
    subjects: tuple[str, ...] = ()  # subject names (`banana subject add`) the prompt mentions, up to 5
    subjects_dir: Path | None = None  # subject store; None: $BANANA_SUBJECTS or ~/.banana/subjects
    peels: tuple[str, ...] = ()  # peel files as PATH[:WEIGHT], stacked in this order
    preview: bool = False  # decode with the bundle's preview decoder (`preview_decode`) instead of `vae_decode`
    force: bool = False  # replace `out` if it exists (else refused, the file untouched)

    def validate(self) -> GenerateRequest:
        """Return self, or raise ConfigError (PeelError for a bad peel spec) with one line saying what to fix."""
        sources = [s for s in (self.preset, self.model_dir, self.bundle) if s is not None]
        if len(sources) != 1:
            raise ConfigError("give exactly one of --preset, --model, --bundle")
        if self.preview and self.bundle is None:
            raise ConfigError("--preview needs --bundle (a bundle converted with `banana convert ... --preview`)")
        if self.peels and self.preset is not None:
            raise ConfigError("--peel needs --model or --bundle (a peel is made for one base's weights)")
        if not isinstance(self.prompt, str):
            raise ConfigError(f"--prompt must be text, got {type(self.prompt).__name__}")
        check_seed_value(self.seed)
        check_finite("--guidance", self.guidance)
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"--threads must be a positive integer, got {self.threads}")
        # a preset or checkpoint is a banana model; a bundle's kind is known once it is read (`generate`)
        check_sampler(self.sampler, "banana" if self.bundle is None else None)
        self.peel_weights()
        out = Path(self.out)
        if out.suffix.lower() != ".png":
            raise ConfigError(f"output must be a .png file, got {str(out)!r}")
        from banana_sdk.fileio import refuse_overwrite

        refuse_overwrite(out, self.force)
        return self

    def peel_weights(self) -> list[tuple[Path, float]]:
        """The peels as (file, weight) pairs (PeelError for a spec that is not PATH[:WEIGHT])."""
        if not self.peels:
            return []
        from banana_sdk.peels.commands import parse_weighted

        return [parse_weighted(spec) for spec in self.peels]


@dataclass(frozen=True)
class GenerateResult:
    out: Path  # the PNG written
    width: int  # pixels
    height: int  # pixels
    note: str  # where it came from (model or bundle, peels, upscaling)
    e2e_ms: float  # prompt in -> image out
    generation: Any  # the `Generation` (or upscaled generation) behind the image


def generate(request: GenerateRequest) -> GenerateResult:
    """Validate `request`, generate its image, write it atomically to `request.out`."""
    from banana_sdk.imageio import save_png

    request = request.validate()
    peels = request.peel_weights()
    prompt, steps, seed, size, sampler = request.prompt, request.steps, request.seed, request.size, request.sampler
    if request.bundle is not None:
        from banana_sdk.runtime.litert import LiteRTPipeline

        pipe = LiteRTPipeline.load(request.bundle, threads=request.threads)
        check_sampler(sampler, pipe.kind)
        backend, base, note = pipe, pipe.size, f"LiteRT bundle {request.bundle}"
        if peels:
            pipe.set_peels(peels)
        if request.preview:
            pipe.set_preview(True)
            note += ", preview decoder"
    else:
        from banana_sdk.pipeline import Pipeline

        pipe = Pipeline.from_preset(request.preset) if request.preset else Pipeline.from_pretrained(request.model_dir)
        backend, base = pipe.backend, pipe.config.image_size
        note = f"model {pipe.config.name}" + ("" if pipe.trained else " (UNTRAINED random weights)")
        if peels:
            from banana_sdk.peels.ops import attach_to_pipeline

            attach_to_pipeline(pipe, request.model_dir, peels)
    if peels:
        note += ", peels " + ", ".join(f"{p.name}:{w:g}" for p, w in peels)
    subjects = subject_mask = None
    if request.subjects:
        from banana_sdk.subjects.binding import bound_inputs

        if request.bundle is not None:
            identity = pipe.typed.model.weights_sha256
        else:
            from banana_sdk.checkpoint import weights_hash

            identity = weights_hash(request.model_dir) if request.model_dir else None
        prompt, subjects, subject_mask = bound_inputs(prompt, request.subjects, pipe.config, request.subjects_dir,
                                                      identity)
    if size is not None and size > base:
        from banana_sdk.upscale import generate_4k

        result = generate_4k(pipe, prompt, size, steps=steps, seed=seed, sampler=sampler,
                             guidance_scale=request.guidance, subjects=subjects, subject_mask=subject_mask,
                             threads=request.threads)
        note += f", generated at {base} px and upscaled through tiles"
    elif subjects is not None:
        from banana_sdk.pipeline import generate_with

        if request.bundle is not None and size not in (None, base):
            raise ConfigError(f"this bundle was converted for {base}x{base}; convert again with --size {size}")
        result = generate_with(backend, prompt, steps, seed, size, sampler, request.guidance,
                               subjects=subjects, subject_mask=subject_mask)
    else:
        result = pipe.run(prompt, steps=steps, seed=seed, size=size, sampler=sampler, guidance_scale=request.guidance)
    save_png(result.image, Path(request.out))
    return GenerateResult(Path(request.out), result.image.width, result.image.height, note, result.e2e_ms, result)


def check_bundle_inputs(bundle: Path, manifest: dict[str, Any], prompt: str, steps: int | None, seed: int) -> None:
    """What a bundle's runner (the app, `generate --bundle`) refuses about a prompt, steps and seed, refused on
    the host from the manifest alone: the prompt tokenized against the bundle's tokenizer spec (PromptError:
    empty, longer than its context), steps within its sampler's range and the seed (ConfigError). A bundle of
    one converted module takes no prompt: only the seed is checked."""
    check_seed_value(seed)
    if hasattr(manifest, "to_dict"):  # a typed `banana_sdk.bundle.manifest.Manifest`
        manifest = manifest.to_dict()
    model = manifest.get("model")
    kind = model.get("kind", "banana") if isinstance(model, dict) else "banana"
    if kind == "module":
        return
    from banana_sdk.sampling.registry import get_sampler

    try:
        spec, sampler = manifest["tokenizer"], manifest["sampler"]
        if kind == "diffusers":
            from banana_sdk.runtime.text_tokenizers import tokenizer_from_spec
            from banana_sdk.sampling.registry import read_schedule

            tokenizer = tokenizer_from_spec(Path(bundle), spec)
            stepper = get_sampler(sampler["kind"], read_schedule(sampler["schedule"]))
        else:
            from banana_sdk.tokenizer import Tokenizer

            tokenizer = Tokenizer(int(spec["context_length"]), int(spec["vocab_size"]))
            stepper = get_sampler(sampler["kind"])
        low = int(sampler.get("min_steps", stepper.min_steps))
        high = int(sampler.get("max_steps", stepper.max_steps))
        default = int(sampler["default_steps"])
    except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as exc:
        raise BundleError(f"{bundle}: manifest tokenizer or sampler is invalid ({exc})") from None
    tokenizer.encode(prompt)
    n = default if steps is None else steps
    if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= high:
        raise ConfigError(f"{stepper.name} sampler takes {low}-{high} steps, got {n}")

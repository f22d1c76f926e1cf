"""Run a bundle on this host with the ai-edge-litert Interpreter (CPU, XNNPACK).

`LiteRTPipeline` is a `banana_sdk.pipeline.Backend`, so generation shares the tokenizer, samplers and
image conversion with the PyTorch pipeline: images differ only where the converted graphs differ.
Bundles converted from a diffusers pipeline (`model.kind == "diffusers"`) generate through
`banana_sdk.runtime.diffusers.DiffusersGenerator` on the same runners.

One Interpreter per file: the signatures of a file (e.g. `denoise` and the runtime-peel `denoise_r4`, ...)
are runners of the same Interpreter, so `set_peels` switches peels by changing two input arrays and the
runner used, without reloading or reconverting anything.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from banana_sdk.bundle.manifest import Manifest, ModelKind
from banana_sdk.bundle.reader import check_signatures, read_manifest, verify_files
from banana_sdk.config import ModelConfig
from banana_sdk.errors import BundleError, ConfigError
from banana_sdk.pipeline import Generation, generate_with
from banana_sdk.runtime.diffusers import DiffusersGenerator
from banana_sdk.runtime.tiles import LiteRTTileRunner
from banana_sdk.sampling.base import StepCallback


class LiteRTPipeline:
    """A loaded bundle: one Interpreter per signature, created at load (cold load timed per signature)."""

    def __init__(self, bundle: Path, manifest: Manifest, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.bundle = bundle
        self.typed = manifest  # the validated manifest
        self.manifest = manifest.to_dict()  # the same, as a dict (peel and diffusers readers take it)
        self.kind = manifest.kind.value
        if manifest.kind is ModelKind.MODULE:
            raise BundleError(f"{bundle} holds one converted module ({', '.join(manifest.signatures)}), not a "
                              "text-to-image pipeline; check it with `banana verify`")
        assert manifest.image is not None and manifest.sampler is not None
        self.config: ModelConfig | None = None
        if manifest.kind is ModelKind.BANANA:
            # the manifest is what the bundle runs: its sampler section sets the defaults (validated against the
            # registry and the model config by Manifest.from_dict)
            sampler = manifest.sampler
            base = manifest.model_config()
            self.config = replace(base, sampler=replace(base.sampler, kind=sampler.kind, steps=sampler.default_steps,
                                                        shift=sampler.shift, guidance_scale=sampler.guidance_scale))
        self.size = manifest.image.size
        self.steps_range = (manifest.sampler.min_steps, manifest.sampler.max_steps)  # what the bundle accepts
        self.load_ms: dict[str, float] = {}  # per file, keyed by the file's stem (= its main signature)
        self._runners = {}
        interpreters: dict[str, Any] = {}
        for name, sig in manifest.signatures.items():
            start = time.perf_counter()
            try:
                if sig.file not in interpreters:
                    interpreters[sig.file] = Interpreter(model_path=str(bundle / sig.file), num_threads=threads)
                self._runners[name] = interpreters[sig.file].get_signature_runner(name)
            except (RuntimeError, ValueError) as exc:
                first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise BundleError(f"{bundle / sig.file}: LiteRT cannot load it ({first_line})") from None
            stem = Path(sig.file).stem
            self.load_ms[stem] = self.load_ms.get(stem, 0.0) + (time.perf_counter() - start) * 1e3
        self._peel: tuple[str, np.ndarray, np.ndarray] | None = None  # (signature, lora_a, lora_b) in use
        self.use_preview = False  # `decode` runs `preview_decode` instead of `vae_decode` (`set_preview`)
        self.peels: dict[str, float] = {}  # name -> weight of the peels in use
        self._diffusers = None
        if manifest.kind is ModelKind.DIFFUSERS:
            self._diffusers = DiffusersGenerator(bundle, self.manifest, self._runners)

    @classmethod
    def load(cls, bundle: str | Path, threads: int = 2, check_files: bool = True) -> LiteRTPipeline:
        """Load a bundle dir: the manifest validated, every file's sha256 (unless `check_files` is False) and
        each file's signatures and tensors checked against the manifest, then one Interpreter per file."""
        bundle = Path(bundle)
        manifest = read_manifest(bundle)
        if check_files:
            verify_files(bundle, manifest)
        check_signatures(bundle, manifest)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {threads}")
        return cls(bundle, manifest, threads)

    def _run(self, name: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        return self._runners[name](**inputs)

    def signature_runners(self) -> dict[str, Any]:
        """{signature: its LiteRT runner (called with named inputs, returns named outputs)}: for callers that drive
        the graphs themselves (the simulated phone paces each call of a diffusers generation)."""
        return dict(self._runners)

    # --- runtime peels -------------------------------------------------------------------------------
    def set_peels(self, peels: list[tuple[str | Path, float]]) -> float:
        """Use these (peel file, weight) pairs from the next denoise call on (an empty list = the base).

        Accepts trained peel files and their runtime exports (`banana peel export --bundle`), and for a diffusers
        bundle PEFT / diffusers / kohya LoRA files of its UNet (imported on the fly); every file is
        checked (base hash, rank buckets, layers, values) before anything changes, so a bad peel leaves the
        current ones in use. Returns the swap time in ms (read, stack, pad; the base is not reloaded)."""
        from banana_sdk.peels.config import check_weight
        from banana_sdk.peels.device import layout_from_manifest, load_for_bundle, stack_runtime
        from banana_sdk.peels.diffusers_lora import load_for_diffusers_bundle

        load = load_for_diffusers_bundle if self._diffusers is not None else load_for_bundle

        start = time.perf_counter()
        if not peels:
            self._peel, self.peels = None, {}
            if self._diffusers is not None:
                self._diffusers.peel = None
            return (time.perf_counter() - start) * 1e3
        slots, buckets = layout_from_manifest(self.manifest)
        files = []
        for path, weight in peels:
            check_weight(weight, str(path))
            meta, a, b = load(path, self.manifest)
            files.append((meta, a, b, float(weight)))
        names = [meta.get("name", "") for meta, _, _, _ in files]
        if len(set(names)) != len(names):
            raise ConfigError(f"the same peel is given twice ({names}); give each peel once with its weight")
        bucket, lora_a, lora_b = stack_runtime(files, slots, buckets)
        signature = self.manifest["peels"]["signatures"][str(bucket)]
        if signature not in self._runners:
            raise BundleError(f"{self.bundle}: manifest lists peel signature {signature!r} but the bundle lacks it")
        self._peel = (signature, lora_a, lora_b)
        if self._diffusers is not None:  # a diffusers bundle's UNet peels (banana_sdk.peels.diffusers_lora)
            self._diffusers.peel = self._peel
        self.peels = {name: float(w) for name, (_, _, _, w) in zip(names, files, strict=True)}
        return (time.perf_counter() - start) * 1e3

    @property
    def peel_feed(self) -> tuple[str, np.ndarray, np.ndarray] | None:
        """(bucket signature, lora_a, lora_b) of the peels in use, None for the base: what a caller that drives the
        signatures itself (`signature_runners`) feeds instead of `denoise`."""
        return self._peel

    def tile_runner(self, threads: int = 2) -> LiteRTTileRunner:
        """The bundle's `upscale_tile` signature as a tile runner (`banana_sdk.upscale.chain`); BundleError if the
        bundle has none."""
        return LiteRTTileRunner.from_bundle(self.bundle, threads)

    # --- Backend -------------------------------------------------------------------------------------
    def encode_text(self, tokens: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._run("text_encoder", tokens=np.asarray(tokens, np.int32),
                        segments=np.asarray(segments, np.float32))
        return out["context"], out["context_mask"]  # GetTensor returns fresh arrays: no second copy

    def denoise(self, latent, t, context, context_mask, subjects, subject_mask):  # noqa: ANN001
        inputs = dict(latent=np.asarray(latent, np.float32), t=np.array([t], np.float32), context=context,
                      context_mask=context_mask, subjects=subjects, subject_mask=subject_mask)
        if self._peel is not None:
            signature, lora_a, lora_b = self._peel
            return self._run(signature, **inputs, lora_a=lora_a, lora_b=lora_b)["velocity"]
        return self._run("denoise", **inputs)["velocity"]  # a fresh array (no copy of a copy)

    def decode(self, latent: np.ndarray) -> np.ndarray:
        if self.use_preview:
            return self.decode_preview(latent)
        return self._run("vae_decode", latent=np.asarray(latent, np.float32))["image"]

    # --- preview decoder (optional, `banana convert --preview`) ------------------------------------------
    @property
    def has_preview(self) -> bool:
        """True if the bundle carries the `preview_decode` signature (a small decoder for live mode)."""
        return "preview_decode" in self._runners

    def decode_preview(self, latent: np.ndarray) -> np.ndarray:
        """Like `decode` (latent (1, C, h, w) -> image (1, H, W, 3) in about [-1, 1]) with the preview decoder."""
        self._require_preview()
        return self._run("preview_decode", latent=np.asarray(latent, np.float32))["image"]

    def set_preview(self, on: bool) -> None:
        """Decode generated images with the preview decoder (True) or the full VAE decoder (False, the default);
        BundleError if the bundle has no preview decoder."""
        if on:
            self._require_preview()
        self.use_preview = bool(on)

    def _require_preview(self) -> None:
        if not self.has_preview:
            raise BundleError(f"{self.bundle} has no preview decoder (signature 'preview_decode'); convert it with "
                              "`banana convert ... --preview [DIR]`")

    # --- generation ----------------------------------------------------------------------------------
    def run(
        self, prompt: str, steps: int | None = None, seed: int = 0, size: int | None = None,
        sampler: str | None = None, guidance_scale: float | None = None, callback: StepCallback | None = None,
    ) -> Generation:
        """Generate one image at the bundle's fixed size (other sizes need another conversion)."""
        if self._diffusers is not None:
            return self._diffusers.run(prompt, steps, seed, size, sampler, guidance_scale, callback)
        if size is not None and size != self.size:
            raise ConfigError(f"this bundle was converted for {self.size}x{self.size}; "
                              f"convert again with --size {size} for that size")
        low, high = self.steps_range
        if steps is not None and not (isinstance(steps, int) and not isinstance(steps, bool) and low <= steps <= high):
            raise ConfigError(f"this bundle takes {low}-{high} steps (its manifest's sampler.min_steps/max_steps), "
                              f"got {steps}")
        return generate_with(self, prompt, steps, seed, self.size, sampler, guidance_scale, callback=callback)

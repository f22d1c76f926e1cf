"""Run a bundle on this host with the ai-edge-litert Interpreter (CPU, XNNPACK).

`LiteRTPipeline` is a `banana_sdk.pipeline.Backend`, so generation shares the tokenizer, samplers and
image conversion with the PyTorch pipeline: images differ only where the converted graphs differ.
Bundles converted from a diffusers pipeline (`model.kind == "diffusers"`) generate through
`converters.byom.runtime.DiffusersGenerator` on the same runners.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from banana_sdk.config import ModelConfig
from banana_sdk.errors import BananaError, ConfigError
from banana_sdk.pipeline import Generation, generate_with
from banana_sdk.sampling.base import StepCallback
from converters.bundle import load_manifest, verify_files
from converters.errors import BundleError


class LiteRTPipeline:
    """A loaded bundle: one Interpreter per signature, created at load (cold load timed per signature)."""

    def __init__(self, bundle: Path, manifest: dict[str, Any], threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.bundle = bundle
        self.manifest = manifest
        self.kind = manifest["model"].get("kind", "banana") if isinstance(manifest["model"], dict) else "banana"
        if self.kind == "module":
            raise BundleError(f"{bundle} holds one converted module ({', '.join(manifest['signatures'])}), not a "
                              "text-to-image pipeline; check it with `banana verify`")
        self.config: ModelConfig | None = None
        if self.kind == "banana":
            try:
                self.config = ModelConfig.from_dict(manifest["model"]["config"])
            except (BananaError, KeyError, TypeError) as exc:
                raise BundleError(f"{bundle}: manifest model config is invalid ({exc})") from None
        elif self.kind != "diffusers":
            raise BundleError(f"{bundle}: model kind {self.kind!r} is unknown; this SDK runs "
                              "['banana', 'diffusers', 'module'] bundles")
        self.size = int(manifest["image"]["size"])
        self.load_ms: dict[str, float] = {}
        self._runners = {}
        for name, sig in manifest["signatures"].items():
            start = time.perf_counter()
            try:
                interpreter = Interpreter(model_path=str(bundle / sig["file"]), num_threads=threads)
                self._runners[name] = interpreter.get_signature_runner(name)
            except (RuntimeError, ValueError) as exc:
                first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise BundleError(f"{bundle / sig['file']}: LiteRT cannot load it ({first_line})") from None
            self.load_ms[name] = (time.perf_counter() - start) * 1e3
        self._diffusers = None
        if self.kind == "diffusers":
            from converters.byom.runtime import DiffusersGenerator

            self._diffusers = DiffusersGenerator(bundle, manifest, self._runners)

    @classmethod
    def load(cls, bundle: str | Path, threads: int = 2, check_files: bool = True) -> LiteRTPipeline:
        """Load a bundle dir (sha256 of every file checked first unless `check_files` is False)."""
        bundle = Path(bundle)
        manifest = load_manifest(bundle)
        if check_files:
            verify_files(bundle, manifest)
        if not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {threads}")
        return cls(bundle, manifest, threads)

    def _run(self, name: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        return self._runners[name](**inputs)

    # --- Backend -------------------------------------------------------------------------------------
    def encode_text(self, tokens: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = self._run("text_encoder", tokens=tokens.astype(np.int32), segments=segments.astype(np.float32))
        return np.array(out["context"]), np.array(out["context_mask"])

    def denoise(self, latent, t, context, context_mask, subjects, subject_mask):  # noqa: ANN001
        out = self._run("denoise", latent=latent.astype(np.float32), t=np.array([t], np.float32),
                        context=context, context_mask=context_mask, subjects=subjects, subject_mask=subject_mask)
        return np.array(out["velocity"])

    def decode(self, latent: np.ndarray) -> np.ndarray:
        return np.array(self._run("vae_decode", latent=latent.astype(np.float32))["image"])

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
        return generate_with(self, prompt, steps, seed, self.size, sampler, guidance_scale, callback=callback)

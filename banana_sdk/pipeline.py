"""Text-to-image generation over any backend (PyTorch here, LiteRT in `banana_sdk.runtime.litert`).

Both backends share the tokenizer, the samplers and the image conversion, so an image differs between
them only by what the converted graphs compute differently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from banana_sdk.checkpoint import load_checkpoint, save_checkpoint
from banana_sdk.config import ModelConfig, check_image_size
from banana_sdk.errors import ConfigError
from banana_sdk.imageio import to_pil
from banana_sdk.models.model import BananaModel, build_model
from banana_sdk.presets import get_preset
from banana_sdk.sampling.base import StepCallback, check_steps
from banana_sdk.sampling.noise import check_seed
from banana_sdk.sampling.registry import get_sampler
from banana_sdk.tokenizer import Tokenizer


class Backend(Protocol):
    """The three signatures of a bundle, as numpy functions (see docs/DESIGN.md §1)."""

    config: ModelConfig

    def encode_text(self, tokens: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """tokens (1, L) int32, segments (1, L) f32 -> context (1, L, Ct), context_mask (1, L)."""

    def denoise(
        self, latent: np.ndarray, t: float, context: np.ndarray, context_mask: np.ndarray,
        subjects: np.ndarray, subject_mask: np.ndarray,
    ) -> np.ndarray:
        """latent (1, C, h, w), t in [0, 1] -> velocity (1, C, h, w)."""

    def decode(self, latent: np.ndarray) -> np.ndarray:
        """latent (1, C, h, w) -> image (1, H, W, 3) float in about [-1, 1]."""


@dataclass
class Generation:
    image: Image.Image  # the RGB result
    latent: np.ndarray  # (1, C, h, w) clean latent before decoding
    text_ms: float = 0.0  # text encoder wall time
    denoise_ms: list[float] = field(default_factory=list)  # wall time of each denoising step
    decode_ms: float = 0.0  # VAE decoder wall time
    e2e_ms: float = 0.0  # prompt in -> image out


class StepTimer:
    """A sampler step callback that records each step's wall time (ms) and forwards to `callback`."""

    def __init__(self, callback: StepCallback | None = None) -> None:
        self.callback = callback
        self.step_ms: list[float] = []
        self._last = time.perf_counter()

    def __call__(self, i: int, n: int) -> None:
        now = time.perf_counter()
        self.step_ms.append((now - self._last) * 1e3)
        self._last = now
        if self.callback is not None:
            self.callback(i, n)


def generate_with(
    backend: Backend,
    prompt: str,
    steps: int | None = None,
    seed: int = 0,
    size: int | None = None,
    sampler: str | None = None,
    guidance_scale: float | None = None,
    subjects: np.ndarray | None = None,
    subject_mask: np.ndarray | None = None,
    callback: StepCallback | None = None,
) -> Generation:
    """Run tokenizer -> text encoder -> sampler loop -> decoder on `backend`."""
    cfg = backend.config
    start = time.perf_counter()
    sampler_obj = get_sampler(sampler or cfg.sampler.kind)
    steps = cfg.sampler.steps if steps is None else steps
    check_steps(sampler_obj, steps)
    size = cfg.image_size if size is None else size
    check_image_size(cfg, size)
    try:
        seed = check_seed(seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    scale = cfg.sampler.guidance_scale if guidance_scale is None else guidance_scale
    tokenizer = Tokenizer(cfg.tokenizer.context_length, cfg.tokenizer.vocab_size)
    # 1. prompt -> context (plus the empty prompt when guiding)
    encodings = [tokenizer.encode(prompt)] + ([tokenizer.unconditional()] if scale != 1.0 else [])
    contexts = [
        backend.encode_text(e.ids[None], e.segments[None].astype(np.float32)) for e in encodings
    ]
    text_ms = (time.perf_counter() - start) * 1e3
    slots = cfg.denoiser.max_subjects
    if subjects is None:
        subjects = np.zeros((1, slots, cfg.text.width), np.float32)
        subject_mask = np.zeros((1, slots), np.float32)
    no_subjects = np.zeros_like(subject_mask)

    # 2. the sampler drives the denoiser; guidance combines two passes
    def model_fn(x: np.ndarray, t: float) -> np.ndarray:
        v = backend.denoise(x, t, *contexts[0], subjects, subject_mask)
        if scale == 1.0:
            return v
        v_uncond = backend.denoise(x, t, *contexts[1], subjects, no_subjects)
        return v_uncond + scale * (v - v_uncond)

    shape = (1, cfg.vae.latent_channels, size // cfg.downsample, size // cfg.downsample)
    timer = StepTimer(callback)
    latent = sampler_obj.sample(model_fn, shape, steps, seed, cfg.sampler.shift, timer)
    step_times = timer.step_ms
    # 3. decode and convert to 8-bit RGB
    t0 = time.perf_counter()
    image = backend.decode(latent)
    decode_ms = (time.perf_counter() - t0) * 1e3
    return Generation(
        image=to_pil(image), latent=latent, text_ms=text_ms, denoise_ms=step_times,
        decode_ms=decode_ms, e2e_ms=(time.perf_counter() - start) * 1e3,
    )


class TorchBackend:
    """A `Backend` over an eager `BananaModel` (fp32, no grad)."""

    def __init__(self, model: BananaModel) -> None:
        self.model = model.eval()
        self.config = model.config

    @torch.no_grad()
    def encode_text(self, tokens: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        context, mask = self.model.text_encoder(torch.from_numpy(tokens), torch.from_numpy(segments))
        return context.numpy(), mask.numpy()

    @torch.no_grad()
    def denoise(self, latent, t, context, context_mask, subjects, subject_mask):  # noqa: ANN001
        out = self.model.denoiser(
            torch.from_numpy(latent), torch.tensor([t], dtype=torch.float32),
            torch.from_numpy(context), torch.from_numpy(context_mask),
            torch.from_numpy(subjects), torch.from_numpy(subject_mask),
        )
        return out.numpy()

    @torch.no_grad()
    def decode(self, latent: np.ndarray) -> np.ndarray:
        return self.model.vae.decode(torch.from_numpy(latent)).permute(0, 2, 3, 1).contiguous().numpy()


class Pipeline:
    """PyTorch text-to-image pipeline: `from_pretrained(dir)`, `save_pretrained(dir)`, `generate(...)`."""

    def __init__(self, model: BananaModel, trained: bool = False, extra: dict | None = None) -> None:
        self.model = model.eval()
        self.config = model.config
        self.trained = trained  # False for random-weight presets
        self.extra = extra or {}
        self.backend = TorchBackend(self.model)

    @classmethod
    def from_preset(cls, name: str, seed: int = 0) -> Pipeline:
        """Random (untrained) weights for a named preset."""
        return cls(build_model(get_preset(name), seed=seed), trained=False)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Pipeline:
        """Load a checkpoint dir written by `save_pretrained` (raises CheckpointError)."""
        model, extra = load_checkpoint(directory)
        return cls(model, trained=bool(extra.get("trained", True)), extra=extra)

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        """Write safetensors weights + versioned config JSON (atomically)."""
        return save_checkpoint(self.model, directory, dtype, {**self.extra, "trained": self.trained})

    def generate(
        self, prompt: str, steps: int | None = None, seed: int = 0, size: int | None = None,
        sampler: str | None = None, guidance_scale: float | None = None,
        callback: StepCallback | None = None,
    ) -> Image.Image:
        """Generate one image; same arguments, same image."""
        return self.run(prompt, steps, seed, size, sampler, guidance_scale, callback).image

    def run(
        self, prompt: str, steps: int | None = None, seed: int = 0, size: int | None = None,
        sampler: str | None = None, guidance_scale: float | None = None,
        callback: StepCallback | None = None,
    ) -> Generation:
        """Like `generate` but returns latents and timings too."""
        return generate_with(
            self.backend, prompt, steps, seed, size, sampler, guidance_scale, callback=callback
        )

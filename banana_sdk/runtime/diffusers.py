"""Text-to-image over a converted diffusers bundle (`model.kind == "diffusers"`), any signature runner.

The loop mirrors the pipeline it came from: tokens (one token input per encoder: CLIP BPE with its own padding,
or T5's SentencePiece unigram, `banana_sdk.runtime.text_tokenizers`) -> text encoder -> a sampler on the stored
schedule (DDPM: `ddim`, `lcm-ddpm`, `euler-ddpm`, `euler-ancestral-ddpm`; flow matching: `flow-match-euler`)
calling the denoiser once per step (twice for classifier-free guidance when the scale is above 1, combined on
the host; once with a `guidance` input for guidance-distilled UNets) -> VAE decoder.
Every output of the text encoder (`context`, SDXL/SD3's `pooled`) is fed to the denoiser under its own name, with
the manifest's `conditioning.constants` (SDXL's `time_ids`); the denoiser's token mask is the text encoder's,
at the rows `conditioning.context_rows` names when `context` holds only some positions (Sana); the unconditional
input is the encoded empty prompt or all zeros (`conditioning.unconditional`). Noise is the portable generator, so
the Kotlin SDK reproduces images bit for bit up to the graphs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from banana_sdk.errors import BundleError, ConfigError
from banana_sdk.imageio import to_pil
from banana_sdk.pipeline import Generation, StepTimer
from banana_sdk.runtime.guidance import GuidanceMode
from banana_sdk.runtime.text_tokenizers import input_tokenizers
from banana_sdk.sampling.base import StepCallback, check_steps
from banana_sdk.sampling.noise import check_seed
from banana_sdk.sampling.registry import SCHEDULE_KINDS, get_sampler, read_schedule, schedule_kind

Runner = Callable[..., dict[str, np.ndarray]]  # signature runner: named numpy inputs -> named outputs
Conditioning = dict[str, np.ndarray]  # denoise inputs that carry the prompt: context [, context_mask] [, pooled]
UNCONDITIONAL = ("empty_prompt", "zeros")  # what classifier-free guidance compares against


def read_context_rows(ranges: list[list[int]], length: int) -> np.ndarray:
    """`conditioning.context_rows` ([start, stop) ranges, in order) -> the positions; ValueError outside 0..length-1."""
    rows = np.concatenate([np.arange(int(start), int(stop)) for start, stop in ranges])
    if not rows.size or rows.min() < 0 or rows.max() >= length:
        raise ValueError(f"conditioning.context_rows {ranges} do not lie within the {length} text-encoder positions")
    return rows


class DiffusersGenerator:
    """Generation over the three runners of a diffusers bundle."""

    def __init__(self, bundle: Path, manifest: dict[str, Any], runners: dict[str, Runner]) -> None:
        try:
            self.tokenizers = input_tokenizers(bundle, manifest["tokenizer"])  # one per text_encoder token input
            self.tokenizer = self.tokenizers["tokens"]  # its length is the mask's (masked families)
            sampler = manifest["sampler"]
            self.schedule = read_schedule(sampler["schedule"])
            self.kind = sampler["kind"]
            self.default_steps = int(sampler["default_steps"])
            self.guidance = GuidanceMode(sampler["guidance"])
            self.default_scale = float(sampler["guidance_scale"])
            image = manifest["image"]
            self.size = int(image["size"])
            self.latent_shape = (1, int(image["latent_channels"]), int(image["latent_size"]), int(image["latent_size"]))
            self.inputs = {n: {i["name"] for i in s["inputs"]} for n, s in manifest["signatures"].items()}
            conditioning = manifest.get("conditioning") or {}
            self.unconditional = conditioning.get("unconditional", "empty_prompt")
            if self.unconditional not in UNCONDITIONAL:
                raise ValueError(f"conditioning.unconditional {self.unconditional!r} is not one of {UNCONDITIONAL}")
            self.constants = {k: np.asarray(v, np.float32) for k, v in (conditioning.get("constants") or {}).items()}
            rows = conditioning.get("context_rows")  # Sana: the encoder positions `context` holds
            self.context_rows = None if rows is None else read_context_rows(rows, self.tokenizer.context_length)
        except (KeyError, TypeError, ValueError, ConfigError, BundleError) as exc:
            raise BundleError(f"{bundle}: manifest of a diffusers bundle is invalid ({exc})") from None
        missing = {"text_encoder", "denoise", "vae_decode"} - set(runners)
        if missing:
            raise BundleError(f"{bundle}: diffusers bundle lacks signature(s) {sorted(missing)}")
        self.runners = runners
        self.peel: tuple[str, np.ndarray, np.ndarray] | None = None  # (denoise_rR signature, lora_a, lora_b) in use:
        # ^ set by LiteRTPipeline.set_peels (runtime peels, docs/DESIGN.md §7); None: the base `denoise`

    def encode(self, prompt: str | None) -> Conditioning:
        """The denoiser's prompt inputs for `prompt` (None: the empty prompt): every text-encoder output
        (context (1, L, Ct) [, pooled (1, P)]) and, where the denoiser takes it, the token mask (1, L)."""
        encoded = {n: tok.unconditional() if prompt is None else tok.encode(prompt)
                   for n, tok in self.tokenizers.items()}
        length = encoded["tokens"].length
        mask = (np.arange(self.tokenizer.context_length) < length).astype(np.float32)[None]
        feeds = {n: enc.ids[None].astype(np.int32) for n, enc in encoded.items()}
        if "attention_mask" in self.inputs["text_encoder"]:
            feeds["attention_mask"] = mask
        cond = {k: np.array(v) for k, v in self.runners["text_encoder"](**feeds).items()}
        if "context_mask" in self.inputs["denoise"]:
            cond["context_mask"] = mask if self.context_rows is None else mask[:, self.context_rows]
        return cond

    def uncond(self, cond: Conditioning) -> Conditioning:
        """The unconditional input of classifier-free guidance (zeros keep the mask of the prompt)."""
        if self.unconditional == "zeros":
            return {k: v if k == "context_mask" else np.zeros_like(v) for k, v in cond.items()}
        return self.encode(None)

    def denoise(self, latent: np.ndarray, t: float, cond: Conditioning, scale: float) -> np.ndarray:
        """One denoiser pass: the model's prediction for latent at model time t."""
        feeds = {"latent": latent.astype(np.float32), "t": np.array([t], np.float32), **cond, **self.constants}
        if "guidance" in self.inputs["denoise"]:
            feeds["guidance"] = np.array([scale], np.float32)
        if self.peel is not None:  # the same Interpreter's bucket signature: two more inputs, nothing reloaded
            signature, lora_a, lora_b = self.peel
            return np.array(self.runners[signature](**feeds, lora_a=lora_a, lora_b=lora_b)["prediction"])
        return np.array(self.runners["denoise"](**feeds)["prediction"])

    def run(
        self, prompt: str, steps: int | None = None, seed: int = 0, size: int | None = None,
        sampler: str | None = None, guidance_scale: float | None = None, callback: StepCallback | None = None,
    ) -> Generation:
        start = time.perf_counter()
        if size is not None and size != self.size:
            raise ConfigError(f"this bundle was converted for {self.size}x{self.size}; "
                              f"convert again with --size {size} for that size")
        name = sampler or self.kind
        fits = SCHEDULE_KINDS[schedule_kind(self.schedule)]
        if name not in fits:
            raise ConfigError(f"this diffusers bundle steps on a {schedule_kind(self.schedule)} schedule; choose a "
                              f"sampler from {list(fits)}, got {name!r}")
        sampler_obj = get_sampler(name, self.schedule)
        steps = self.default_steps if steps is None else steps
        check_steps(sampler_obj, steps)
        try:
            seed = check_seed(seed)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        scale = self.default_scale if guidance_scale is None else float(guidance_scale)
        # 1. prompt (and, for classifier-free guidance, the unconditional input) -> conditioning
        cond = self.encode(prompt)
        cfg = self.guidance is GuidanceMode.CFG and scale > 1.0  # diffusers' rule: no guidance at scale <= 1
        uncond = self.uncond(cond) if cfg else None
        text_ms = (time.perf_counter() - start) * 1e3

        # 2. the sampler drives the denoiser; CFG runs the batch-1 signature twice and combines on the host
        def model_fn(x: np.ndarray, t: float) -> np.ndarray:
            out = self.denoise(x, t, cond, scale)
            if uncond is None:
                return out
            out_uncond = self.denoise(x, t, uncond, scale)
            return out_uncond + scale * (out - out_uncond)

        timer = StepTimer(callback)
        latent = sampler_obj.sample(model_fn, self.latent_shape, steps, seed, 1.0, timer)
        step_times = timer.step_ms
        # 3. decode (latent scaling is inside the graph) and convert to 8-bit RGB
        t0 = time.perf_counter()
        image = np.array(self.runners["vae_decode"](latent=latent.astype(np.float32))["image"])
        decode_ms = (time.perf_counter() - t0) * 1e3
        return Generation(image=to_pil(image), latent=latent, text_ms=text_ms, denoise_ms=step_times,
                          decode_ms=decode_ms, e2e_ms=(time.perf_counter() - start) * 1e3)

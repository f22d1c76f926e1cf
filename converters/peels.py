"""Runtime-peel signatures in bundles: conversion, the manifest's `peels` section, and their checks.

`banana convert --peel-buckets 4,8,16` adds to `denoise.tflite`, beside `denoise`, one signature per rank
bucket R, `denoise_r{R}` = `banana_sdk.peels.runtime.DenoisePeelSignature(denoiser, R)`: the same graph plus
two fp32 inputs `lora_a` / `lora_b` (flat, docs/DESIGN.md §7) added as a low-rank path after every target
linear. The signatures are built from the same module, so the file holds one copy of the (INT4) weights;
the low-rank path reads activations, so no recipe touches it: it stays fp32 over the quantized base.

Each `denoise_r{R}` is gated like any signature (LiteRT vs PyTorch on seeded inputs with non-zero A/B), and
`zero_peel_check` compares zero A/B with the base `denoise` on LiteRT: bit for bit where the lowering treats
both graphs alike (tiny preset), and never further apart than the gate allows a conversion (on the trained
demo model some weights of the peel graphs are stored and rounded apart from the base's: see DESIGN.md §7).
The manifest records

    "peels": {"buckets": [4, 8, 16], "signatures": {"4": "denoise_r4", ...}, "inputs": ["lora_a", "lora_b"],
              "dtype": "float32", "layout": [{"name": "denoiser.blocks.0.attn.q", "in": 64, "out": 64}, ...],
              "sizes": {"4": [N_a, N_b], ...},
              "zero_check": {"denoise_r4": {"max_abs_error": 0.0, "psnr_db": 200.0}, ...}}
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from banana_sdk.config import ModelConfig
from banana_sdk.errors import ConfigError
from banana_sdk.models.model import build_component
from banana_sdk.peels.config import DENOISER_TARGETS, PeelError, check_targets
from banana_sdk.peels.runtime import DenoisePeelSignature, LayerSlot, flat_sizes, runtime_layers
from banana_sdk.sampling.noise import gaussian
from converters.engine import ExtraSignature, ManifestFn, SignatureJob
from converters.errors import ConversionError
from converters.gate import compare, run_tflite
from converters.recipes import GateThreshold
from converters.signatures import denoise_inputs

PEELS_SECTION = "peels"  # manifest key
DENOISE = "denoise"  # the signature (and file) the peel signatures join
MAX_BUCKET = 64  # largest rank bucket accepted
PEEL_INPUT_SCALE = 0.05  # std of the gate's seeded A/B entries (a clearly visible, sane low-rank update)


def peel_signature(bucket: int) -> str:
    """The signature name of rank bucket `bucket`."""
    return f"{DENOISE}_r{bucket}"


def parse_buckets(text: str | tuple[int, ...] | None) -> tuple[int, ...]:
    """"4,8,16" -> (4, 8, 16): sorted, unique, each in [1, MAX_BUCKET]; ConfigError otherwise."""
    if text is None or text == "":
        return ()
    parts = text.split(",") if isinstance(text, str) else list(text)
    buckets = set()
    for part in parts:
        try:
            value = int(str(part).strip())
        except ValueError:
            raise ConfigError(f"--peel-buckets takes comma-separated ranks like 4,8,16, got {text!r}") from None
        if not 1 <= value <= MAX_BUCKET:
            raise ConfigError(f"peel bucket {value} is outside [1, {MAX_BUCKET}]")
        buckets.add(value)
    return tuple(sorted(buckets))


def layout_of(config: ModelConfig, targets: tuple[str, ...] = DENOISER_TARGETS) -> list[LayerSlot]:
    """The runtime-peel layout of a model config (built on the meta device: nothing allocated)."""
    return runtime_layers(build_component(config, "denoiser", "meta"), targets)


def parse_targets(text: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """`--peel-targets attn.o,mlp.fc2` -> the targets in layout order (None: every target); ConfigError lists
    the valid names."""
    if text is None:
        return DENOISER_TARGETS
    names = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    try:
        return check_targets(names)
    except PeelError as exc:
        raise ConfigError(f"--peel-targets: {exc}") from None


def section_targets(section: dict[str, Any]) -> tuple[str, ...]:
    """The targets a manifest's `peels` section was converted with (every target when it does not say)."""
    return parse_targets(tuple(section.get("targets") or DENOISER_TARGETS))


def peel_inputs(config: ModelConfig, size: int, bucket: int, seed: int, zero: bool = False,
                targets: tuple[str, ...] = DENOISER_TARGETS) -> dict[str, np.ndarray]:
    """The base denoise gate inputs plus seeded (or zero) flat `lora_a` / `lora_b` for one bucket."""
    n_a, n_b = flat_sizes(layout_of(config, targets), bucket)
    inputs = denoise_inputs(config, size, seed)
    if zero:
        return {**inputs, "lora_a": np.zeros(n_a, np.float32), "lora_b": np.zeros(n_b, np.float32)}
    return {**inputs, "lora_a": gaussian(seed, 10 + bucket, (n_a,)) * np.float32(PEEL_INPUT_SCALE),
            "lora_b": gaussian(seed, 11 + bucket, (n_b,)) * np.float32(PEEL_INPUT_SCALE)}


def _peel_module(bucket: int, targets: tuple[str, ...], wrapped: nn.Module) -> nn.Module:
    """`denoise_r{bucket}` from the job's wrapped `denoise` module (top level: picklable for isolated export)."""
    return DenoisePeelSignature(wrapped.denoiser, bucket, targets)


def with_peel_buckets(jobs: list[SignatureJob], manifest: ManifestFn, buckets: tuple[int, ...],
                      config: ModelConfig, size: int, seed: int, threshold: GateThreshold, threads: int = 2,
                      targets: tuple[str, ...] = DENOISER_TARGETS) -> tuple[list[SignatureJob], ManifestFn]:
    """The converter hook: the denoise job gains the bucket signatures, the manifest its `peels` section."""
    if not buckets:
        return jobs, manifest
    if not any(job.name == DENOISE for job in jobs):
        raise ConfigError("--peel-buckets needs a bundle with a denoise signature")
    extra = tuple(ExtraSignature(peel_signature(r),
                                 functools.partial(peel_inputs, config, size, r, seed, targets=targets),
                                 functools.partial(_peel_module, r, targets)) for r in buckets)
    jobs = [SignatureJob(**{**vars(job), "extra": job.extra + extra}) if job.name == DENOISE else job
            for job in jobs]
    layout = layout_of(config, targets)

    def manifest_with_peels(records: dict[str, dict[str, Any]], staging: Path) -> dict[str, Any]:
        zero = zero_peel_check(staging / f"{DENOISE}.tflite", config, size, buckets, seed, threshold, threads,
                               targets)
        section = {"buckets": list(buckets), "signatures": {str(r): peel_signature(r) for r in buckets},
                   "inputs": ["lora_a", "lora_b"], "dtype": "float32", "targets": list(targets),
                   "layout": [{"name": s.name, "in": s.in_features, "out": s.out_features} for s in layout],
                   "sizes": {str(r): list(flat_sizes(layout, r)) for r in buckets}, "zero_check": zero}
        return {**manifest(records, staging), PEELS_SECTION: section}

    return jobs, manifest_with_peels


def zero_peel_check(path: Path, config: ModelConfig, size: int, buckets: tuple[int, ...], seed: int,
                    threshold: GateThreshold, threads: int = 2, targets: tuple[str, ...] = DENOISER_TARGETS,
                    ) -> dict[str, dict[str, float]]:
    """Every bucket signature with zero A/B vs `denoise` on the same inputs, both on LiteRT: ConversionError
    unless they agree as closely as the gate demands of a conversion. Returns {signature: {max_abs_error,
    psnr_db}} (0.0 / 200 dB where the two graphs are lowered alike)."""
    base = run_tflite(path, DENOISE, denoise_inputs(config, size, seed), threads)["velocity"]
    return {peel_signature(r): zero_result(r, base, run_tflite(
        path, peel_signature(r), peel_inputs(config, size, r, seed, zero=True, targets=targets), threads)["velocity"],
        threshold) for r in buckets}


def zero_result(bucket: int, base: np.ndarray, out: np.ndarray, threshold: GateThreshold) -> dict[str, float]:
    """One bucket's zero-A/B output vs the base `denoise` output: {max_abs_error, psnr_db}, or ConversionError
    unless they agree as closely as the gate demands of a conversion."""
    cosine, psnr, err = compare(base, out)
    if psnr < threshold.min_psnr_db or cosine < threshold.min_cosine:
        raise ConversionError(f"{peel_signature(bucket)} with zero lora_a/lora_b differs from {DENOISE}: PSNR "
                              f"{psnr:.1f} dB, cosine {cosine:.5f} (need >= {threshold.min_psnr_db} dB, "
                              f">= {threshold.min_cosine}); the runtime-peel graph is broken")
    return {"max_abs_error": round(float(err), 6), "psnr_db": round(float(psnr), 3)}


def check_peels_section(bundle: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest's `peels` section checked against its signatures and model config (None if absent);
    BundleError names the first inconsistency."""
    from banana_sdk.config import ModelConfig
    from banana_sdk.errors import BundleError

    section = manifest.get(PEELS_SECTION)
    if section is None:
        return None
    try:
        buckets = parse_buckets(tuple(section["buckets"]))
        layout = [LayerSlot(s["name"], int(s["in"]), int(s["out"])) for s in section["layout"]]
        expected = layout_of(ModelConfig.from_dict(manifest["model"]["config"]), section_targets(section))
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle}: manifest section {PEELS_SECTION!r} is invalid ({exc})") from None
    if layout != expected:
        raise BundleError(f"{bundle}: the peel layout in the manifest does not match the model config")
    check_bucket_inputs(bundle, manifest, section, buckets, layout)
    return section


def check_bucket_inputs(bundle: Path, manifest: dict[str, Any], section: dict[str, Any], buckets: tuple[int, ...],
                        layout: list[LayerSlot]) -> None:
    """Each rank bucket has its signature, whose flat `lora_a` / `lora_b` inputs fit `layout`; BundleError if not."""
    from banana_sdk.errors import BundleError

    for r in buckets:
        name = section.get("signatures", {}).get(str(r))
        io = manifest["signatures"].get(name or "")
        if io is None:
            raise BundleError(f"{bundle}: peel bucket {r} has no signature in the manifest")
        shapes = {i["name"]: i["shape"] for i in io["inputs"]}
        n_a, n_b = flat_sizes(layout, r)
        if shapes.get("lora_a") != [n_a] or shapes.get("lora_b") != [n_b]:
            raise BundleError(f"{bundle}: {name} takes lora_a {shapes.get('lora_a')} / lora_b {shapes.get('lora_b')}, "
                              f"the layout needs [{n_a}] / [{n_b}]")


def verify_peels(bundle: Path, manifest: dict[str, Any], model_dir: Path, threshold: GateThreshold, threads: int = 2,
                 seed: int = 1234) -> dict[str, dict[str, Any]]:
    """`banana verify --model` for the peel signatures: the gate vs PyTorch with seeded A/B, and zero A/B ==
    `denoise` on LiteRT. Returns {signature: gate result}; ConversionError on failure."""
    from banana_sdk.checkpoint import load_component
    from banana_sdk.config import ModelConfig
    from converters.gate import gate_signature, require
    from converters.signatures import DenoiseSignature, torch_outputs

    section = check_peels_section(bundle, manifest)
    if section is None:
        return {}
    config = ModelConfig.from_dict(manifest["model"]["config"])
    size = int(manifest["image"]["size"])
    buckets = tuple(section["buckets"])
    targets = section_targets(section)
    path = bundle / manifest["signatures"][DENOISE]["file"]
    main = DenoiseSignature(load_component(model_dir, "denoiser"))
    results = {}
    for r in buckets:
        name = peel_signature(r)
        inputs = peel_inputs(config, size, r, seed, targets=targets)
        result = gate_signature(name, torch_outputs(_peel_module(r, targets, main), inputs),
                                run_tflite(path, name, inputs, threads), threshold)
        require(result)
        results[name] = result.to_dict()
    zero_peel_check(path, config, size, buckets, seed, threshold, threads, targets)
    return results

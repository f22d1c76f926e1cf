"""Runtime peels for diffusers bundles of the `sd` family: `banana convert --diffusers DIR --peel-buckets 4,8,16`.

`denoise.tflite` gains, beside `denoise`, one signature per rank bucket R, `denoise_r{R}` = `UNetPeelSignature`:
the same UNet (one copy of its weights in the file) plus two fp32 inputs `lora_a` / `lora_b`, from which a
low-rank path is added to every layout slot (`banana_sdk.peels.diffusers_layout`: the UNet's linears and convs
whose module path ends with one of the `--peel-targets`, LCM-LoRA's fourteen by default). For slot i at
offset o_a / o_b of the flat inputs:

    linear: y += (x @ A_i^T) @ B_i^T                       A_i = lora_a[o_a : o_a + R in_i] as (R, in_i)
    conv:   y += conv(conv(x, A_i, stride, padding), B_i)  A_i as (R, C_in, kh, kw), B_i (out, R) as (out, R, 1, 1)

The conv path is a CONV_2D whose filter is a graph input (reshaped from `lora_a`): it lowers, runs on LiteRT and
is gated like every signature; no recipe quantizes it (it is not a constant). The manifest's `peels` section is
our own format (docs/DESIGN.md §7) with diffusers module names and, per slot, `kind`, `in_channels`, `kernel`.
Each `denoise_r{R}` is gated against PyTorch with seeded A/B, and zero A/B against `denoise` on LiteRT.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from banana_sdk.errors import BundleError, ConfigError
from banana_sdk.peels.config import PeelError
from banana_sdk.peels.diffusers_layout import LCM_LORA_TARGETS, SUPPORTED_KINDS, SlotKind, UNetSlot
from banana_sdk.peels.runtime import flat_sizes
from banana_sdk.sampling.noise import gaussian
from converters.engine import GATE_SEED, ExtraSignature, SignatureJob, job_key
from converters.errors import ConversionError
from converters.gate import gate_signature, require, run_tflite
from converters.peels import (
    PEEL_INPUT_SCALE,
    PEELS_SECTION,
    check_bucket_inputs,
    parse_buckets,
    peel_signature,
    zero_result,
)
from converters.recipes import GateThreshold

if TYPE_CHECKING:
    from converters.byom.convert_diffusers import DiffusersPlan

DENOISE = "denoise"  # the signature (and file) the peel signatures join
PEEL_FORMAT = 1  # version of the UNet low-rank graph (in the denoise job key: a change re-exports)
Inputs = Callable[[], dict[str, np.ndarray]]  # seeded example inputs of the base `denoise`
_TARGET = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")  # a module-path suffix


def parse_unet_targets(text: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """`--peel-targets to_q,to_k,to_v,to_out.0` -> the module-path suffixes (None: LCM-LoRA's fourteen)."""
    if text is None:
        return LCM_LORA_TARGETS
    names = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    bad = [n for n in names if not _TARGET.match(n)]
    if bad or not names:
        raise ConfigError(f"--peel-targets takes module-path suffixes like to_q,to_out.0,conv1, got {text!r}")
    return tuple(dict.fromkeys(names))


def _matches(name: str, target: str) -> bool:
    """PEFT's rule: a target names a module whose path is the target or ends with "." + target."""
    return name == target or name.endswith("." + target)


def unet_slots(unet: nn.Module, targets: tuple[str, ...] = LCM_LORA_TARGETS, strict: bool = False) -> list[UNetSlot]:
    """The layout of a UNet: every nn.Linear / nn.Conv2d whose path matches a target, in module order;
    ConversionError for a matched layer of another kind, or (`strict`: targets the user named) a target that
    matches no layer."""
    slots, used = [], set()
    for name, module in unet.named_modules():
        hits = [t for t in targets if _matches(name, t)]
        if not hits:
            continue
        used.update(hits)
        if isinstance(module, nn.Linear):
            slots.append(UNetSlot(name, SlotKind.LINEAR, module.in_features, module.out_features))
        elif isinstance(module, nn.Conv2d) and module.groups == 1 and tuple(module.dilation) == (1, 1) \
                and module.padding_mode == "zeros" and not isinstance(module.padding, str):
            slots.append(UNetSlot(name, SlotKind.CONV, module.in_channels, module.out_channels,
                                  tuple(module.kernel_size)))  # type: ignore[arg-type]
        else:
            raise ConversionError(f"--peel-targets: {name} is a {type(module).__name__}; runtime peels adapt "
                                  f"{' and '.join(SUPPORTED_KINDS)} layers only")
    unused = [t for t in targets if t not in used]
    if strict and unused:
        raise ConversionError(f"--peel-targets: {unused[0]!r} matches no linear or conv layer of the UNet")
    if not slots:
        raise ConversionError(f"--peel-targets {list(targets)} match no layer of the UNet")
    return slots


def unet_layout(config: dict[str, Any], targets: tuple[str, ...] = LCM_LORA_TARGETS,
                strict: bool = False) -> list[UNetSlot]:
    """The layout of the UNet a config describes (built on the meta device: nothing allocated)."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    return unet_slots(unet, targets, strict)


class FlatUNetLoRA:
    """Forward hooks that add each slot's low-rank update, its A/B sliced from flat `lora_a`/`lora_b` set per call."""

    def __init__(self, unet: nn.Module, rank: int, slots: list[UNetSlot]) -> None:
        self.rank = rank
        self.lora_a: torch.Tensor | None = None  # (N_a,) while the peel signature runs, else None
        self.lora_b: torch.Tensor | None = None  # (N_b,)
        modules = dict(unet.named_modules())
        oa = ob = 0
        for slot in slots:
            na, nb = rank * slot.columns, rank * slot.out
            modules[slot.name].register_forward_hook(self._hook(oa, ob, slot, modules[slot.name]))
            oa, ob = oa + na, ob + nb

    def _hook(self, oa: int, ob: int, slot: UNetSlot, layer: nn.Module):  # noqa: ANN202
        na, nb = self.rank * slot.columns, self.rank * slot.out

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            if self.lora_a is None or self.lora_b is None:  # the UNet called outside the peel signature
                return output
            flat_a, flat_b = self.lora_a[oa:oa + na], self.lora_b[ob:ob + nb]
            x = args[0]
            if slot.kind is SlotKind.LINEAR:  # x (..., in) -> (..., R) -> (..., out)
                a = flat_a.reshape(self.rank, slot.in_channels)
                b = flat_b.reshape(slot.out, self.rank)
                return output + torch.matmul(torch.matmul(x, a.transpose(0, 1)), b.transpose(0, 1))
            # conv: x (B, C_in, H, W) -> (B, R, H', W') with the layer's geometry -> 1x1 -> (B, out, H', W')
            a = flat_a.reshape(self.rank, slot.in_channels, *slot.kernel)
            b = flat_b.reshape(slot.out, self.rank, 1, 1)
            down = F.conv2d(x, a, stride=layer.stride, padding=layer.padding)
            return output + F.conv2d(down, b)
        return hook


class UNetPeelSignature(nn.Module):
    """The sd-family `denoise` signature plus flat `lora_a` (N_a,) and `lora_b` (N_b,) for one rank bucket:
    latent (1, C, h, w), t (1,), context (1, L, Ct) [, guidance (1,)] -> prediction (1, C, h, w)."""

    def __init__(self, signature: nn.Module, rank: int, slots: list[UNetSlot]) -> None:
        super().__init__()
        self.signature = signature  # converters.byom.rewrites.DenoiseSignature over the rewritten UNet
        self.flat = FlatUNetLoRA(signature.denoiser, rank, slots)

    def forward(self, latent: torch.Tensor, t: torch.Tensor, context: torch.Tensor, lora_a: torch.Tensor,
                lora_b: torch.Tensor, guidance: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        self.flat.lora_a, self.flat.lora_b = lora_a, lora_b
        try:
            return self.signature(latent, t, context, None, guidance)
        finally:
            self.flat.lora_a = self.flat.lora_b = None


def peel_inputs(base: Inputs, slots: list[UNetSlot], bucket: int, seed: int = GATE_SEED,
                zero: bool = False) -> dict[str, np.ndarray]:
    """The base denoise inputs plus seeded (or zero) flat `lora_a` / `lora_b` for one bucket."""
    n_a, n_b = flat_sizes([s.layer_slot() for s in slots], bucket)
    if zero:
        return {**base(), "lora_a": np.zeros(n_a, np.float32), "lora_b": np.zeros(n_b, np.float32)}
    return {**base(), "lora_a": gaussian(seed, 10 + bucket, (n_a,)) * np.float32(PEEL_INPUT_SCALE),
            "lora_b": gaussian(seed, 11 + bucket, (n_b,)) * np.float32(PEEL_INPUT_SCALE)}


def _peel_module(bucket: int, slots: list[UNetSlot], wrapped: nn.Module) -> nn.Module:
    """`denoise_r{bucket}` from the job's wrapped `denoise` module (top level: picklable)."""
    return UNetPeelSignature(wrapped, bucket, slots)


def add_unet_peels(plan: DiffusersPlan, directory: Path, buckets: tuple[int, ...] | str | None,
                   targets: tuple[str, ...] | str | None, threads: int = 2, strict: bool = True) -> DiffusersPlan:
    """The diffusers converter hook: the plan's denoise job gains the bucket signatures (and a key that says so),
    its manifest the `peels` section. ConversionError before any work for another family or bad targets
    (`strict`: a target that matches no layer too, for targets the user named)."""
    from converters.byom.diffusers import read_pipeline
    from converters.byom.families import detect_family

    buckets = parse_buckets(buckets)
    if not buckets:
        if targets is not None:
            raise ConversionError("--peel-targets goes with --peel-buckets")
        return plan
    pipe = read_pipeline(directory)
    family = detect_family(pipe).family.value
    if family != "sd":
        raise ConversionError(f"--peel-buckets with --diffusers supports the 'sd' family (UNet2DConditionModel, "
                              f"one CLIP encoder); this pipeline is {family!r}")
    names = parse_unet_targets(targets)
    slots = unet_layout(pipe["denoiser"].config, names, strict=strict and targets is not None)
    denoise = next(job for job in plan.jobs if job.name == DENOISE)
    extra = tuple(ExtraSignature(peel_signature(r), functools.partial(peel_inputs, denoise.inputs, slots, r),
                                 functools.partial(_peel_module, r, slots)) for r in buckets)
    key = job_key(base=denoise.key, peel_buckets=list(buckets), peel_targets=list(names), peel_format=PEEL_FORMAT)
    jobs = [replace(job, key=key, extra=job.extra + extra) if job.name == DENOISE else job for job in plan.jobs]
    manifest, threshold = plan.manifest, plan.threshold

    def manifest_with_peels(records: dict[str, dict[str, Any]], staging: Path) -> dict[str, Any]:
        zero = zero_peel_check(staging / f"{DENOISE}.tflite", denoise.inputs, slots, buckets, threshold, threads)
        return {**manifest(records, staging), PEELS_SECTION: peels_section(buckets, names, slots, zero)}

    return replace(plan, jobs=jobs, manifest=manifest_with_peels)


def peels_section(buckets: tuple[int, ...], targets: tuple[str, ...], slots: list[UNetSlot],
                  zero: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The manifest's `peels` section of a diffusers bundle (our format, UNet slots)."""
    layer_slots = [s.layer_slot() for s in slots]
    return {"buckets": list(buckets), "signatures": {str(r): peel_signature(r) for r in buckets},
            "inputs": ["lora_a", "lora_b"], "dtype": "float32", "targets": list(targets),
            "layout": [s.to_dict() for s in slots],
            "sizes": {str(r): list(flat_sizes(layer_slots, r)) for r in buckets}, "zero_check": zero}


def zero_peel_check(path: Path, base: Inputs, slots: list[UNetSlot], buckets: tuple[int, ...],
                    threshold: GateThreshold, threads: int = 2) -> dict[str, dict[str, float]]:
    """Every bucket signature with zero A/B vs `denoise` on the same inputs, both on LiteRT: ConversionError
    unless they agree as closely as the gate demands. Returns {signature: {max_abs_error, psnr_db}}."""
    reference = run_tflite(path, DENOISE, base(), threads)["prediction"]
    return {peel_signature(r): zero_result(r, reference, run_tflite(
        path, peel_signature(r), peel_inputs(base, slots, r, zero=True), threads)["prediction"], threshold)
        for r in buckets}


def check_unet_peels_section(bundle: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """A diffusers bundle's `peels` section checked against its UNet config and signatures (None if absent);
    BundleError names the first inconsistency."""
    from banana_sdk.peels.diffusers_layout import unet_slots_from_manifest

    section = manifest.get(PEELS_SECTION)
    if section is None:
        return None
    try:
        buckets = parse_buckets(tuple(section["buckets"]))
        slots = unet_slots_from_manifest(manifest)
        config = manifest["model"]["components"]["denoiser"]["config"]
        expected = unet_layout(config, tuple(section["targets"]))
    except (ConfigError, PeelError, ConversionError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle}: manifest section {PEELS_SECTION!r} is invalid ({exc})") from None
    if slots != expected:
        raise BundleError(f"{bundle}: the peel layout in the manifest does not match the UNet's config")
    check_bucket_inputs(bundle, manifest, section, buckets, [s.layer_slot() for s in slots])
    return section


def verify_unet_peels(bundle: Path, manifest: dict[str, Any], job: SignatureJob, threshold: GateThreshold,
                      threads: int = 2) -> dict[str, dict[str, Any]]:
    """`banana verify --diffusers` for the peel signatures of a planned denoise `job` (planned with the bundle's
    buckets and targets): the gate vs PyTorch with seeded A/B, and zero A/B == `denoise` on LiteRT."""
    from banana_sdk.peels.diffusers_layout import unet_slots_from_manifest
    from converters.signatures import torch_outputs

    section = check_unet_peels_section(bundle, manifest)
    if section is None or not job.extra:
        return {}
    path = Path(bundle) / manifest["signatures"][DENOISE]["file"]
    wrapped = job.wrap(job.load())
    results = {}
    for extra in job.extra:
        inputs = extra.inputs()
        result = gate_signature(extra.name, torch_outputs(extra.wrap(wrapped), inputs),
                                run_tflite(path, extra.name, inputs, threads), threshold)
        require(result)
        results[extra.name] = result.to_dict()
    zero_peel_check(path, job.inputs, unet_slots_from_manifest(manifest), tuple(section["buckets"]), threshold,
                    threads)
    return results

"""`banana convert --diffusers DIR`: a local diffusers pipeline folder -> a bundle through the generic engine.

Signatures keep our names (`text_encoder`, `denoise`, `vae_decode`); their I/O follows the pipeline family
(`converters/byom/families.py`, docs/DESIGN.md "BYOM bundles"). The tokenizer travels as `vocab.json` +
`merges.txt` (one vocabulary shared by every CLIP encoder of the family, each token input with its own padding),
the schedule table in the manifest. Everything about the folder is validated before the first weight is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from banana_sdk.bundle.reader import BUNDLE_FORMAT, BUNDLE_SCHEMA_VERSION, created_by
from banana_sdk.runtime.clip_tokenizer import MERGES_FILE, VOCAB_FILE, ClipBPETokenizer, merges_text
from banana_sdk.sampling.noise import gaussian
from converters.byom.conditioning import (
    ClipPairSignature,
    TextTimeDenoiseSignature,
    reference_clip_pair,
    reference_text_time_denoise,
)
from converters.byom.diffusers import PipelineFolder, read_pipeline, read_tokenizer
from converters.byom.families import FamilySpec, detect_family
from converters.byom.rewrites import (
    GUIDANCE_SCALE_GATE,
    DenoiseSignature,
    GuidanceMode,
    TextEncoderSignature,
    VAEDecodeSignature,
    apply_rewrites,
    describe_rewrites,
    guidance_mode,
    reference_decode,
    reference_denoise,
    reference_text,
)
from converters.byom.scheduler import SamplerPlan, plan_sampler
from converters.engine import (
    GATE_SEED,
    ManifestFn,
    SignatureJob,
    build_entry,
    bundle_files,
    convert_jobs,
    gate_threshold,
    job_key,
)
from converters.errors import ConversionError
from converters.preflight.plan import delegate_plan
from converters.recipes import GateThreshold, Quant, parse_quant, recipe_rules

GATE_PROMPT = "a photo of a red banana on a blue table"  # text-encoder gate prompt
MAX_IMAGE = 4096  # largest image side accepted


@dataclass(frozen=True)
class Geometry:
    size: int  # image side in pixels
    latent_channels: int  # channels of the latent
    downsample: int  # pixels per latent pixel along one side
    context_length: int  # tokens per prompt
    context_width: int  # width of the denoiser's text features (SDXL: both encoders' widths together)
    pooled_width: int = 0  # width of the pooled text features (SDXL: text_encoder_2's projection; 0: none)

    @property
    def latent_size(self) -> int:
        return self.size // self.downsample

    def time_ids(self) -> np.ndarray:
        """(1, 6) SDXL micro-conditioning: original size (H, W), crop top-left (0, 0), target size (H, W)."""
        return np.array([[self.size, self.size, 0, 0, self.size, self.size]], np.float32)


def _vae_downsample(pipe: PipelineFolder) -> int:
    return 2 ** (len(pipe["vae"].config.get("block_out_channels", [0] * 4)) - 1)


def _text_widths(pipe: PipelineFolder, spec: FamilySpec) -> tuple[int, int]:
    """(context width, pooled width) the family's text encoders give; ConversionError when the denoiser wants
    other widths."""
    den = pipe["denoiser"]
    widths = [int(pipe[role].config.get("hidden_size", 0)) for role in spec.encoders]
    context = sum(widths)
    pooled = int(pipe[spec.encoders[-1]].config.get("projection_dim", 0)) if spec.pooled else 0
    wanted = den.config.get("cross_attention_dim") if den.class_name == "UNet2DConditionModel" \
        else den.config.get("caption_channels")
    if wanted is not None and int(wanted) != context:
        what = " + ".join(str(w) for w in widths)
        raise ConversionError(f"{den.folder} expects {wanted}-wide text features but the text encoder gives {what}")
    if spec.time_ids:
        added = den.config.get("projection_class_embeddings_input_dim")
        time_dim = int(den.config.get("addition_time_embed_dim") or 0)
        if added is not None and int(added) != 6 * time_dim + pooled:
            raise ConversionError(f"{den.folder} expects {added} added-condition features but 6 time ids x "
                                  f"{time_dim} + pooled {pooled} give {6 * time_dim + pooled}; not one pipeline")
    return context, pooled


def plan_geometry(pipe: PipelineFolder, tokenizer: ClipBPETokenizer, size: int | None,
                  spec: FamilySpec | None = None) -> Geometry:
    """Image/latent/context sizes; ConversionError when components disagree or the size does not fit."""
    spec = detect_family(pipe) if spec is None else spec
    den, vae = pipe["denoiser"], pipe["vae"].config
    down = _vae_downsample(pipe)
    channels = int(den.config.get("in_channels", 4))
    if int(vae.get("latent_channels", channels)) != channels:
        raise ConversionError(f"{den.folder} takes {channels} latent channels but the vae has "
                              f"{vae.get('latent_channels')}; they are not one pipeline")
    width, pooled = _text_widths(pipe, spec)
    if den.class_name == "UNet2DConditionModel":
        unit = down * 2 ** (len(den.config.get("block_out_channels", [0])) - 1)
    else:
        unit = down * int(den.config.get("patch_size", 1))
    size = int(den.config.get("sample_size", 64)) * down if size is None else size
    if not isinstance(size, int) or size <= 0 or size % unit or size > MAX_IMAGE:
        raise ConversionError(f"image size must be a positive multiple of {unit} pixels up to {MAX_IMAGE} "
                              f"for this pipeline, got {size}")
    return Geometry(size, channels, down, tokenizer.context_length, width, pooled)


def read_tokenizers(pipe: PipelineFolder, spec: FamilySpec) -> dict[str, ClipBPETokenizer]:
    """The tokenizer of each `text_encoder` token input; ConversionError unless they share one vocabulary
    (the bundle carries one vocab.json + merges.txt; SDXL's two differ only in padding)."""
    out = {}
    for name, role, encoder in zip(spec.token_inputs, spec.tokenizers, spec.encoders, strict=True):
        positions = int(pipe[encoder].config.get("max_position_embeddings", 77))
        out[name] = read_tokenizer(pipe, positions, role)
    first = out[spec.token_inputs[0]]
    for name, role in zip(spec.token_inputs[1:], spec.tokenizers[1:], strict=True):
        other = out[name]
        if other.vocab != first.vocab or other.ranks != first.ranks:
            raise ConversionError(f"{pipe[role].folder}: its vocabulary or merges differ from "
                                  f"{pipe['tokenizer'].folder}'s; a bundle carries one CLIP vocabulary")
        if other.context_length != first.context_length:
            raise ConversionError(f"{pipe[role].folder}: {other.context_length} tokens per prompt but "
                                  f"{pipe['tokenizer'].folder} has {first.context_length}")
    return out


def gate_inputs(name: str, geo: Geometry, tokenizers: dict[str, ClipBPETokenizer] | ClipBPETokenizer,
                masked: bool, mode: GuidanceMode, seed: int = GATE_SEED, spec: FamilySpec | None = None,
                ) -> dict[str, np.ndarray]:
    """Seeded example inputs of one signature (export trace and gate)."""
    if isinstance(tokenizers, ClipBPETokenizer):
        tokenizers = {"tokens": tokenizers}
    lat = (1, geo.latent_channels, geo.latent_size, geo.latent_size)
    if name == "text_encoder":
        encoded = {n: tok.encode(GATE_PROMPT) for n, tok in tokenizers.items()}
        inputs = {n: enc.ids[None] for n, enc in encoded.items()}
        if masked:
            length = encoded["tokens"].length
            inputs["attention_mask"] = (np.arange(geo.context_length) < length).astype(np.float32)[None]
        return inputs
    if name == "vae_decode":
        return {"latent": gaussian(seed, 3, lat)}
    inputs = {"latent": gaussian(seed, 0, lat), "t": np.array([0.75], np.float32),
              "context": gaussian(seed, 1, (1, geo.context_length, geo.context_width))}
    if masked:
        inputs["context_mask"] = (np.arange(geo.context_length) < 12).astype(np.float32)[None]
    if spec is not None and spec.pooled:
        inputs["pooled"] = gaussian(seed, 2, (1, geo.pooled_width))
    if spec is not None and spec.time_ids:
        inputs["time_ids"] = geo.time_ids()
    if mode is GuidanceMode.EMBEDDED:
        inputs["guidance"] = np.array([GUIDANCE_SCALE_GATE], np.float32)
    return inputs


@dataclass(frozen=True)
class DiffusersPlan:
    """Everything the engine needs for one pipeline folder (built before any weight is loaded)."""

    quant: Quant  # recipe
    block_size: int  # INT4 block size
    threshold: GateThreshold  # gate
    jobs: list[SignatureJob]  # text_encoder, denoise, vae_decode
    extra_files: dict[str, bytes]  # tokenizer files
    manifest: ManifestFn  # (records, staging) -> manifest


def plan_diffusers(
    directory: Path, *, quant: str = "fp32", block_size: int = 32, size: int | None = None,
    min_psnr: float | None = None, min_cosine: float | None = None, name: str | None = None,
) -> DiffusersPlan:
    """Validate the folder and plan its three signature jobs; ConversionError on anything unsupported."""
    q = parse_quant(quant)
    recipe_rules(q, block_size)
    pipe = read_pipeline(directory)
    spec = detect_family(pipe)
    tokenizers = read_tokenizers(pipe, spec)
    tokenizer = tokenizers["tokens"]
    den = pipe["denoiser"]
    mode = guidance_mode(den.class_name, den.config)
    plan = plan_sampler(pipe, mode, spec.family)
    geo = plan_geometry(pipe, tokenizer, size, spec)
    masked = spec.masked
    threshold = gate_threshold(q, min_psnr, min_cosine)
    identity = f"diffusers:sha256:{pipe.weights_sha256()}"
    vae_cfg = pipe["vae"].config
    scaling, shift = float(vae_cfg.get("scaling_factor", 1.0)), float(vae_cfg.get("shift_factor") or 0.0)
    timesteps = plan.schedule.num_train_timesteps
    uncond = gaussian(GATE_SEED, 9, (1, geo.context_length, geo.context_width))
    guidance_dim = den.config.get("time_cond_proj_dim") if mode is GuidanceMode.EMBEDDED else None

    def job(sig: str, load, wrapper, reference) -> SignatureJob:  # noqa: ANN001
        key = job_key(source=identity, signature=sig, quant=q.value, block=block_size if q is Quant.INT4 else 0,
                      size=geo.size, gate=[threshold.min_psnr_db, threshold.min_cosine], masked=masked,
                      guidance=mode.value, context=geo.context_length)
        return SignatureJob(sig, key, lambda: gate_inputs(sig, geo, tokenizers, masked, mode, spec=spec),
                            load, lambda m: wrapper(apply_rewrites(m)), reference, describe_rewrites)

    if spec.pooled:  # SDXL: both encoders in one signature, the UNet's added conditions as inputs
        pooled_uncond = {"context": uncond, "pooled": gaussian(GATE_SEED, 10, (1, geo.pooled_width))}
        text = job("text_encoder", lambda: nn.ModuleDict({r: pipe.load(r) for r in spec.encoders}),
                   ClipPairSignature, reference_clip_pair)
        denoise = job("denoise", lambda: pipe.load("denoiser"), lambda m: TextTimeDenoiseSignature(m, timesteps),
                      lambda m, x: reference_text_time_denoise(m, x, timesteps, pooled_uncond))
    else:
        text = job("text_encoder", lambda: pipe.load("text_encoder"), lambda m: TextEncoderSignature(m, masked),
                   lambda m, x: reference_text(m, x, masked))
        denoise = job(
            "denoise", lambda: pipe.load("denoiser"),
            lambda m: DenoiseSignature(m, den.class_name, timesteps, geo.latent_channels, guidance_dim, geo.size),
            lambda m, x: reference_denoise(m, den.class_name, x, timesteps, geo.latent_channels, mode, uncond,
                                           geo.size))
    decode = job("vae_decode", lambda: pipe.load("vae"), lambda m: VAEDecodeSignature(m, scaling, shift),
                 lambda m, x: reference_decode(m, x, scaling, shift))
    files = {VOCAB_FILE: _vocab_json(tokenizer), MERGES_FILE: merges_text(list(tokenizer.ranks)).encode()}

    def manifest(records: dict[str, dict[str, Any]], staging: Path) -> dict[str, Any]:
        return _manifest(pipe, spec, identity, name, q, block_size, geo, plan, tokenizers, records, staging)

    return DiffusersPlan(q, block_size, threshold, [text, denoise, decode], files, manifest)


def convert_diffusers(
    out: Path, directory: Path, *, quant: str = "fp32", block_size: int = 32, size: int | None = None,
    force: bool = False, min_psnr: float | None = None, min_cosine: float | None = None, threads: int = 2,
    progress: bool = False, name: str | None = None,
) -> Path:
    """Convert the pipeline folder `directory` to a bundle at `out`; returns `out`."""
    plan = plan_diffusers(directory, quant=quant, block_size=block_size, size=size, min_psnr=min_psnr,
                          min_cosine=min_cosine, name=name)
    return convert_jobs(Path(out), plan.jobs, plan.quant, plan.block_size, plan.threshold, plan.manifest,
                        extra_files=plan.extra_files, force=force, threads=threads, progress=progress)


def verify_diffusers(bundle: Path, directory: Path, threads: int = 2) -> dict[str, dict[str, Any]]:
    """Re-run the gate of a diffusers bundle against the pipeline folder (its own forward); ConversionError
    names the first signature that fails. Returns the gate results by signature."""
    from banana_sdk.bundle.reader import load_manifest
    from converters.gate import gate_signature, require, run_tflite
    from converters.recipes import GateThreshold

    manifest = load_manifest(bundle)
    if manifest["model"].get("kind") != "diffusers":
        raise ConversionError(f"{bundle} was not converted from a diffusers pipeline")
    quant = manifest["quantization"]
    plan = plan_diffusers(directory, quant=quant["recipe"], block_size=quant.get("block_size") or 32,
                          size=int(manifest["image"]["size"]))
    results = {}
    for job in plan.jobs:
        sig = manifest["signatures"].get(job.name)
        if sig is None:
            raise ConversionError(f"{bundle}: manifest lacks signature {job.name!r}")
        stored = manifest.get("gate", {}).get(job.name, {})
        threshold = GateThreshold(stored.get("threshold_psnr_db", plan.threshold.min_psnr_db),
                                  stored.get("threshold_cosine", plan.threshold.min_cosine))
        inputs = job.inputs()
        reference = job.reference(job.load(), inputs)
        result = gate_signature(job.name, reference, run_tflite(Path(bundle) / sig["file"], job.name, inputs,
                                                                 threads), threshold)
        require(result)
        results[job.name] = result.to_dict()
    return results


def _vocab_json(tokenizer: ClipBPETokenizer) -> bytes:
    import json

    return json.dumps(tokenizer.vocab, ensure_ascii=False, sort_keys=False).encode("utf-8")


def _manifest(pipe: PipelineFolder, spec: FamilySpec, identity: str, name: str | None, q: Quant, block: int,
              geo: Geometry, plan: SamplerPlan, tokenizers: dict[str, ClipBPETokenizer],
              records: dict[str, dict[str, Any]], staging: Path) -> dict[str, Any]:
    from banana_sdk.sampling.registry import get_sampler

    sampler = get_sampler(plan.kind, plan.schedule)
    build = {n: {**build_entry(r), "notes": r.get("notes", {})} for n, r in records.items()}
    constants = {"time_ids": geo.time_ids().tolist()} if spec.time_ids else {}
    return {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "format": BUNDLE_FORMAT,
        "created_by": created_by(),
        "model": {"kind": "diffusers", "name": name or pipe.path.resolve().name, "pipeline": pipe.pipeline_class,
                  "family": spec.family.value,
                  "components": {role: {"folder": c.folder, "class": c.class_name, "config": c.config}
                                 for role, c in pipe.components.items()},
                  "weights_sha256": identity.rsplit(":", 1)[1], "source": identity},
        "quantization": {"recipe": q.value, "block_size": block if q is Quant.INT4 else None,
                         "per_signature": {n: r["storage"] for n, r in records.items()}},
        "image": {"size": geo.size, "latent_channels": geo.latent_channels, "latent_size": geo.latent_size,
                  "downsample": geo.downsample},
        "sampler": {"kind": plan.kind, "default_steps": plan.default_steps, "min_steps": sampler.min_steps,
                    "max_steps": plan.max_steps or sampler.max_steps, "shift": 1.0,
                    "guidance_scale": plan.guidance_scale, "guidance": plan.guidance.value,
                    "prediction": plan.schedule.prediction.value,
                    "timestep_scale": float(plan.schedule.num_train_timesteps),
                    "scheduler_class": plan.scheduler_class, "schedule": plan.schedule.to_dict()},
        "tokenizer": {**tokenizers["tokens"].spec(),
                      "inputs": {n: {"pad_token": t.spec()["pad_token"], "pad_id": t.pad_id}
                                 for n, t in tokenizers.items()}},
        "conditioning": {"unconditional": spec.unconditional.value, "constants": constants},
        "signatures": {n: r["io"] for n, r in records.items()},
        "gate": {n: r["gate"] for n, r in records.items()},
        "delegate_plan": delegate_plan(staging),
        "build": build,
        "files": bundle_files(staging),
    }

"""`banana convert --diffusers DIR`: a local diffusers pipeline folder -> a bundle through the generic engine.

Signatures keep our names (`text_encoder`, `denoise`, `vae_decode`); their I/O follows the pipeline family
(`converters/byom/families.py`, docs/DESIGN.md "BYOM bundles"). CLIP tokenizers travel as `vocab.json` +
`merges.txt` (one vocabulary shared by every CLIP encoder of the family, each token input with its own padding),
T5's as its `spiece.model`, Gemma's (Sana) as its `tokenizer.model`; the schedule (a DDPM table or a flow-matching
grid) in the manifest. Everything about the folder is validated before the first weight is loaded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from banana_sdk.bundle.reader import BUNDLE_FORMAT, BUNDLE_SCHEMA_VERSION, created_by
from banana_sdk.runtime.clip_tokenizer import MERGES_FILE, VOCAB_FILE, ClipBPETokenizer, merges_text
from banana_sdk.runtime.sentencepiece_tokenizer import SentencePieceUnigramTokenizer
from banana_sdk.runtime.text_tokenizers import PromptTokenizer
from banana_sdk.sampling.noise import gaussian
from converters.byom.budget import GIB, PartCount, SignatureEstimate, check_budget, count_parameters, estimate
from converters.byom.conditioning import (
    ClipPairSignature,
    TextTimeDenoiseSignature,
    reference_clip_pair,
    reference_text_time_denoise,
)
from converters.byom.diffusers import (
    GEMMA_TOKENIZERS,
    HINTS,
    T5_TOKENIZERS,
    PipelineFolder,
    call_default,
    read_pipeline,
    read_tokenizer,
)
from converters.byom.families import Family, FamilySpec, detect_family
from converters.byom.flux import (
    DEFAULT_SAMPLE_SIZE,
    PACK,
    FluxDenoiseSignature,
    FluxTextSignature,
    apply_flux_rewrites,
    describe_flux_rewrites,
    flux_widths,
    latent_channels,
    plan_flux_sampler,
    reference_flux_denoise,
    reference_flux_text,
)
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
from converters.byom.sana import (
    SanaDenoiseSignature,
    SanaTextSignature,
    check_sana,
    context_rows,
    describe_sana_rewrites,
    read_gemma_tokenizer,
    reference_sana_denoise,
    reference_sana_text,
)
from converters.byom.scheduler import SamplerPlan, plan_sampler
from converters.byom.sd3 import SD3DenoiseSignature, SD3TextSignature, reference_sd3_denoise, reference_sd3_text
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
T5_LENGTH = 256  # T5 tokens per prompt when the pipeline's __call__ names no max_sequence_length


@dataclass(frozen=True)
class Geometry:
    size: int  # image side in pixels
    latent_channels: int  # channels of the latent
    downsample: int  # pixels per latent pixel along one side
    context_length: int  # rows of the denoiser's text features (SD3: 77 CLIP rows + the T5 rows; else tokens)
    context_width: int  # width of the denoiser's text features (SDXL: both encoders' widths together; SD3: joint)
    pooled_width: int = 0  # width of the pooled text features (SDXL: text_encoder_2's projection; SD3: both
    # ^ CLIPs' projections; 0: none)

    @property
    def latent_size(self) -> int:
        return self.size // self.downsample

    def time_ids(self) -> np.ndarray:
        """(1, 6) SDXL micro-conditioning: original size (H, W), crop top-left (0, 0), target size (H, W)."""
        return np.array([[self.size, self.size, 0, 0, self.size, self.size]], np.float32)


def _vae_downsample(pipe: PipelineFolder) -> int:
    """Pixels per latent pixel: 2^(levels - 1) of the VAE (AutoencoderKL 8x, Sana's AutoencoderDC 32x)."""
    cfg = pipe["vae"].config
    return 2 ** (len(cfg.get("block_out_channels") or cfg.get("encoder_block_out_channels") or [0] * 4) - 1)


def _width(pipe: PipelineFolder, role: str) -> int:
    """Hidden width of a text encoder (CLIP `hidden_size`, T5 `d_model`)."""
    cfg = pipe[role].config
    return int(cfg.get("hidden_size") or cfg.get("d_model") or 0)


def _text_widths(pipe: PipelineFolder, spec: FamilySpec) -> tuple[int, int]:
    """(context width, pooled width) the family's text encoders give; ConversionError when the denoiser wants
    other widths."""
    den = pipe["denoiser"]
    if spec.family is Family.SD3:
        return _sd3_widths(pipe, spec)
    if spec.family is Family.FLUX:
        return flux_widths(pipe)
    widths = [_width(pipe, role) for role in spec.encoders]
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


def _sd3_widths(pipe: PipelineFolder, spec: FamilySpec) -> tuple[int, int]:
    """SD3: context width = joint_attention_dim (the CLIP states are padded or cut to it; T5 must give it),
    pooled = both CLIP projections side by side (must be pooled_projection_dim)."""
    den = pipe["denoiser"]
    joint = int(den.config.get("joint_attention_dim", 0))
    pooled = sum(int(pipe[role].config.get("projection_dim", 0)) for role in spec.encoders[:2])
    wanted = int(den.config.get("pooled_projection_dim", pooled))
    if wanted != pooled:
        raise ConversionError(f"{den.folder} expects {wanted}-wide pooled text but the two CLIP projections give "
                              f"{pooled}; not one pipeline")
    if len(spec.encoders) == 3 and _width(pipe, spec.encoders[2]) != joint:
        raise ConversionError(f"{den.folder} expects {joint}-wide text features (joint_attention_dim) but "
                              f"{pipe[spec.encoders[2]].folder} gives {_width(pipe, spec.encoders[2])}")
    return joint, pooled


def t5_length(pipe: PipelineFolder) -> int:
    """T5 tokens per prompt: the pipeline's `max_sequence_length` default (PixArt-alpha 120, SD3 256)."""
    length = call_default(pipe.pipeline_class, "max_sequence_length")
    return length if isinstance(length, int) and length > 0 else T5_LENGTH


def plan_geometry(pipe: PipelineFolder, tokenizer: PromptTokenizer, size: int | None,
                  spec: FamilySpec | None = None) -> Geometry:
    """Image/latent/context sizes; ConversionError when components disagree or the size does not fit."""
    spec = detect_family(pipe) if spec is None else spec
    den, vae = pipe["denoiser"], pipe["vae"].config
    down = _vae_downsample(pipe)
    flux = spec.family is Family.FLUX  # 2x2 latent patches packed into the transformer's channels
    channels = latent_channels(pipe) if flux else int(den.config.get("in_channels", 4))
    if int(vae.get("latent_channels", channels)) != channels:
        raise ConversionError(f"{den.folder} takes {channels} latent channels but the vae has "
                              f"{vae.get('latent_channels')}; they are not one pipeline")
    width, pooled = _text_widths(pipe, spec)
    if den.class_name == "UNet2DConditionModel":
        unit = down * 2 ** (len(den.config.get("block_out_channels", [0])) - 1)
    else:
        unit = down * (PACK if flux else int(den.config.get("patch_size", 1)))
    sample = DEFAULT_SAMPLE_SIZE if flux else int(den.config.get("sample_size", 64))  # FluxPipeline's own default
    size = sample * down if size is None else size
    if not isinstance(size, int) or size <= 0 or size % unit or size > MAX_IMAGE:
        raise ConversionError(f"image size must be a positive multiple of {unit} pixels up to {MAX_IMAGE} "
                              f"for this pipeline, got {size}")
    rows = tokenizer.context_length + (t5_length(pipe) if spec.family is Family.SD3 else 0)
    if spec.family is Family.SANA:  # rows [0] + the last R - 1 of the prefixed prompt's L (converters/byom/sana.py)
        rows = t5_length(pipe)
    return Geometry(size, channels, down, t5_length(pipe) if flux else rows, width, pooled)


def read_tokenizers(pipe: PipelineFolder, spec: FamilySpec) -> dict[str, PromptTokenizer]:
    """The tokenizer of each `text_encoder` token input; ConversionError unless the CLIP ones share one vocabulary
    (the bundle carries one vocab.json + merges.txt; SDXL's two differ only in padding)."""
    out = {}
    for name, role, encoder in zip(spec.token_inputs, spec.tokenizers, spec.encoders, strict=True):
        if pipe[role].class_name in T5_TOKENIZERS:
            out[name] = read_tokenizer(pipe, t5_length(pipe), role, spec.preprocess)
        elif pipe[role].class_name in GEMMA_TOKENIZERS:
            out[name] = read_gemma_tokenizer(pipe, t5_length(pipe), spec.preprocess, role)
        else:
            positions = int(pipe[encoder].config.get("max_position_embeddings", 77))
            out[name] = read_tokenizer(pipe, positions, role)
    clips = [(name, role) for name, role in zip(spec.token_inputs, spec.tokenizers, strict=True)
             if isinstance(out[name], ClipBPETokenizer)]
    for name, role in clips[1:]:
        first, other, first_role = out[clips[0][0]], out[name], clips[0][1]
        if other.vocab != first.vocab or other.ranks != first.ranks:
            raise ConversionError(f"{pipe[role].folder}: its vocabulary or merges differ from "
                                  f"{pipe[first_role].folder}'s; a bundle carries one CLIP vocabulary")
        if other.context_length != first.context_length:
            raise ConversionError(f"{pipe[role].folder}: {other.context_length} tokens per prompt but "
                                  f"{pipe[first_role].folder} has {first.context_length}")
    return out


def tokenizer_files(pipe: PipelineFolder, spec: FamilySpec,
                    tokenizers: dict[str, PromptTokenizer]) -> dict[str, bytes]:
    """The files the bundle's tokenizers read: vocab.json + merges.txt (CLIP), spiece.model (T5), tokenizer.model
    (Gemma)."""
    files = {}
    for name, role in zip(spec.token_inputs, spec.tokenizers, strict=True):
        tok = tokenizers[name]
        if isinstance(tok, ClipBPETokenizer):
            files[VOCAB_FILE] = _vocab_json(tok)
            files[MERGES_FILE] = merges_text(list(tok.ranks)).encode()
        else:
            model = tok.spec()["model_file"]  # the SentencePiece model, under the name the folder gives it
            files[model] = (pipe.path / pipe[role].folder / model).read_bytes()
    return files


def tokenizer_section(tokenizers: dict[str, PromptTokenizer]) -> dict[str, Any]:
    """The manifest `tokenizer`: the spec of `tokens`, and per token input its padding (same kind as `tokens`)
    or its own whole spec (another kind: SD3's T5)."""
    first = tokenizers["tokens"]
    spec = first.spec()
    inputs = {}
    for name, tok in tokenizers.items():
        if type(tok) is type(first):
            inputs[name] = {"pad_token": tok.spec()["pad_token"], "pad_id": tok.pad_id}
        else:
            inputs[name] = tok.spec()
    return {**spec, "inputs": inputs}


def gate_inputs(name: str, geo: Geometry, tokenizers: dict[str, PromptTokenizer] | PromptTokenizer,
                masked: bool, mode: GuidanceMode, seed: int = GATE_SEED, spec: FamilySpec | None = None,
                ) -> dict[str, np.ndarray]:
    """Seeded example inputs of one signature (export trace and gate)."""
    if isinstance(tokenizers, (ClipBPETokenizer, SentencePieceUnigramTokenizer)):
        tokenizers = {"tokens": tokenizers}
    lat = (1, geo.latent_channels, geo.latent_size, geo.latent_size)
    if name == "text_encoder":
        encoded = {n: tok.encode(GATE_PROMPT) for n, tok in tokenizers.items()}
        inputs = {n: enc.ids[None] for n, enc in encoded.items()}
        if masked:
            length = encoded["tokens"].length
            context = tokenizers["tokens"].context_length
            inputs["attention_mask"] = (np.arange(context) < length).astype(np.float32)[None]
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
    estimates: dict[str, SignatureEstimate]  # each signature's memory estimate (converters/byom/budget.py)


def plan_diffusers(
    directory: Path, *, quant: str = "fp32", block_size: int = 32, size: int | None = None,
    min_psnr: float | None = None, min_cosine: float | None = None, name: str | None = None,
    max_memory_gib: float | None = None, in_child: bool = False,
) -> DiffusersPlan:
    """Validate the folder and plan its three signature jobs; ConversionError on anything unsupported, or on a
    signature whose estimated peak memory exceeds `max_memory_gib` (None: this machine's memory less headroom).
    `in_child`: planned again inside an isolated export (no budget, no weights hash)."""
    q = parse_quant(quant)
    recipe_rules(q, block_size)
    pipe = read_pipeline(directory)
    spec = detect_family(pipe)
    if spec.family is Family.SANA:
        check_sana(pipe)
    tokenizers = read_tokenizers(pipe, spec)
    tokenizer = tokenizers["tokens"]
    den = pipe["denoiser"]
    mode = guidance_mode(den.class_name, den.config)
    geo = plan_geometry(pipe, tokenizer, size, spec)
    plan = plan_flux_sampler(pipe, mode, geo.latent_size) if spec.family is Family.FLUX \
        else plan_sampler(pipe, mode, spec.family)  # Flux's shift depends on the image size
    estimates = signature_estimates(pipe, spec, q, geo.size)
    if not in_child:  # before any weight is read
        check_budget(list(estimates.values()), None if max_memory_gib is None else int(max_memory_gib * GIB),
                     BUDGET_HINTS)
    masked = spec.masked
    threshold = gate_threshold(q, min_psnr, min_cosine)
    identity = "in-child" if in_child else f"diffusers:sha256:{pipe.weights_sha256()}"
    child_options = dict(quant=quant, block_size=block_size, size=size, min_psnr=min_psnr, min_cosine=min_cosine,
                         name=name, in_child=True)
    vae_cfg = pipe["vae"].config
    scaling, shift = float(vae_cfg.get("scaling_factor", 1.0)), float(vae_cfg.get("shift_factor") or 0.0)
    timesteps = plan.schedule.num_train_timesteps
    uncond = gaussian(GATE_SEED, 9, (1, geo.context_length, geo.context_width))
    guidance_dim = den.config.get("time_cond_proj_dim") if mode is GuidanceMode.EMBEDDED else None

    def job(sig: str, load, wrapper, reference) -> SignatureJob:  # noqa: ANN001
        key = job_key(source=identity, signature=sig, quant=q.value, block=block_size if q is Quant.INT4 else 0,
                      size=geo.size, gate=[threshold.min_psnr_db, threshold.min_cosine], masked=masked,
                      guidance=mode.value, context=geo.context_length)
        isolated = (functools.partial(isolated_signature, str(directory), child_options, sig)
                    if estimates[sig].isolated else None)
        return SignatureJob(sig, key, lambda: gate_inputs(sig, geo, tokenizers, masked, mode, spec=spec),
                            load, lambda m: wrapper(apply_rewrites(m)), reference, describe_rewrites,
                            isolated=isolated, isolated_reference=True)

    if spec.family is Family.FLUX:  # CLIP pooled + T5 in one signature; packing, ids, RoPE tables inside denoise
        rows, side = geo.context_length, geo.latent_size
        text = job("text_encoder", lambda: nn.ModuleDict({r: pipe.load(r) for r in spec.encoders}),
                   FluxTextSignature, reference_flux_text)
        denoise = replace(job(
            "denoise", lambda: pipe.load("denoiser"),
            lambda m: FluxDenoiseSignature(apply_flux_rewrites(m, rows, side), timesteps, rows, side),
            lambda m, x: reference_flux_denoise(m, x, timesteps, geo.downsample)), notes=describe_flux_rewrites)
    elif spec.family is Family.SANA:  # Gemma2 (masked, prefixed, rows selected in the graph), linear-attention DiT
        length, rows = tokenizer.context_length, geo.context_length
        text = job("text_encoder", lambda: pipe.load("text_encoder"), lambda m: SanaTextSignature(m, length, rows),
                   lambda m, x: reference_sana_text(m, x, rows))
        text = replace(text, notes=describe_sana_rewrites,  # its length L follows the tokenizer (prefix, BOS)
                       key=job_key(job=text.key, tokenizer=tokenizer.spec()))
        denoise = replace(job("denoise", lambda: pipe.load("denoiser"), lambda m: SanaDenoiseSignature(m, timesteps),
                              lambda m, x: reference_sana_denoise(m, x, timesteps, uncond)),
                          notes=describe_sana_rewrites)
    elif spec.family is Family.SD3:  # CLIP pair (+ T5) in one signature, the MMDiT's pooled text as an input
        pooled_uncond = {"context": uncond, "pooled": gaussian(GATE_SEED, 10, (1, geo.pooled_width))}
        rows = geo.context_length - tokenizer.context_length
        text = job("text_encoder", lambda: nn.ModuleDict({r: pipe.load(r) for r in spec.encoders}),
                   lambda m: SD3TextSignature(m, geo.context_width, rows),
                   lambda m, x: reference_sd3_text(m, x, geo.context_width, rows))
        denoise = job("denoise", lambda: pipe.load("denoiser"), lambda m: SD3DenoiseSignature(m, timesteps),
                      lambda m, x: reference_sd3_denoise(m, x, timesteps, pooled_uncond))
    elif spec.pooled:  # SDXL: both encoders in one signature, the UNet's added conditions as inputs
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
    files = tokenizer_files(pipe, spec, tokenizers)

    def manifest(records: dict[str, dict[str, Any]], staging: Path) -> dict[str, Any]:
        return _manifest(pipe, spec, identity, name, q, block_size, geo, plan, tokenizers, records, staging)

    return DiffusersPlan(q, block_size, threshold, [text, denoise, decode], files, manifest, estimates)


def isolated_signature(directory: str, options: dict[str, Any], signature: str,
                       inputs: dict[str, np.ndarray]) -> tuple[nn.Module, dict[str, np.ndarray] | None]:
    """In an isolated export's child process: (the signature's wrapped module, the gate's reference on `inputs`:
    the model's own forward, computed before the export rewrites touch it), planned again from the folder."""
    job = next(j for j in plan_diffusers(Path(directory), **options).jobs if j.name == signature)
    bare = job.load()
    own = job.reference(bare, inputs) if job.reference is not None else None
    return job.wrap(bare), own


SIGNATURE_ROLES = {"denoise": ("denoiser",), "vae_decode": ("vae",)}  # the text encoder: the family's encoders
BUDGET_HINTS = {"text_encoder_3": HINTS["text_encoder_3"]}  # what makes a signature fit, by role


def signature_estimates(pipe: PipelineFolder, spec: FamilySpec, q: Quant,
                        size: int = 0) -> dict[str, SignatureEstimate]:
    """Each signature's memory estimate from its components' configs and the image side `size` in pixels
    (converters/byom/budget.py)."""
    roles = {"text_encoder": spec.encoders, **SIGNATURE_ROLES}
    out = {}
    for sig, parts in roles.items():
        counts = tuple(PartCount(pipe[r].folder, pipe[r].class_name,
                                 count_parameters(pipe[r].library, pipe[r].class_name, pipe[r].config))
                       for r in parts)
        out[sig] = estimate(sig, counts, q, size * size if sig == "vae_decode" else 0)
    return out


def convert_diffusers(
    out: Path, directory: Path, *, quant: str = "fp32", block_size: int = 32, size: int | None = None,
    force: bool = False, min_psnr: float | None = None, min_cosine: float | None = None, threads: int = 2,
    progress: bool = False, name: str | None = None, max_memory_gib: float | None = None,
    peel_buckets: tuple[int, ...] | str | None = None, peel_targets: tuple[str, ...] | str | None = None,
) -> Path:
    """Convert the pipeline folder `directory` to a bundle at `out`; returns `out`. `peel_buckets` (sd family):
    runtime-peel signatures `denoise_r{R}` over the UNet layers `peel_targets` names (converters/byom/peels.py)."""
    from converters.byom.peels import add_unet_peels

    plan = plan_diffusers(directory, quant=quant, block_size=block_size, size=size, min_psnr=min_psnr,
                          min_cosine=min_cosine, name=name, max_memory_gib=max_memory_gib)
    plan = add_unet_peels(plan, directory, peel_buckets, peel_targets, threads)
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
    peels = manifest.get("peels") or {}
    if peels:  # the runtime-peel signatures of denoise.tflite (converters/byom/peels.py)
        from converters.byom.peels import add_unet_peels, verify_unet_peels

        plan = add_unet_peels(plan, directory, tuple(peels.get("buckets", ())), peels.get("targets"),
                              threads, strict=False)
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
        if job.extra:
            results.update(verify_unet_peels(Path(bundle), manifest, job, threshold, threads))
    return results


def _vocab_json(tokenizer: ClipBPETokenizer) -> bytes:
    import json

    return json.dumps(tokenizer.vocab, ensure_ascii=False, sort_keys=False).encode("utf-8")


def _manifest(pipe: PipelineFolder, spec: FamilySpec, identity: str, name: str | None, q: Quant, block: int,
              geo: Geometry, plan: SamplerPlan, tokenizers: dict[str, PromptTokenizer],
              records: dict[str, dict[str, Any]], staging: Path) -> dict[str, Any]:
    from banana_sdk.sampling.flow_match import FlowMatchSchedule
    from banana_sdk.sampling.registry import get_sampler

    sampler = get_sampler(plan.kind, plan.schedule)
    flow = isinstance(plan.schedule, FlowMatchSchedule)  # flow matching: the velocity eps - x0, a static shift
    build = {n: {**build_entry(r), "notes": r.get("notes", {})} for n, r in records.items()}
    constants = {"time_ids": geo.time_ids().tolist()} if spec.time_ids else {}
    rows = {"context_rows": context_rows(tokenizers["tokens"].context_length, geo.context_length)} \
        if spec.family is Family.SANA else {}  # the encoder positions `context` (and so context_mask) holds
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
                    "max_steps": plan.max_steps or sampler.max_steps, "shift": plan.schedule.shift if flow else 1.0,
                    "guidance_scale": plan.guidance_scale, "guidance": plan.guidance.value,
                    "prediction": "velocity" if flow else plan.schedule.prediction.value,
                    "timestep_scale": float(plan.schedule.num_train_timesteps),
                    "scheduler_class": plan.scheduler_class, "schedule": plan.schedule.to_dict()},
        "tokenizer": tokenizer_section(tokenizers),
        "conditioning": {"unconditional": spec.unconditional.value, "constants": constants, **rows},
        "signatures": {n: r["io"] for n, r in records.items()},
        "gate": {n: r["gate"] for n, r in records.items()},
        "delegate_plan": delegate_plan(staging),
        "build": build,
        "files": bundle_files(staging),
    }

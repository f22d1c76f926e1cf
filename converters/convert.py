"""`banana convert` for our model family: a preset or checkpoint -> signature jobs -> `converters.engine`.

Plans one job per signature of `converters.signatures` (plus runtime-peel, tile and preview signatures on request)
and the bundle manifest; the engine converts, gates and writes them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from banana_sdk import __version__
from banana_sdk.bundle.reader import BUNDLE_FORMAT, BUNDLE_SCHEMA_VERSION, created_by
from banana_sdk.checkpoint import int4_block_size, load_component, read_checkpoint_config, weights_hash
from banana_sdk.config import ModelConfig, check_image_size
from banana_sdk.errors import ConfigError
from banana_sdk.models.model import build_component
from banana_sdk.peels.config import DENOISER_TARGETS
from banana_sdk.presets import get_preset
from banana_sdk.sampling.registry import get_sampler
from banana_sdk.tokenizer import Tokenizer, vocabulary
from banana_sdk.upscale.config import default_tiles
from converters.engine import (
    GATE_SEED,
    ManifestFn,
    SignatureJob,
    build_entry,
    bundle_files,
    check_output_dir,
    convert_jobs,
    gate_threshold,
)
from converters.peels import parse_buckets, parse_targets, with_peel_buckets
from converters.preflight.plan import delegate_plan
from converters.preview import with_preview
from converters.recipes import DEFAULT_BLOCK_SIZE, GateThreshold, Quant, parse_quant, recipe_rules
from converters.rewrites import export_rewrite
from converters.signatures import SIGNATURES, SignatureSpec, torch_outputs
from converters.tiles import with_tiles

ISOLATE_PARAMS = 200_000_000  # components above this export in a child process


@dataclass(frozen=True)
class Source:
    config: ModelConfig  # the model's config
    identity: str  # weights identity: checkpoint sha256 or "preset:<name>:seed<k>"
    preset: str | None  # preset name (random weights) or None
    model_dir: Path | None  # checkpoint dir or None
    seed: int = 0  # random-weight seed for presets
    block_size: int = DEFAULT_BLOCK_SIZE  # INT4 block size without --block-size: the checkpoint's DQAT one

    def component(self, name: str):  # noqa: ANN201
        if self.model_dir is not None:
            return load_component(self.model_dir, name)
        return build_component(self.config, name, "cpu", self.seed)


def resolve_source(preset: str | None, model_dir: Path | None, seed: int = 0) -> Source:
    if (preset is None) == (model_dir is None):
        raise ConfigError("give exactly one of --preset or --model")
    if preset is not None:
        config = get_preset(preset)
        return Source(config, f"preset:{preset}:seed{seed}:{__version__}", preset, None, seed)
    config, extra = read_checkpoint_config(model_dir)
    if not (Path(model_dir) / "model.safetensors").is_file():
        raise ConfigError(f"{model_dir}/model.safetensors is missing")
    return Source(config, f"sha256:{weights_hash(model_dir)}", None, Path(model_dir),
                  block_size=int4_block_size(extra))




def convert(
    out: Path, *, preset: str | None = None, model_dir: Path | None = None, quant: str = "fp32",
    block_size: int | None = None, size: int | None = None, force: bool = False, min_psnr: float | None = None,
    min_cosine: float | None = None, threads: int = 2, progress: bool = False, seed: int = 0,
    upscaler: Path | None = None, peel_buckets: tuple[int, ...] | str | None = None,
    peel_targets: tuple[str, ...] | str | None = None, preview: Path | None = None,
) -> Path:
    """Convert a preset (random weights) or checkpoint dir to a bundle at `out`; returns `out`.

    With `upscaler` (an upscaler dir, e.g. banana_sdk/weights/upscaler) the bundle also carries the fixed-shape
    tile signatures and the manifest's `upscale` section (4K output, `converters.tiles`). With `peel_buckets`
    (e.g. (4, 8, 16)) `denoise.tflite` also holds the runtime-peel signatures `denoise_r4`, ... and the
    manifest a `peels` section (`converters.peels`); `peel_targets` (e.g. "attn.o,cross.o,mlp.fc2")
    restricts their low-rank path to those linears of every block (default: all ten), which is what it costs.
    With `preview` (a preview decoder dir distilled from this model's VAE, e.g. banana_sdk/weights/preview for
    the demo weights) the bundle also carries `preview_decode.tflite` and the manifest a `preview` section
    (`converters.preview`). `block_size` None: the INT4 block size the checkpoint was DQAT-trained for (its
    fake-quant matches that recipe bit for bit), else `DEFAULT_BLOCK_SIZE`."""
    buckets = parse_buckets(peel_buckets)
    targets = parse_targets(peel_targets)
    if peel_targets is not None and not buckets:
        raise ConfigError("--peel-targets goes with --peel-buckets")
    out = Path(out)
    q = parse_quant(quant)
    if block_size is not None:
        recipe_rules(q, block_size)  # rejects bad block sizes before any work
    source = resolve_source(preset, model_dir, seed)
    if block_size is None:
        block_size = source.block_size
        recipe_rules(q, block_size)  # a block size recorded by training, checked like a given one
    cfg = source.config
    size = cfg.image_size if size is None else size
    check_image_size(cfg, size)
    check_output_dir(out, force)
    threshold = gate_threshold(q, min_psnr, min_cosine)
    jobs = [_preset_job(source, spec, q, block_size, size, threshold, buckets, targets)
            for spec in SIGNATURES.values()]
    manifest: ManifestFn = lambda records, staging: _manifest(source, q, block_size, size, records, staging)  # noqa: E731
    jobs, manifest = with_peel_buckets(jobs, manifest, buckets, cfg, size, GATE_SEED, threshold, threads, targets)
    if upscaler is not None:
        jobs, manifest = with_tiles(jobs, manifest, upscaler, default_tiles(size), size, q, block_size, threshold)
    if preview is not None:
        jobs, manifest = with_preview(jobs, manifest, preview, source.component("vae"), cfg, size, q, block_size,
                                      threshold)
    vocab = ("\n".join(vocabulary()) + "\n").encode()
    return convert_jobs(out, jobs, q, block_size, threshold, manifest,
                        extra_files={"vocab.txt": vocab}, force=force, threads=threads, progress=progress)


def _wrapped_component(source: Source, spec: SignatureSpec,
                       rewrite: Callable[[nn.Module], nn.Module] | None = None) -> nn.Module:
    """Top-level (picklable) builder of a preset/checkpoint signature module, for isolated export."""
    wrapped = spec.wrap(source.component(spec.component))
    return wrapped if rewrite is None else rewrite(wrapped)


def _rewritten(spec: SignatureSpec, rewrite: Callable[[nn.Module], nn.Module], component: nn.Module) -> nn.Module:
    return rewrite(spec.wrap(component))


def _unrewritten_reference(spec: SignatureSpec, component: nn.Module,
                           inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The gate's reference for a rewritten signature: the signature module as the model defines it."""
    return torch_outputs(spec.wrap(component), inputs)


def _preset_job(
    source: Source, spec: SignatureSpec, q: Quant, block: int, size: int, th: GateThreshold,
    peel_buckets: tuple[int, ...] = (), peel_targets: tuple[str, ...] = DENOISER_TARGETS,
) -> SignatureJob:
    params = sum(p.numel() for p in build_component(source.config, spec.component, "meta").parameters())
    # an export-time rewrite (converters.rewrites) changes the exported graph, never the model; the gate then
    # compares the file with the unrewritten module (an isolated job's child, > ISOLATE_PARAMS, with the rewritten one)
    rewrite = export_rewrite(spec.name, q)
    isolated = functools.partial(_wrapped_component, source, spec, rewrite) if params > ISOLATE_PARAMS else None
    buckets = peel_buckets if spec.name == "denoise" else ()
    return SignatureJob(name=spec.name, key=_signature_key(source, q, block, size, spec.name, th, buckets,
                                                           peel_targets, rewrite.__name__ if rewrite else None),
                        inputs=lambda: spec.inputs(source.config, size, GATE_SEED),
                        load=lambda: source.component(spec.component),
                        wrap=spec.wrap if rewrite is None else functools.partial(_rewritten, spec, rewrite),
                        reference=None if rewrite is None else functools.partial(_unrewritten_reference, spec),
                        isolated=isolated)


def _signature_key(source: Source, q: Quant, block: int, size: int, name: str, th: GateThreshold,
                   peel_buckets: tuple[int, ...] = (), peel_targets: tuple[str, ...] = DENOISER_TARGETS,
                   rewrite: str | None = None) -> str:
    peels = {"peel_buckets": list(peel_buckets), "peel_format": 2} if peel_buckets else {}  # else: keys unchanged
    if peel_buckets and tuple(peel_targets) != DENOISER_TARGETS:
        peels["peel_targets"] = list(peel_targets)
    if rewrite is not None:  # only rewritten signatures' keys change (a re-run re-exports them once)
        peels["export_rewrite"] = rewrite
    blob = json.dumps({"source": source.identity, "config": source.config.to_dict(), "quant": q.value,
                       "block": block if q is Quant.INT4 else 0, "size": size, "signature": name,
                       "gate": [th.min_psnr_db, th.min_cosine], "bundle_schema": BUNDLE_SCHEMA_VERSION, **peels},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _manifest(source: Source, q: Quant, block: int, size: int, records: dict, staging: Path) -> dict[str, Any]:
    cfg = source.config
    sampler = get_sampler(cfg.sampler.kind)
    tokenizer = Tokenizer(cfg.tokenizer.context_length, cfg.tokenizer.vocab_size)
    files = bundle_files(staging)
    return {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "format": BUNDLE_FORMAT,
        "created_by": created_by(),
        "model": {"kind": "banana", "name": cfg.name, "config": cfg.to_dict(),
                  "weights_sha256": source.identity.split(":", 1)[1] if source.identity.startswith("sha256:") else None,
                  "source": source.identity},
        "quantization": {"recipe": q.value, "block_size": block if q is Quant.INT4 else None,
                         "per_signature": {n: r["storage"] for n, r in records.items()}},
        "image": {"size": size, "latent_channels": cfg.vae.latent_channels,
                  "latent_size": size // cfg.downsample, "downsample": cfg.downsample},
        "sampler": {"kind": cfg.sampler.kind, "default_steps": cfg.sampler.steps, "min_steps": sampler.min_steps,
                    "max_steps": sampler.max_steps, "shift": cfg.sampler.shift,
                    "guidance_scale": cfg.sampler.guidance_scale, "prediction": "velocity",
                    "timestep_scale": 1000.0},
        "tokenizer": tokenizer.spec(),
        "signatures": {n: r["io"] for n, r in records.items()},
        "gate": {n: r["gate"] for n, r in records.items()},
        "delegate_plan": delegate_plan(staging),
        "build": {n: build_entry(r) for n, r in records.items()},
        "files": files,
    }



"""`banana convert`: a preset or checkpoint -> a LiteRT bundle, one signature at a time.

Per signature: build just that component -> export fp32 to a temp file -> PyTorch reference outputs ->
free the torch module -> quantize from the file -> write atomically -> read the written file back (op
and weight types) -> accuracy gate on the ai-edge-litert Interpreter. Work happens in a hidden staging
dir beside the output; the manifest is written last and the staging dir replaces the output only when
every signature passed, so a failed run never leaves a half-written bundle or touches the old one.
Re-runs skip signatures whose inputs (weights, config, recipe, size) are unchanged.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from banana_sdk import __version__
from banana_sdk.checkpoint import load_component, read_checkpoint_config, weights_hash
from banana_sdk.config import ModelConfig, check_image_size
from banana_sdk.errors import BananaError, ConfigError
from banana_sdk.fileio import atomic_write_bytes, atomic_write_json, sha256_file
from banana_sdk.models.model import build_component, build_model
from banana_sdk.presets import get_preset
from banana_sdk.sampling.base import get_sampler
from banana_sdk.tokenizer import Tokenizer, vocabulary
from converters.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_SCHEMA_VERSION,
    MANIFEST,
    created_by,
    file_entry,
    is_bundle,
    load_manifest,
    signature_io,
)
from converters.errors import ConversionError
from converters.export import check_block_divisibility, export_signature
from converters.flatbuffer import read_graph
from converters.gate import gate_signature, require, run_tflite
from converters.postprocess import fix_zero_block_scales
from converters.recipes import DEFAULT_GATE, GateThreshold, Quant, Scheme, parse_quant, quantize_model, recipe_rules
from converters.signatures import SIGNATURES, torch_outputs

GATE_SEED = 1234  # seed of the gate's example inputs


@dataclass(frozen=True)
class Source:
    config: ModelConfig  # the model's config
    identity: str  # weights identity: checkpoint sha256 or "preset:<name>:seed<k>"
    preset: str | None  # preset name (random weights) or None
    model_dir: Path | None  # checkpoint dir or None
    seed: int = 0  # random-weight seed for presets

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
    config, _ = read_checkpoint_config(model_dir)
    if not (Path(model_dir) / "model.safetensors").is_file():
        raise ConfigError(f"{model_dir}/model.safetensors is missing")
    return Source(config, f"sha256:{weights_hash(model_dir)}", None, Path(model_dir))


def _expected_storage(quant: Quant, block_size: int) -> dict[str, str]:
    """What the recipe must have produced per weight-bearing op type (checked against the file)."""
    labels = {Scheme.DYNAMIC_INT4_BLOCKWISE: f"int4_blockwise_{block_size}",
              Scheme.DYNAMIC_INT8_CHANNELWISE: "int8_channelwise", Scheme.FLOAT16: "float16"}
    rules = recipe_rules(quant, block_size)
    if any(r.op == "*" for r in rules):
        return {op: labels[rules[0].scheme] for op in ("FULLY_CONNECTED", "CONV_2D")}
    return {r.op: labels[r.scheme] for r in rules}


def _check_storage(name: str, storage: dict[str, dict[str, int]], quant: Quant, block_size: int) -> None:
    for op, label in _expected_storage(quant, block_size).items():
        got = storage.get(op)
        if got and set(got) != {label}:
            raise ConversionError(f"{name}: recipe {quant.value} should store every {op} weight as {label}, "
                                  f"the written file has {got}")


def _check_output_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConversionError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not is_bundle(out) and not force:
        raise ConversionError(f"{out} exists and is not a bundle; refusing to overwrite it (use --force)")


def _progress(total: int, enabled: bool):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, file=sys.stderr, unit="stage", dynamic_ncols=True,
                bar_format="{desc:<28} {bar} {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")


def convert(
    out: Path, *, preset: str | None = None, model_dir: Path | None = None, quant: str = "fp32",
    block_size: int = 32, size: int | None = None, force: bool = False, min_psnr: float | None = None,
    min_cosine: float | None = None, threads: int = 2, progress: bool = False, seed: int = 0,
) -> Path:
    """Convert a preset (random weights) or checkpoint dir to a bundle at `out`; returns `out`."""
    out = Path(out)
    q = parse_quant(quant)
    recipe_rules(q, block_size)  # rejects bad block sizes before any work
    source = resolve_source(preset, model_dir, seed)
    cfg = source.config
    size = cfg.image_size if size is None else size
    check_image_size(cfg, size)
    _check_output_dir(out, force)
    if q is Quant.INT4:
        check_block_divisibility(build_model(cfg, "meta"), block_size)
    base = DEFAULT_GATE[q]
    threshold = GateThreshold(min_psnr if min_psnr is not None else base.min_psnr_db,
                              min_cosine if min_cosine is not None else base.min_cosine)
    staging = out.parent / f".{out.name}.partial"
    staging.mkdir(parents=True, exist_ok=True)
    previous = load_manifest(out) if is_bundle(out) else None
    bar = _progress(3 * len(SIGNATURES), progress)
    try:
        records = {}
        for name, spec in SIGNATURES.items():
            key = _signature_key(source, q, block_size, size, name, threshold)
            records[name] = _convert_signature(source, spec, key, q, block_size, size, threshold, staging,
                                               out, previous, threads, bar)
        atomic_write_bytes(staging / "vocab.txt", ("\n".join(vocabulary()) + "\n").encode())
        manifest = _manifest(source, q, block_size, size, records, staging)
        atomic_write_json(staging / MANIFEST, manifest)
        for stamp in staging.glob("*.stamp.json"):
            stamp.unlink()
        _swap_in(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise ConversionError(f"disk full while writing the bundle; {out} was left as it was") from None
        raise ConversionError(f"could not write the bundle: {exc.strerror or exc} ({exc.filename or out})") from None
    except BananaError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        bar.close()
    return out


def _signature_key(source: Source, q: Quant, block: int, size: int, name: str, th: GateThreshold) -> str:
    blob = json.dumps({"source": source.identity, "config": source.config.to_dict(), "quant": q.value,
                       "block": block if q is Quant.INT4 else 0, "size": size, "signature": name,
                       "gate": [th.min_psnr_db, th.min_cosine], "bundle_schema": BUNDLE_SCHEMA_VERSION},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _reuse(name: str, key: str, staging: Path, out: Path, previous: dict[str, Any] | None) -> dict | None:
    """A finished record for this signature from the staging dir or the existing bundle, else None."""
    target = staging / f"{name}.tflite"
    stamp = staging / f"{name}.stamp.json"
    if stamp.is_file() and target.is_file():
        record = json.loads(stamp.read_text())
        if record.get("key") == key and sha256_file(target) == record.get("sha256"):
            return record
    if previous is not None:
        record = previous.get("build", {}).get(name)
        old = out / f"{name}.tflite"
        if record and record.get("key") == key and old.is_file() and sha256_file(old) == record.get("sha256"):
            shutil.copy2(old, target)
            return record
    return None


def _convert_signature(
    source: Source, spec, key: str, q: Quant, block: int, size: int, threshold: GateThreshold,  # noqa: ANN001
    staging: Path, out: Path, previous: dict | None, threads: int, bar,  # noqa: ANN001
) -> dict[str, Any]:
    name = spec.name
    record = _reuse(name, key, staging, out, previous)
    if record is not None:
        bar.set_description_str(f"{name}: current, skipped")
        bar.update(3)
        return {**record, "skipped": True}
    # 1. export fp32 (the torch module lives only inside this block)
    bar.set_description_str(f"{name}: export")
    inputs = spec.inputs(source.config, size, GATE_SEED)
    float_path = staging / f".{name}.fp32.tflite"
    module = source.component(spec.component)
    wrapped = spec.wrap(module)
    export_signature(wrapped, name, inputs, float_path)
    reference = torch_outputs(wrapped, inputs)
    del module, wrapped
    gc.collect()
    bar.update(1)
    # 2. quantize from the serialized file, write atomically
    bar.set_description_str(f"{name}: quantize {q.value}")
    target = staging / f"{name}.tflite"
    quantized, _ = fix_zero_block_scales(quantize_model(float_path.read_bytes(), q, block))
    atomic_write_bytes(target, quantized)
    del quantized
    float_path.unlink()
    gc.collect()
    bar.update(1)
    # 3. verify from the written file: op/weight types, then the accuracy gate on LiteRT
    bar.set_description_str(f"{name}: verify")
    storage = read_graph(target).signatures[name].weight_storage()
    _check_storage(name, storage, q, block)
    result = gate_signature(name, reference, run_tflite(target, name, inputs, threads), threshold)
    require(result)
    bar.update(1)
    record = {"key": key, "sha256": sha256_file(target), "storage": storage, "gate": result.to_dict(),
              "io": signature_io(target, name)}
    atomic_write_json(staging / f"{name}.stamp.json", record)
    return record


def _manifest(source: Source, q: Quant, block: int, size: int, records: dict, staging: Path) -> dict[str, Any]:
    cfg = source.config
    sampler = get_sampler(cfg.sampler.kind)
    tokenizer = Tokenizer(cfg.tokenizer.context_length, cfg.tokenizer.vocab_size)
    files = {p.name: file_entry(p) for p in sorted(staging.iterdir())
             if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".stamp.json")
             and p.name != MANIFEST}
    return {
        "schema_version": BUNDLE_SCHEMA_VERSION,
        "format": BUNDLE_FORMAT,
        "created_by": created_by(),
        "model": {"name": cfg.name, "config": cfg.to_dict(), "weights_sha256": source.identity.split(":", 1)[1]
                  if source.identity.startswith("sha256:") else None, "source": source.identity},
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
        "build": {n: {"key": r["key"], "sha256": r["sha256"], "storage": r["storage"], "gate": r["gate"],
                      "io": r["io"]} for n, r in records.items()},
        "files": files,
    }


def _swap_in(staging: Path, out: Path) -> None:
    """Replace `out` with the finished staging dir (the old one is removed only after the rename)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

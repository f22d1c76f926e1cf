"""The generic conversion engine: a list of signature jobs -> a LiteRT bundle, one signature at a time.

Front ends plan the jobs and the manifest: `converters.convert` (our presets and checkpoints),
`converters.byom` (diffusers pipelines, arbitrary modules), `converters.tiles` and `converters.peels`
(extra signatures). Per signature: build just that component -> reference outputs (the model's own
forward) -> rewrite + export fp32 to a temp file -> free the torch module -> quantize from the file ->
write atomically -> read the written file back (op and weight types) -> accuracy gate on the ai-edge-litert
Interpreter. Work happens in a hidden staging dir beside the output; the manifest is written last and the
staging dir replaces the output only when every signature passed, so a failed run never leaves a
half-written bundle or touches the old one. Re-runs skip signatures whose job key (weights, config, recipe,
size, gate) is unchanged.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from banana_sdk.bundle.flatbuffer import read_graph
from banana_sdk.bundle.reader import (
    BUNDLE_SCHEMA_VERSION,
    MANIFEST,
    file_entry,
    is_bundle,
    load_manifest,
    signature_io,
    write_manifest,
)
from banana_sdk.errors import BananaError
from banana_sdk.fileio import atomic_write_bytes, atomic_write_json, sha256_file
from converters.errors import ConversionError
from converters.export import export_signature
from converters.gate import GateResult, gate_signature, require, run_tflite
from converters.int4_fallback import LayerFallback, plan_fallbacks
from converters.isolate import export_isolated
from converters.postprocess import fix_zero_block_scales_file, strip_tensor_names_file
from converters.recipes import DEFAULT_GATE, GateThreshold, Quant, Scheme, quantize_file, recipe_rules
from converters.signatures import torch_outputs

GATE_SEED = 1234  # seed of the gate's example inputs


def _expected_storage(quant: Quant, block_size: int) -> dict[str, set[str]]:
    """What the recipe may have produced per weight-bearing op type (checked against the file): the storage of
    its rules for all ops of a type, plus the storage of scoped rules that override it for some ops of that type
    (float32 for a FLOAT32 exclusion)."""
    labels = {Scheme.DYNAMIC_INT4_BLOCKWISE: f"int4_blockwise_{block_size}",
              Scheme.DYNAMIC_INT4_CHANNELWISE: "int4_channelwise",
              Scheme.DYNAMIC_INT8_CHANNELWISE: "int8_channelwise", Scheme.FLOAT16: "float16",
              Scheme.FLOAT32: "float32"}
    rules = recipe_rules(quant, block_size)
    general = [r for r in rules if r.scope == ".*" and r.scheme is not Scheme.FLOAT32]
    if any(r.op == "*" for r in general):
        expected = {op: {labels[general[0].scheme]} for op in ("FULLY_CONNECTED", "CONV_2D")}
    else:
        expected = {r.op: {labels[r.scheme]} for r in general}
    for rule in rules:
        if rule.scope != ".*" and rule.op in expected:
            expected[rule.op].add(labels[rule.scheme])
    return expected


def _check_storage(name: str, storage: dict[str, dict[str, int]], quant: Quant, block_size: int,
                   fallbacks: list[LayerFallback] = ()) -> None:  # type: ignore[assignment]
    for op, allowed in _expected_storage(quant, block_size).items():
        allowed = allowed | {f.label() for f in fallbacks if f.op == op}
        got = storage.get(op)
        if got and not set(got) <= allowed:
            raise ConversionError(f"{name}: recipe {quant.value} should store every {op} weight as "
                                  f"{' or '.join(sorted(allowed))}, the written file has {got}")




def check_output_dir(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConversionError(f"{out} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not is_bundle(out) and not force:
        raise ConversionError(f"{out} exists and is not a bundle; refusing to overwrite it (use --force)")


def _progress(total: int, enabled: bool):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, file=sys.stderr, unit="stage", dynamic_ncols=True,
                bar_format="{desc:<28} {bar} {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")


@dataclass(frozen=True)
class ExtraSignature:
    """Another signature exported into its job's file, built from the job's wrapped module so that it shares
    the weights (one copy in the file): e.g. the runtime-peel signatures `denoise_r4` beside `denoise`."""

    name: str  # signature key (the file stays the job's)
    inputs: Callable[[], dict[str, np.ndarray]]  # seeded example inputs: export trace and gate
    wrap: Callable[[nn.Module], nn.Module]  # the job's wrapped module -> this signature's module
    # ^ picklable (a functools.partial of a top-level function) so isolated jobs can build it in the child


@dataclass(frozen=True)
class SignatureJob:
    """One signature to convert: how to build it, feed it and judge it."""

    name: str  # signature key and file stem
    key: str  # sha256 of everything that determines the file (equal key + file sha256 = skip on re-run)
    inputs: Callable[[], dict[str, np.ndarray]]  # seeded example inputs: export trace and gate
    load: Callable[[], nn.Module]  # the bare component (called only when the signature is not skipped)
    wrap: Callable[[nn.Module], nn.Module]  # component -> exportable signature module (rewrites go here)
    reference: Callable[[nn.Module, dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    # ^ the gate's PyTorch reference from the bare component (the model's own forward); None = the wrapped module
    notes: Callable[[nn.Module], dict[str, Any]] | None = None  # facts about the wrapped module for the record
    isolated: Callable[[], nn.Module] | None = None  # picklable builder of the wrapped module: export it in a
    # ^ child process (big models: the parent never holds the torch weights, see converters/isolate.py)
    isolated_reference: bool = False  # `isolated(inputs)` returns (wrapped module, the gate's own reference outputs)
    extra: tuple[ExtraSignature, ...] = ()  # more signatures in this job's file (gated and recorded alike)


ManifestFn = Callable[[dict[str, dict[str, Any]], Path], dict[str, Any]]  # (records, staging) -> manifest


def gate_threshold(q: Quant, min_psnr: float | None, min_cosine: float | None) -> GateThreshold:
    """The recipe's default gate with the user's overrides."""
    base = DEFAULT_GATE[q]
    return GateThreshold(min_psnr if min_psnr is not None else base.min_psnr_db,
                         min_cosine if min_cosine is not None else base.min_cosine)




def convert_jobs(
    out: Path, jobs: list[SignatureJob], q: Quant, block_size: int, threshold: GateThreshold,
    manifest: ManifestFn, *, extra_files: dict[str, bytes] | None = None, force: bool = False, threads: int = 2,
    progress: bool = False,
) -> Path:
    """The engine: convert every job into a staging dir beside `out`, write `extra_files` and the manifest
    (built by `manifest(records, staging)`), then swap the staging dir in. Nothing is left on failure."""
    out = Path(out)
    check_output_dir(out, force)
    staging = out.parent / f".{out.name}.partial"
    staging.mkdir(parents=True, exist_ok=True)
    previous = load_manifest(out) if is_bundle(out) else None
    bar = _progress(3 * len(jobs), progress)
    try:
        records = {}
        for job in jobs:
            records[job.name] = _convert_signature(job, q, block_size, threshold, staging, out, previous,
                                                   threads, bar)
            for extra, sub in records[job.name].get("signatures", {}).items():  # same file, own I/O and gate
                records[extra] = {**sub, "key": records[job.name]["key"], "sha256": records[job.name]["sha256"]}
        for name, data in (extra_files or {}).items():
            atomic_write_bytes(staging / name, data)
        write_manifest(staging, manifest(records, staging))  # validated (Manifest.from_dict), then written
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


def convert_one(job: SignatureJob, q: Quant, block_size: int, threshold: GateThreshold, directory: Path,
                threads: int = 2) -> dict[str, Any]:
    """One signature to `directory/<name>.tflite`, outside any bundle (per-component measurements, e.g.
    benchmarks/bench_realsize.py); returns its record (gate, storage, I/O). Same steps as in a bundle."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bar = _progress(3, False)
    try:
        return _convert_signature(job, q, block_size, threshold, directory, directory, None, threads, bar)
    finally:
        bar.close()


def job_key(**parts: Any) -> str:
    """sha256 of JSON-able key parts (plus the bundle schema version)."""
    blob = json.dumps({**parts, "bundle_schema": BUNDLE_SCHEMA_VERSION}, sort_keys=True, default=str)
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
    job: SignatureJob, q: Quant, block: int, threshold: GateThreshold, staging: Path, out: Path,
    previous: dict | None, threads: int, bar,  # noqa: ANN001
) -> dict[str, Any]:
    name = job.name
    record = _reuse(name, job.key, staging, out, previous)
    if record is not None:
        bar.set_description_str(f"{name}: current, skipped")
        bar.update(3)
        return {**record, "skipped": True}
    # 1. export fp32 (the torch module lives only inside this block)
    bar.set_description_str(f"{name}: export")
    inputs = {name: job.inputs(), **{x.name: x.inputs() for x in job.extra}}
    float_path = staging / f".{name}.fp32.tflite"
    if job.isolated is not None:
        references = export_isolated(job.isolated, name, inputs[name], float_path,
                                     [(x.name, x.wrap, inputs[x.name]) for x in job.extra], job.isolated_reference)
        return _finish_signature(job, q, block, threshold, staging, inputs, references, None, threads, bar)
    module = job.load()
    own = job.reference(module, inputs[name]) if job.reference is not None else None
    wrapped = job.wrap(module)
    extras = [(x.name, x.wrap(wrapped), inputs[x.name]) for x in job.extra]
    notes = job.notes(wrapped) if job.notes is not None else None
    if extras:
        export_signature(wrapped, name, inputs[name], float_path, extras)
    else:  # the one-signature call, unchanged
        export_signature(wrapped, name, inputs[name], float_path)
    references = {name: own if own is not None else torch_outputs(wrapped, inputs[name]),
                  **{n: torch_outputs(m, i) for n, m, i in extras}}
    del module, wrapped, extras
    gc.collect()
    return _finish_signature(job, q, block, threshold, staging, inputs, references, notes, threads, bar)


def _finish_signature(
    job: SignatureJob, q: Quant, block: int, threshold: GateThreshold, staging: Path,
    inputs: dict[str, dict[str, np.ndarray]], references: dict[str, dict[str, np.ndarray]],
    notes: dict[str, Any] | None, threads: int, bar,  # noqa: ANN001
) -> dict[str, Any]:
    """Quantize the exported fp32 file, write it, verify its types and gate every signature in it against its
    PyTorch reference (`inputs` and `references` by signature; the job's own first)."""
    name = job.name
    float_path = staging / f".{name}.fp32.tflite"
    bar.update(1)
    # 2. quantize from the serialized file, write atomically; 3. verify from the written file: op/weight types,
    # then the accuracy gate on LiteRT. INT4 degrades gracefully: layers the block does not divide are stored as the
    # best scheme that fits (converters/int4_fallback.py), and a signature that fails the INT4 gate is stored INT8
    # channelwise if that passes (recorded as `quant_fallback`); only if that fails too is the INT4 failure raised.
    bar.set_description_str(f"{name}: quantize {q.value}")
    target = staging / f"{name}.tflite"
    fallbacks = plan_fallbacks(read_graph(float_path), block) if q is Quant.INT4 else []
    checked = _quantize_and_gate(job, float_path, q, block, fallbacks, threshold, target, inputs, references,
                                 threads, bar)
    quant_fallback = None
    if isinstance(checked, GateResult):
        failed = checked
        if q is not Quant.INT4:
            require(failed)
        bar.set_description_str(f"{name}: int4 failed the gate; int8")
        checked = _quantize_and_gate(job, float_path, Quant.INT8, block, [], threshold, target, inputs,
                                     references, threads, bar)
        if isinstance(checked, GateResult):
            require(failed)  # the figure of the quantization that was asked for
        fallbacks = []
        quant_fallback = {"asked": q.value, "stored": Quant.INT8.value, "gate_asked": failed.to_dict()}
    float_path.unlink()
    bar.update(1)
    record = {"key": job.key, "sha256": sha256_file(target), **checked.pop(name)}
    if checked:
        record["signatures"] = checked
    if fallbacks:  # layers INT4 blockwise-`block` cannot store, and what they cost (converters/int4_fallback.py)
        record["int4_fallbacks"] = [f.to_dict() for f in fallbacks]
    if quant_fallback is not None:
        record["quant_fallback"] = quant_fallback
    if notes is not None:
        record["notes"] = notes
    atomic_write_json(staging / f"{name}.stamp.json", record)
    return record


def _quantize_and_gate(
    job: SignatureJob, float_path: Path, q: Quant, block: int, fallbacks: list[LayerFallback],
    threshold: GateThreshold, target: Path, inputs: dict[str, dict[str, np.ndarray]],
    references: dict[str, dict[str, np.ndarray]], threads: int, bar,  # noqa: ANN001
) -> dict[str, dict[str, Any]] | GateResult:
    """Quantize the fp32 file `float_path` with recipe `q` (+ per-layer `fallbacks`) into `target` (written
    beside it, then renamed), check its weight storage and gate every signature: {signature: storage, gate, io},
    or the first failed GateResult. Streams the weights (`converters.recipes.quantize_file`): the process never
    holds the fp32 model."""
    partial = target.with_name(f".{target.name}.part")
    try:
        quantize_file(float_path, partial, q, block, [f.rule() for f in fallbacks])
        fix_zero_block_scales_file(partial)
        # inner tensor names (module paths from the export) are ~8% of a small INT4 bundle and nothing reads them
        strip_tensor_names_file(partial, {job.name, *(x.name for x in job.extra)})
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    bar.set_description_str(f"{job.name}: verify {q.value}")
    graph = read_graph(target)
    checked = {}
    for sig, sig_inputs in inputs.items():
        storage = graph.signatures[sig].weight_storage()
        _check_storage(sig, storage, q, block, fallbacks)
        result = gate_signature(sig, references[sig], run_tflite(target, sig, sig_inputs, threads), threshold)
        if not result.passed:
            return result
        checked[sig] = {"storage": storage, "gate": result.to_dict(), "io": signature_io(target, sig)}
    return checked


# what a signature's manifest "build" entry keeps of its conversion record
BUILD_KEYS = ("key", "sha256", "storage", "gate", "io", "signatures", "int4_fallbacks", "quant_fallback")


def build_entry(record: dict[str, Any]) -> dict[str, Any]:
    """A signature's manifest `build` entry from its conversion record (the keys it has of BUILD_KEYS)."""
    return {k: record[k] for k in BUILD_KEYS if k in record}


def bundle_files(staging: Path) -> dict[str, dict[str, Any]]:
    """The manifest's `files`: every finished file of the staging dir (not the manifest, stamps, temps)."""
    return {p.name: file_entry(p) for p in sorted(staging.iterdir())
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".stamp.json")
            and p.name != MANIFEST}




def _swap_in(staging: Path, out: Path) -> None:
    """Replace `out` with the finished staging dir (the old one is removed only after the rename)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

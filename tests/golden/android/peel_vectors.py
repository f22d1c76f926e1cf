"""Golden vectors for runtime peels (`peels.json`): safetensors files, stacking into rank buckets, refusals.

Everything comes from the real Python code: `banana_sdk.peels.device` (export_runtime, load_runtime,
stack_runtime, layout_from_manifest), `banana_sdk.peels.runtime` (the tiny denoiser's layout, bucket_for),
`banana_sdk.peels.io.check_base` and `banana_sdk.peels.commands.parse_weighted`. Files are stored as
base64 with their header key-sorted (`golden_util.canonical_safetensors`), long float32 vectors as
base64 little-endian bytes plus their sha256.

Assumption (until the converter writes it): the manifest's `peels` section is `{"buckets": [...],
"layout": [{"name", "in", "out"}, ...]}`, exactly what `layout_from_manifest` reads.
"""

from __future__ import annotations

import hashlib
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from golden_util import b64, canonical_safetensors, f32_b64, header_of, with_header
from safetensors.numpy import save

from banana_sdk.models.model import build_model
from banana_sdk.peels.commands import parse_weighted
from banana_sdk.peels.config import RANK_BUCKETS, PeelConfig, PeelError, Storage
from banana_sdk.peels.device import (
    export_runtime,
    layout_from_manifest,
    load_for_bundle,
    load_runtime,
    stack_runtime,
    to_runtime,
)
from banana_sdk.peels.io import check_base
from banana_sdk.peels.lora import Peel
from banana_sdk.peels.runtime import LayerSlot, runtime_layers
from banana_sdk.presets import get_preset

BASE_HASH = hashlib.sha256(b"banana golden vectors: peel base weights").hexdigest()
OTHER_HASH = hashlib.sha256(b"banana golden vectors: some other base").hexdigest()
RUNTIME_META_KEYS = ("format", "schema_version", "name", "base_hash", "base_model", "rank")


def _peel(model: torch.nn.Module, name: str, rank: int, alpha: float, seed: int, base: str = BASE_HASH,
          targets: tuple[str, ...] | None = None) -> Peel:
    """A peel with Kaiming A (Peel.init) and seeded normal B (trained peels have non-zero B)."""
    config = PeelConfig(rank=rank, alpha=alpha, **({"targets": targets} if targets else {}))
    peel = Peel.init(name, model, config, base, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for _, b in peel.tensors.values():
            b.normal_(0, 0.05, generator=gen)
    return peel


def _export(peel: Peel, slots: list[LayerSlot], tmp: Path) -> bytes:
    # float32 files (the float16 reading is covered by _half_peel); keeps these vectors exact
    return canonical_safetensors(export_runtime(peel, slots, tmp / f"{peel.name}.raw",
                                                storage=Storage.FLOAT32).read_bytes())


def _half_peel(slots: list[LayerSlot]) -> bytes:
    """A rank-1 runtime peel stored as F16 (the reader must widen it exactly), with special values first."""
    rng = np.random.default_rng(11)
    n_a = sum(s.in_features for s in slots)
    n_b = sum(s.out_features for s in slots)
    special = [0.0, -0.0, 65504.0, -65504.0, 5.960464477539063e-08, 1e-05, -0.000123, 0.333, -2.5, 1.0]
    a = rng.normal(0, 0.5, n_a).astype(np.float16)
    b = rng.normal(0, 0.05, n_b).astype(np.float16)
    a[:len(special)] = np.array(special, np.float16)
    b[:len(special)] = np.array(special, np.float16) * np.float16(0.01)
    meta = {"format": "banana-runtime-peel", "schema_version": "1", "name": "half", "base_hash": BASE_HASH,
            "base_model": "tiny", "rank": "1"}
    return canonical_safetensors(save({"lora_a": a, "lora_b": b}, metadata=meta))


def _load(files: dict[str, bytes], name: str, tmp: Path) -> tuple[dict[str, str], np.ndarray, np.ndarray]:
    path = tmp / name
    path.write_bytes(files[name])
    return load_runtime(path)


def _stack_case(files: dict[str, bytes], picks: list[tuple[str, float]], slots: list[LayerSlot],
                tmp: Path, full: bool) -> dict[str, Any]:
    loaded = [(*_load(files, name, tmp), weight) for name, weight in picks]
    bucket, a, b = stack_runtime(loaded, slots, RANK_BUCKETS)
    a_bytes, b_bytes = np.asarray(a, "<f4").tobytes(), np.asarray(b, "<f4").tobytes()
    case: dict[str, Any] = {"peels": [[n, w] for n, w in picks], "bucket": bucket, "lora_a_size": int(a.size),
                            "lora_b_size": int(b.size), "lora_a_sha256": hashlib.sha256(a_bytes).hexdigest(),
                            "lora_b_sha256": hashlib.sha256(b_bytes).hexdigest()}
    if full:
        case.update(lora_a=f32_b64(a), lora_b=f32_b64(b))
    return case


def _python_outcome(fn: Any) -> str:
    """'ok' or 'ExceptionType: message' of what the Python code does (documents Python-side gaps)."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - recorded, not handled
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def _corrupt_cases(tmp: Path) -> list[dict[str, Any]]:
    """Broken runtime peel files (a two-slot toy layout keeps them small) and the refusal each must give."""
    toy_slots = [LayerSlot("toy.q", 3, 2), LayerSlot("toy.k", 2, 3)]
    meta = {"format": "banana-runtime-peel", "schema_version": "1", "name": "toy", "base_hash": BASE_HASH,
            "base_model": "tiny", "rank": "1"}
    a = np.arange(1, 6, dtype=np.float32) / np.float32(8)
    b = -np.arange(1, 6, dtype=np.float32) / np.float32(16)
    good = canonical_safetensors(save({"lora_a": a, "lora_b": b}, metadata=meta))
    (length,) = struct.unpack("<Q", good[:8])

    def edit(fn: Any) -> bytes:
        h = header_of(good)
        fn(h)
        return with_header(good, h)

    nan_b = b.copy()
    nan_b[2] = np.nan
    unreadable = "not a readable runtime peel"
    cases = [
        ("empty", b"", unreadable),
        ("shorter_than_length", good[:5], unreadable),
        ("truncated_buffer", good[:-4], unreadable),
        ("header_length_past_end", struct.pack("<Q", 1 << 40) + good[8:], unreadable),
        ("header_not_json", good[:8] + b"{" * length + good[8 + length:], unreadable),
        ("offsets_past_buffer", edit(lambda h: h["lora_b"].update(data_offsets=[20, 44])), unreadable),
        ("offsets_overlap", edit(lambda h: h["lora_b"].update(data_offsets=[16, 36])), unreadable),
        ("shape_disagrees_with_bytes", edit(lambda h: h["lora_a"].update(shape=[4])), unreadable),
        ("no_lora_b", canonical_safetensors(save({"lora_a": a}, metadata=meta)), unreadable),
        ("wrong_format", canonical_safetensors(save({"lora_a": a, "lora_b": b}, metadata={**meta, "format":
                                                                                         "banana-peel"})),
         "is not a runtime peel"),
        ("no_metadata", canonical_safetensors(save({"lora_a": a, "lora_b": b})), "is not a runtime peel"),
        ("not_finite", canonical_safetensors(save({"lora_a": a, "lora_b": nan_b}, metadata=meta)),
         "peel weights are not finite"),
        ("int8_without_scales", canonical_safetensors(save({"lora_a": a.astype(np.int8), "lora_b": b},
                                                           metadata={**meta, "schema_version": "2"})),
         "int8 tensor lora_a has no lora_a.scale"),
        ("int8_scales_short", canonical_safetensors(save({"lora_a": a.astype(np.int8), "lora_b": b,
                                                          "lora_a.scale": np.ones(0, np.float16)},
                                                         metadata={**meta, "schema_version": "2"})),
         "int8 tensor of 5 values needs 1"),
    ]
    out = []
    for name, data, contains in cases:
        path = tmp / f"corrupt_{name}.safetensors"
        path.write_bytes(data)
        outcome = _python_outcome(lambda path=path: load_runtime(path)).replace(f"{tmp}/", "")
        assert outcome.startswith("PeelError") and contains in outcome, (name, outcome)
        out.append({"name": name, "bytes": b64(data), "message_contains": contains, "python": outcome})
    # readable files whose content the stacker must refuse
    stack_cases = [
        ("rank_missing", {k: v for k, v in meta.items() if k != "rank"}, "rank"),
        ("rank_not_integer", {**meta, "rank": "two"}, "rank"),
        ("rank_zero", {**meta, "rank": "0"}, "rank"),
    ]
    for name, bad_meta, contains in stack_cases:
        data = canonical_safetensors(save({"lora_a": a, "lora_b": b}, metadata=bad_meta))
        path = tmp / f"corrupt_{name}.safetensors"
        path.write_bytes(data)
        outcome = _python_outcome(lambda path=path: stack_runtime([(*load_runtime(path), 1.0)], toy_slots, (4,)))
        outcome = outcome.replace(f"{tmp}/", "")
        out.append({"name": name, "bytes": b64(data), "message_contains": contains, "python": outcome})
    return out


def _sparse_section(model: torch.nn.Module, slots: list[LayerSlot], section: dict[str, Any], outline: Peel,
                    full_files: dict[str, bytes], tmp: Path) -> dict[str, Any]:
    """Sparse runtime peels (metadata `slots`: only the covered slots' A and B, what `banana peel export` writes
    by default): read, stacked alone and with the full files of `full_files`, and refused."""
    detail = _peel(model, "detail", rank=3, alpha=6.0, seed=9, targets=("attn.k", "mlp.fc1"))
    # a peel adapting a layer the bundle does not have, exported for a layout that has it
    extra_slot = LayerSlot("denoiser.extra.q", 8, 8)
    gen = torch.Generator().manual_seed(13)
    stray = _peel(model, "stray", rank=1, alpha=1.0, seed=11, targets=("attn.o",))
    stray.tensors[extra_slot.name] = (torch.randn(1, 8, generator=gen), torch.randn(8, 1, generator=gen) * 0.05)
    # a sparse file whose arrays hold one covered slot too few
    meta, a, b = to_runtime(detail, slots, sparse=True)
    last = [s for s in slots if s.name in detail.tensors][-1]
    short = save({"lora_a": a[:-3 * last.in_features], "lora_b": b[:-3 * last.out_features]},
                 metadata={**meta, "name": "short"})
    not_json = save({"lora_a": a, "lora_b": b}, metadata={**meta, "name": "bad_slots", "slots": slots[0].name})
    files = {
        "outline_sparse.safetensors": canonical_safetensors(  # float16: the export default
            export_runtime(outline, slots, tmp / "outline_sparse.raw", sparse=True).read_bytes()),
        "detail_sparse.safetensors": canonical_safetensors(
            export_runtime(detail, slots, tmp / "detail_sparse.raw", sparse=True,
                           storage=Storage.FLOAT32).read_bytes()),
        "stray_sparse.safetensors": canonical_safetensors(
            export_runtime(stray, [*slots, extra_slot], tmp / "stray_sparse.raw", sparse=True,
                           storage=Storage.FLOAT32).read_bytes()),
        "short_sparse.safetensors": canonical_safetensors(short),
        "bad_slots_sparse.safetensors": canonical_safetensors(not_json),
    }
    # sparse and full exports of one peel stack to the same bits
    full_outline = to_runtime(outline, slots)
    sparse_outline = to_runtime(outline, slots, sparse=True)
    assert sparse_outline[1].size < full_outline[1].size
    for x, y in zip(stack_runtime([(*full_outline, 0.5)], slots, RANK_BUCKETS),
                    stack_runtime([(*sparse_outline, 0.5)], slots, RANK_BUCKETS), strict=True):
        assert np.array_equal(x, y)
    read = []
    for name in ("outline_sparse.safetensors", "detail_sparse.safetensors"):
        meta, a, b = _load(files, name, tmp)
        read.append({"file": name, "metadata": {k: meta[k] for k in (*RUNTIME_META_KEYS, "slots")},
                     "lora_a_dtype": str(a.dtype), "lora_a": f32_b64(a), "lora_b": f32_b64(b)})
    all_files = {**full_files, **files}
    stacks = [
        _stack_case(all_files, [("outline_sparse.safetensors", 0.6)], slots, tmp, True),
        _stack_case(all_files, [("style.safetensors", 0.8), ("outline_sparse.safetensors", 0.5)], slots, tmp,
                    False),
        _stack_case(all_files, [("detail_sparse.safetensors", 1.0), ("style.safetensors", -0.5),
                                ("outline_sparse.safetensors", 0.25)], slots, tmp, False),
        _stack_case(all_files, [("outline.safetensors", 1.0), ("detail_sparse.safetensors", 0.75)], slots, tmp,
                    False),
    ]
    manifest = {"model": {"weights_sha256": BASE_HASH}, "peels": section}
    refusals = []
    for name, contains in (("stray_sparse.safetensors", "adapts layers this bundle does not have: "
                                                        "['denoiser.extra.q']"),
                           ("short_sparse.safetensors", "runtime peel 'short' does not match this bundle's layout")):
        loaded = [(*_load(files, name, tmp), 1.0)]
        stacked = _python_outcome(lambda loaded=loaded: stack_runtime(loaded, slots, RANK_BUCKETS))
        bundle = _python_outcome(lambda name=name: load_for_bundle(tmp / name, manifest)).replace(f"{tmp}/", "")
        assert stacked.startswith("PeelError") and contains in stacked, (name, stacked)
        refusals.append({"peels": [[name, 1.0]], "buckets": list(RANK_BUCKETS), "message_contains": contains,
                         "python": stacked, "python_load_for_bundle": bundle})
    # slots metadata that is not a JSON list: the reader refuses it (stack_runtime alone would raise a JSON error)
    (tmp / "bad_slots_sparse.safetensors").write_bytes(files["bad_slots_sparse.safetensors"])
    bundle = _python_outcome(lambda: load_for_bundle(tmp / "bad_slots_sparse.safetensors", manifest))
    bundle = bundle.replace(f"{tmp}/", "")
    assert bundle.startswith("PeelError") and "metadata is incomplete or invalid" in bundle, bundle
    corrupt = [{"file": "bad_slots_sparse.safetensors", "message_contains": "slots", "python_load_for_bundle": bundle}]
    return {"files": {name: b64(data) for name, data in files.items()}, "read": read, "stack": stacks,
            "refusals": refusals, "corrupt": corrupt}


def peel_vectors() -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model(get_preset("tiny"))
    slots = runtime_layers(model.denoiser)
    section = {"buckets": list(RANK_BUCKETS),
               "layout": [{"name": s.name, "in": s.in_features, "out": s.out_features} for s in slots]}
    manifest_slots, manifest_buckets = layout_from_manifest({"peels": section})  # the section device.py reads
    assert manifest_slots == slots and manifest_buckets == RANK_BUCKETS
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        style = _peel(model, "style", rank=4, alpha=8.0, seed=1)
        outline = _peel(model, "outline", rank=2, alpha=3.0, seed=3, targets=("attn.q", "cross.v", "mlp.fc2"))
        foreign = _peel(model, "foreign", rank=2, alpha=2.0, seed=5, base=OTHER_HASH, targets=("mlp.fc1",))
        extra = [*slots, LayerSlot("denoiser.extra.q", 8, 8)]  # exported for a bigger layout than the bundle's
        wrong = _peel(model, "wrong_layout", rank=1, alpha=1.0, seed=7, targets=("attn.o",))
        files = {
            "style.safetensors": _export(style, slots, tmp),
            "outline.safetensors": _export(outline, slots, tmp),
            "half.safetensors": _half_peel(slots),
            "foreign.safetensors": _export(foreign, slots, tmp),
            "wrong_layout.safetensors": _export(wrong, extra, tmp),
            "int8.safetensors": canonical_safetensors(  # int8 codes + float16 block scales, widened on read
                export_runtime(_peel(model, "int8", rank=2, alpha=4.0, seed=15), slots, tmp / "int8.raw",
                               storage=Storage.INT8).read_bytes()),
        }
        read = []
        for name in files:
            meta, a, b = _load(files, name, tmp)
            read.append({"file": name, "metadata": {k: meta[k] for k in RUNTIME_META_KEYS if k in meta},
                         "lora_a_dtype": str(a.dtype), "lora_a": f32_b64(a), "lora_b": f32_b64(b)})
        stacks = [
            _stack_case(files, [("style.safetensors", 0.8), ("outline.safetensors", 0.5)], slots, tmp, True),
            _stack_case(files, [("style.safetensors", 1.0)], slots, tmp, False),
            _stack_case(files, [], slots, tmp, False),
            _stack_case(files, [("outline.safetensors", 0.25), ("half.safetensors", 1.0),
                                ("style.safetensors", -0.5)], slots, tmp, False),
            _stack_case(files, [("style.safetensors", 1.0)] * 3 + [("outline.safetensors", 0.75)], slots, tmp,
                        False),
            _stack_case(files, [("int8.safetensors", 0.7), ("style.safetensors", 0.5)], slots, tmp, False),
        ]
        refusals = []
        for picks, buckets in (([("style.safetensors", 1.0)] * 5, RANK_BUCKETS),
                               ([("style.safetensors", 1.0)], (2,)),
                               ([("wrong_layout.safetensors", 1.0)], RANK_BUCKETS)):
            loaded = [(*_load(files, n, tmp), w) for n, w in picks]
            try:
                stack_runtime(loaded, slots, buckets)
            except PeelError as exc:
                refusals.append({"peels": [[n, w] for n, w in picks], "buckets": list(buckets), "message": str(exc)})
            else:
                raise AssertionError(f"stack_runtime accepted {picks}")
        meta, _, _ = _load(files, "foreign.safetensors", tmp)
        stand_in = Peel(meta["name"], PeelConfig(rank=int(meta["rank"])), meta["base_hash"], meta["base_model"])
        try:
            check_base(stand_in, BASE_HASH, "bundle tiny")
        except PeelError as exc:
            base_message = str(exc)
        corrupt = _corrupt_cases(tmp)
        sparse = _sparse_section(model, slots, section, outline, files, tmp)
    specs = []
    for spec in ("/sdcard/peels/style.safetensors:0.8", "/sdcard/peels/style.safetensors", "p:1e-1", "p:-0.5",
                 "p:+2", "p:.5", ":0.5", "a:b:0.25", "/sdcard/p:heavy", "p:", "p:1f", "p:0x10"):
        try:
            path, weight = parse_weighted(spec)
        except PeelError as exc:
            specs.append({"spec": spec, "error": str(exc)})
        else:
            specs.append({"spec": spec, "path": str(path), "weight": weight})
    return {
        "about": "runtime peel files (banana_sdk.peels.device) read, stacked with weights into rank buckets and "
                 "refused; tensors bit-exact (base64 little-endian float32 and sha256)",
        "assumption": "manifest section peels = {buckets, layout: [{name, in, out}]} as layout_from_manifest reads",
        "bundle": {"model_name": "tiny", "weights_sha256": BASE_HASH, "peels": section},
        "files": {name: b64(data) for name, data in files.items()},
        "read": read,
        "stack": stacks,
        "refusals": refusals,
        "base_mismatch": {"file": "foreign.safetensors", "what": "bundle tiny", "message": base_message},
        "corrupt": corrupt,
        "weighted_specs": specs,
        "sparse": sparse,
    }

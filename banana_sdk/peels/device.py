"""Runtime peel files for a bundle: exactly the low-rank tensors the `denoise_r{R}` signatures take.

A runtime peel file (safetensors; float16, float32, or int8 with block scales `lora_a.scale` / `lora_b.scale`;
widened to float32 on load) holds
`lora_a` = concat_i A_i (r, in_i) and `lora_b` = concat_i
B_i * (alpha / r) (out_i, r) over the bundle's peel layout, at the peel's own rank r, plus metadata (base
hash, rank, name). Which layout slots it covers: metadata `slots` (JSON list of slot names, in layout order)
when present, else every slot (zeros where the peel does not adapt a layer; the first format, still read).
At run time the host runtime or the app scales B by the user's weight, stacks several files along the rank
axis and pads to the smallest bucket that fits (zeros for uncovered slots): no reconversion, no reload.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from banana_sdk.fileio import atomic_write_bytes
from banana_sdk.peels import quant
from banana_sdk.peels.config import PEEL_SCHEMA_VERSION, PeelError, Storage, check_schema, parse_choice
from banana_sdk.peels.lora import Peel
from banana_sdk.peels.runtime import LayerSlot, bucket_for, pack


def layout_from_manifest(manifest: dict) -> tuple[list[LayerSlot], tuple[int, ...]]:
    """(slots, buckets) a bundle's manifest declares; PeelError if the bundle has no runtime peels."""
    info = manifest.get("peels")
    if not info or not info.get("buckets"):
        raise PeelError("this bundle has no runtime-peel signatures; convert it with --peel-buckets 4,8,16")
    slots = [LayerSlot(s["name"], int(s["in"]), int(s["out"])) for s in info["layout"]]
    return slots, tuple(int(b) for b in info["buckets"])


RuntimePeel = tuple[dict[str, str], np.ndarray, np.ndarray]  # (metadata, lora_a, lora_b)


def to_runtime(peel: Peel, slots: list[LayerSlot], sparse: bool = False) -> RuntimePeel:
    """The runtime form of `peel` for a layout (scale folded into B, weight 1): every slot (zeros where the
    peel adapts nothing, the first format), or with `sparse` only the slots it adapts (metadata `slots`)."""
    missing = sorted(set(peel.tensors) - {s.name for s in slots})
    if missing:
        raise PeelError(f"peel {peel.name!r} adapts layers the bundle cannot take at run time: {missing[:3]}")
    covered = [s for s in slots if s.name in peel.tensors] if sparse else slots
    a, b = pack([(peel, 1.0)], covered, peel.config.rank)
    meta = {"format": "banana-runtime-peel", "schema_version": str(PEEL_SCHEMA_VERSION), "name": peel.name,
            "base_hash": peel.base_hash, "base_model": peel.base_model, "rank": str(peel.config.rank)}
    if sparse:
        meta["slots"] = json.dumps([s.name for s in covered])
    return meta, a, b


def export_runtime(peel: Peel, slots: list[LayerSlot], path: str | Path, sparse: bool = False,
                   storage: Storage = Storage.FLOAT16) -> Path:
    """Write the runtime form of `peel` for a layout (see `to_runtime`), A and B stored as `storage` (INT8:
    block scales `lora_a.scale` / `lora_b.scale` over the flat values, `banana_sdk.peels.quant`)."""
    return save_runtime(to_runtime(peel, slots, sparse), path, storage)


def save_runtime(runtime: RuntimePeel, path: str | Path, storage: Storage = Storage.FLOAT16) -> Path:
    """Write a runtime peel (metadata, flat lora_a, flat lora_b) atomically, A and B stored as `storage`."""
    storage = parse_choice(Storage, storage, "peel storage")
    meta, a, b = runtime
    meta = {**meta, "schema_version": str(storage.schema_version)}
    dtype = np.float32 if storage is Storage.FLOAT32 else np.float16
    tensors = {**quant.store("lora_a", a, storage is Storage.INT8, dtype),
               **quant.store("lora_b", b, storage is Storage.INT8, dtype)}
    atomic_write_bytes(Path(path), save(tensors, metadata=meta))
    return Path(path)


def load_runtime(path: str | Path) -> RuntimePeel:
    """(metadata, lora_a, lora_b) of a runtime peel file: float A and B as stored, int8 widened to float32."""
    path = Path(path)
    if not path.is_file():
        raise PeelError(f"peel file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            raw = {k: handle.get_tensor(k) for k in handle.keys()}
        a, b = quant.values(raw, "lora_a"), quant.values(raw, "lora_b")
    except (SafetensorError, OSError, ValueError, KeyError) as exc:
        raise PeelError(f"{path} is not a readable runtime peel ({exc})") from None
    if meta.get("format") != "banana-runtime-peel":
        raise PeelError(f"{path} is not a runtime peel; export it with `banana peel export --bundle`")
    check_schema(meta, str(path))
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise PeelError(f"{path}: peel weights are not finite")
    return meta, a, b


def load_for_bundle(path: str | Path, manifest: dict) -> RuntimePeel:
    """A peel file of either kind (a trained peel, or its runtime export) in runtime form for a bundle, checked:
    base = the bundle's weights, a rank some bucket holds, layers of the bundle's layout, sane float32 values."""
    from banana_sdk.peels.io import MAX_ABS_VALUE, check_base, load_peel

    slots, buckets = layout_from_manifest(manifest)
    base = (manifest.get("model") or {}).get("weights_sha256") or ""
    if _file_format(path) == "banana-peel":
        peel = load_peel(path)
        check_base(peel, base, "this bundle")
        bucket_for(peel.config.rank, buckets)
        return to_runtime(peel, slots, sparse=True)
    meta, a, b = load_runtime(path)
    try:
        rank = int(meta["rank"])
        if rank < 1:
            raise ValueError(f"rank {rank}")
        _covered(meta, slots, path)
    except (KeyError, ValueError, TypeError) as exc:
        raise PeelError(f"{path}: runtime peel metadata is incomplete or invalid ({exc})") from None
    if meta.get("base_hash") != base:
        raise PeelError(f"peel {meta.get('name')!r} was made for base {meta.get('base_model')!r} "
                        f"({str(meta.get('base_hash'))[:12]}...), not for this bundle ({base[:12]}...)")
    bucket_for(rank, buckets)
    a, b = a.astype(np.float32).ravel(), b.astype(np.float32).ravel()
    if max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0)) > MAX_ABS_VALUE:
        raise PeelError(f"{path}: peel weights are outside a sane range (> {MAX_ABS_VALUE})")
    return meta, a, b


def _file_format(path: str | Path) -> str | None:
    """The `format` metadata of a safetensors file (None if unreadable: the loader then says why)."""
    try:
        with safe_open(str(path), framework="numpy") as handle:
            return (handle.metadata() or {}).get("format")
    except (SafetensorError, OSError, ValueError):
        return None


def _covered(meta: dict[str, str], slots: list[LayerSlot], path: str | Path = "peel") -> list[LayerSlot]:
    """The layout slots a runtime peel covers (all without `slots` metadata); PeelError for unknown names."""
    if "slots" not in meta:
        return slots
    names = json.loads(meta["slots"])
    known = {s.name: s for s in slots}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PeelError(f"{path}: runtime peel adapts layers this bundle does not have: {unknown[:3]}")
    wanted = set(names)
    return [s for s in slots if s.name in wanted]


def _rank(meta: dict[str, str]) -> int:
    """The positive integer `rank` of a runtime peel's metadata, else PeelError naming the peel."""
    try:
        rank = int(meta["rank"])
    except (KeyError, TypeError, ValueError):
        raise PeelError(f"runtime peel {meta.get('name')!r} has no valid integer 'rank' in its metadata") from None
    if rank < 1:
        raise PeelError(f"runtime peel {meta.get('name')!r} has rank {rank}; a peel's rank must be >= 1")
    return rank


def stack_runtime(
    files: list[tuple[dict[str, str], np.ndarray, np.ndarray, float]], slots: list[LayerSlot], buckets: tuple[int, ...],
) -> tuple[int, np.ndarray, np.ndarray]:
    """(bucket, lora_a, lora_b): weighted runtime peels stacked along rank and zero-padded to a bucket."""
    ranks = [_rank(meta) for meta, _, _, _ in files]
    bucket = bucket_for(sum(ranks), buckets) if files else min(buckets)
    covered = [{s.name for s in _covered(meta, slots)} for meta, _, _, _ in files]
    a_out, b_out = [], []
    oa = [0] * len(files)
    ob = [0] * len(files)
    for slot in slots:
        a = np.zeros((bucket, slot.in_features), np.float32)
        b = np.zeros((slot.out_features, bucket), np.float32)
        offset = 0
        for k, ((_, fa, fb, weight), r) in enumerate(zip(files, ranks, strict=True)):
            na, nb = r * slot.in_features, r * slot.out_features
            if slot.name in covered[k]:
                if oa[k] + na > fa.size or ob[k] + nb > fb.size:
                    raise PeelError(f"runtime peel {files[k][0].get('name')!r} does not match this bundle's layout")
                a[offset:offset + r] = fa[oa[k]:oa[k] + na].reshape(r, slot.in_features)
                # widen first: an F16 file's B is scaled in float32, like the app (float16 * weight would round)
                b[:, offset:offset + r] = fb[ob[k]:ob[k] + nb].astype(np.float32).reshape(slot.out_features, r) \
                    * np.float32(weight)
                oa[k] += na
                ob[k] += nb
            offset += r
        a_out.append(a.ravel())
        b_out.append(b.ravel())
    for k, (_, fa, fb, _) in enumerate(files):
        if oa[k] != fa.size or ob[k] != fb.size:
            raise PeelError(f"runtime peel {files[k][0].get('name')!r} does not match this bundle's layout")
    return bucket, np.concatenate(a_out), np.concatenate(b_out)

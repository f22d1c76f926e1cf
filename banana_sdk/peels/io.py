"""Peel files: safetensors with metadata (schema, base model id + hash, rank, alpha, targets)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from banana_sdk.fileio import atomic_write_bytes
from banana_sdk.peels import quant
from banana_sdk.peels.config import PeelConfig, PeelError, Storage, check_config, check_schema, parse_choice
from banana_sdk.peels.lora import Peel

MAX_ABS_VALUE = 1.0e3  # larger LoRA entries mean a diverged or foreign file


def save_peel(peel: Peel, path: str | Path, extra: dict | None = None, storage: Storage = Storage.FLOAT16) -> Path:
    """Write `peel` atomically as safetensors; keys `<layer>.lora_A` (r, in) / `<layer>.lora_B` (out, r) in
    `storage` (INT8 adds `<key>.scale`, see `banana_sdk.peels.quant`).

    `extra` (JSON-able, e.g. how the peel was trained) is stored as the metadata entry `training`."""
    path = Path(path)
    storage = parse_choice(Storage, storage, "peel storage")
    dtype = np.float32 if storage is Storage.FLOAT32 else np.float16
    tensors: dict[str, np.ndarray] = {}
    for layer, (a, b) in peel.tensors.items():
        for key, value in ((f"{layer}.lora_A", a), (f"{layer}.lora_B", b)):
            tensors.update(quant.store(key, value.detach().cpu().float().numpy(), storage is Storage.INT8, dtype))
    metadata = {
        "format": "banana-peel", "schema_version": str(storage.schema_version), "name": peel.name,
        "base_model": peel.base_model, "base_hash": peel.base_hash, "rank": str(peel.config.rank),
        "alpha": str(peel.config.alpha), "targets": json.dumps(list(peel.config.targets)),
        "text_encoder": json.dumps(peel.config.text_encoder),
    }
    if extra:
        metadata["training"] = json.dumps(extra, sort_keys=True)
    atomic_write_bytes(path, save(tensors, metadata=metadata))
    return path


def load_peel(path: str | Path) -> Peel:
    """Read and validate a peel file; PeelError says what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise PeelError(f"peel file {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = handle.metadata() or {}
            raw = {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise PeelError(f"{path} is not a readable safetensors file ({exc})") from None
    if meta.get("format") != "banana-peel":
        raise PeelError(f"{path} is not a banana peel (metadata format {meta.get('format')!r})")
    check_schema(meta, str(path))
    try:
        config = PeelConfig(rank=int(meta["rank"]), alpha=float(meta["alpha"]),
                            targets=tuple(json.loads(meta["targets"])),
                            text_encoder=bool(json.loads(meta.get("text_encoder", "false"))))
    except (KeyError, ValueError, TypeError) as exc:
        raise PeelError(f"{path}: peel metadata is incomplete ({exc})") from None
    check_config(config)
    tensors = {}
    for key in sorted(raw):
        if not key.endswith(".lora_A"):
            continue
        layer = key[: -len(".lora_A")]
        if f"{layer}.lora_B" not in raw:
            raise PeelError(f"{path}: {layer} has lora_A but no lora_B")
        try:
            a, b = (torch.from_numpy(quant.values(raw, f"{layer}.lora_{x}")).float() for x in "AB")
        except ValueError as exc:
            raise PeelError(f"{path}: {exc}") from None
        if a.shape[0] != config.rank or b.shape[1] != config.rank:
            raise PeelError(f"{path}: {layer} has rank {a.shape[0]}/{b.shape[1]}, metadata says {config.rank}")
        for t in (a, b):
            if not torch.isfinite(t).all() or t.abs().max() > MAX_ABS_VALUE:
                raise PeelError(f"{path}: {layer} has weights outside a sane range (non-finite or > {MAX_ABS_VALUE})")
        tensors[layer] = (a, b)
    if not tensors:
        raise PeelError(f"{path} holds no LoRA tensors")
    try:
        training = json.loads(meta.get("training", "{}"))
    except ValueError:
        raise PeelError(f"{path}: its training record is not JSON") from None
    return Peel(meta.get("name", path.stem), config, meta.get("base_hash", ""), meta.get("base_model", ""), tensors,
                training if isinstance(training, dict) else {})


def check_base(peel: Peel, base_hash: str, what: str) -> None:
    """Refuse a peel trained on other weights, naming the base it needs."""
    if peel.base_hash != base_hash:
        raise PeelError(f"peel {peel.name!r} was made for base {peel.base_model!r} ({peel.base_hash[:12]}...), "
                        f"not for {what} ({base_hash[:12]}...)")


"""Peel operations used by the CLI: merge into a checkpoint, export for a bundle."""

from __future__ import annotations

from pathlib import Path

from banana_sdk.checkpoint import load_checkpoint, save_checkpoint, weights_hash
from banana_sdk.peels.device import export_runtime, layout_from_manifest
from banana_sdk.peels.io import check_base, load_peel
from banana_sdk.peels.lora import merge


def merge_into_checkpoint(model_dir: Path, peels: list[tuple[Path, float]], out: Path) -> Path:
    """A new checkpoint with weighted peels folded in; the base checkpoint is never modified."""
    base_hash = weights_hash(model_dir)
    loaded = []
    for path, weight in peels:
        peel = load_peel(path)
        check_base(peel, base_hash, str(model_dir))
        loaded.append((peel, weight))
    model, extra = load_checkpoint(model_dir)
    merged = merge(model, loaded)
    merged.config = model.config
    return save_checkpoint(merged, out, extra={**extra, "merged_peels": {p.name: w for p, w in loaded},
                                               "base_hash": base_hash})


def export_for_bundle(peel_path: Path, bundle: Path, out: Path) -> Path:
    """Runtime peel file for `bundle` (checks the peel's base against the bundle's weights)."""
    from converters.bundle import load_manifest

    manifest = load_manifest(bundle)
    peel = load_peel(peel_path)
    check_base(peel, manifest["model"].get("weights_sha256") or "", f"bundle {bundle}")
    slots, _ = layout_from_manifest(manifest)
    return export_runtime(peel, slots, out)

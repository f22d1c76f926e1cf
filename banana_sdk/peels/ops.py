"""Peel operations used by the CLI: merge into a checkpoint, attach to a pipeline, export for a bundle.

Every operation checks all its peels (file, values, base hash, ranks, layers) before it writes anything,
and never writes into the base checkpoint or bundle.
"""

from __future__ import annotations

from pathlib import Path

from banana_sdk.checkpoint import int4_block_size, load_checkpoint, save_checkpoint, weights_hash
from banana_sdk.peels.config import PeelError, Storage, check_weight
from banana_sdk.peels.device import export_runtime, layout_from_manifest
from banana_sdk.peels.io import check_base, load_peel
from banana_sdk.peels.lora import Peel, PeelStack, merge
from banana_sdk.peels.runtime import bucket_for


def load_checked(model_dir: Path, peels: list[tuple[Path, float]]) -> list[tuple[Peel, float]]:
    """Load weighted peel files and check each against the checkpoint's weights (PeelError names the base)."""
    base_hash = weights_hash(model_dir)
    loaded = []
    for path, weight in peels:
        check_weight(weight, str(path))
        peel = load_peel(path)
        check_base(peel, base_hash, str(model_dir))
        loaded.append((peel, weight))
    return loaded


def merge_into_checkpoint(model_dir: Path, peels: list[tuple[Path, float]], out: Path, *,
                          overwrite: bool = True) -> Path:
    """A new checkpoint with weighted peels folded in; the base checkpoint is never modified. With `overwrite`
    False (the CLI without --force) an `out` folder that already holds files is refused."""
    from banana_sdk.fileio import refuse_overwrite

    if Path(out).resolve() == Path(model_dir).resolve():
        raise PeelError(f"--out {out} is the base checkpoint; merge into a new directory")
    refuse_overwrite(out, overwrite, folder=True)
    loaded = load_checked(model_dir, peels)
    model, extra = load_checkpoint(model_dir)
    merged = merge(model, loaded)
    merged.config = model.config
    regrid_merged(merged, extra, {layer for peel, _ in loaded for layer in peel.tensors})
    return save_checkpoint(merged, out, extra={**extra, "merged_peels": {p.name: w for p, w in loaded},
                                               "base_hash": weights_hash(model_dir)})


def regrid_merged(model, extra: dict, layers: set[str], seed: int = 0) -> None:  # noqa: ANN001
    """A checkpoint of DQAT's quantized weights (`extra.quantization_aware.weights` "quantized") holds INT4 grid
    points; a merged peel's small change would be rounded away by the converter, so the merged layers are moved
    onto the grid by unbiased stochastic rounding (`dither_project_`, seeded: the same merge, the same file).
    Other checkpoints are left as merged."""
    import torch

    from banana_sdk.training.fakequant import QuantSpec, dither_project_

    qa = extra.get("quantization_aware") or {}
    if qa.get("weights") != "quantized":
        return
    spec = QuantSpec(block_size=int4_block_size(extra),
                     storage_dtype=torch.float16 if qa.get("fp16_storage", True) else None)
    generator = torch.Generator().manual_seed(seed)
    for component in ("text_encoder", "denoiser"):
        prefix = f"{component}."
        names = {f"{layer[len(prefix):]}.weight" for layer in layers if layer.startswith(prefix)}
        if names:
            dither_project_(getattr(model, component), spec, names, generator)


def attach_to_pipeline(pipe, model_dir: Path, peels: list[tuple[Path, float]]) -> PeelStack:  # noqa: ANN001
    """Attach weighted peels (checked against the checkpoint's weights) to a PyTorch pipeline's model."""
    stack = PeelStack(pipe.model)
    for peel, weight in load_checked(model_dir, peels):
        stack.attach(peel, weight)
    return stack


def export_for_bundle(peel_path: Path, bundle: Path, out: Path, storage: Storage = Storage.FLOAT16, *,
                      overwrite: bool = True, name: str | None = None, alpha: float | None = None) -> Path:
    """Runtime peel file for `bundle` (checks the peel's base, rank and layers against the bundle). With
    `overwrite` False (the CLI without --force) an existing `out` is refused. For a diffusers bundle `peel_path`
    is a PEFT / diffusers / kohya LoRA file of its UNet (`banana_sdk.peels.diffusers_lora`; `name`: the peel's
    name, default the file's stem; `alpha`: for files that store none)."""
    from banana_sdk.bundle.reader import load_manifest
    from banana_sdk.fileio import refuse_overwrite

    bundle, out = Path(bundle), Path(out)
    if bundle.resolve() in out.resolve().parents:
        raise PeelError(f"--out {out} is inside the bundle {bundle}; write runtime peels outside it "
                        "(a bundle is never modified)")
    refuse_overwrite(out, overwrite)
    manifest = load_manifest(bundle)
    if manifest["model"].get("kind") == "diffusers":
        from banana_sdk.peels.device import save_runtime
        from banana_sdk.peels.diffusers_lora import lora_for_bundle

        return save_runtime(lora_for_bundle(peel_path, manifest, name, alpha), out, storage)
    if name is not None or alpha is not None:
        raise PeelError("--name / --alpha go with a LoRA file for a diffusers bundle; a banana peel keeps its own")
    peel = load_peel(peel_path)
    check_base(peel, manifest["model"].get("weights_sha256") or "", f"bundle {bundle}")
    slots, buckets = layout_from_manifest(manifest)
    bucket_for(peel.config.rank, buckets)
    return export_runtime(peel, slots, out, sparse=True, storage=storage)

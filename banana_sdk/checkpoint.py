"""Checkpoint directories: `config.json` (versioned) + `model.safetensors`.

Layout of a checkpoint dir written by `save_checkpoint`:
    config.json        {"format": "banana-checkpoint", "schema_version": 1, "model": {...}, "extra": {...}}
    model.safetensors  all parameters (fp32 or fp16), keys = `BananaModel.state_dict()` names
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from banana_sdk.config import ModelConfig
from banana_sdk.errors import BananaError, CheckpointError
from banana_sdk.fileio import atomic_write_bytes, atomic_write_json, read_versioned_json, sha256_file
from banana_sdk.models.model import BananaModel, build_model

CHECKPOINT_FORMAT = "banana-checkpoint"
CHECKPOINT_SCHEMA_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_checkpoint(
    model: BananaModel, directory: str | Path, dtype: torch.dtype = torch.float32,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write weights then config (each atomically) into `directory`; returns it."""
    directory = Path(directory)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_FILE, save(state, metadata={"format": CHECKPOINT_FORMAT}))
    atomic_write_json(directory / CONFIG_FILE, {
        "format": CHECKPOINT_FORMAT,
        "schema_version": CHECKPOINT_SCHEMA_VERSION,
        "model": model.config.to_dict(),
        "extra": extra or {},
    })
    return directory


def read_checkpoint_config(directory: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """(config, extra) of a checkpoint dir; CheckpointError says what is wrong."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {str(directory)!r} does not exist")
    meta = read_versioned_json(directory / CONFIG_FILE, fmt=CHECKPOINT_FORMAT, max_version=CHECKPOINT_SCHEMA_VERSION,
                               error=CheckpointError, what="banana checkpoint config", require_version=False)
    path = directory / CONFIG_FILE
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (BananaError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config ({exc})") from None
    return config, dict(meta.get("extra") or {})


DEFAULT_INT4_BLOCK_SIZE = 32  # the INT4 block size of a checkpoint that records none (not DQAT-trained for int4)


def int4_block_size(extra: dict[str, Any]) -> int:
    """The INT4 block size (0 = channelwise) a checkpoint converts and trains at by default: the one it was
    quantization-aware trained for (its config's `extra.quantization_aware`, written by `train qat`, kept by
    `subject train`), else `DEFAULT_INT4_BLOCK_SIZE`."""
    qat = extra.get("quantization_aware")
    block = qat.get("block_size") if isinstance(qat, dict) and qat.get("recipe") == "int4" else None
    return block if isinstance(block, int) and not isinstance(block, bool) else DEFAULT_INT4_BLOCK_SIZE


def load_checkpoint(directory: str | Path, device: str = "cpu") -> tuple[BananaModel, dict[str, Any]]:
    """(model in eval mode with fp32 weights, extra) from a checkpoint dir."""
    directory = Path(directory)
    config, extra = read_checkpoint_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing")
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is corrupt: {exc}") from None
    model = build_model(config, device)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match config {config.name!r}: "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{weights}: {key} has shape {tuple(tensor.shape)}, config needs {tuple(expected[key].shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval(), extra


def weights_hash(directory: str | Path) -> str:
    """sha256 of a checkpoint's weights file (identifies the base model of bundles and peels)."""
    return sha256_file(Path(directory) / WEIGHTS_FILE)


def load_component(directory: str | Path, name: str) -> torch.nn.Module:
    """One part (`text_encoder`, `denoiser`, `vae`, or a model's `subject_encoder`) with its weights, nothing else
    loaded."""
    from safetensors import safe_open

    from banana_sdk.models.model import build_component

    directory = Path(directory)
    config, _ = read_checkpoint_config(directory)
    module = build_component(config, name, "meta")
    prefix = f"{name}."
    weights = directory / WEIGHTS_FILE
    try:
        with safe_open(str(weights), framework="pt") as handle:
            state = {k[len(prefix):]: handle.get_tensor(k).float() for k in handle.keys() if k.startswith(prefix)}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is unreadable: {exc}") from None
    expected = module.state_dict()
    if set(state) != set(expected):
        raise CheckpointError(f"{weights}: {name} weights do not match config {config.name!r}")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{weights}: {prefix}{key} has shape {tuple(tensor.shape)}, "
                                  f"config needs {tuple(expected[key].shape)}")
    module = module.to_empty(device="cpu")
    module.load_state_dict(state)
    return module.eval()

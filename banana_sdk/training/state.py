"""Resumable training state: one file, `train_state.pt`, written atomically beside the exported checkpoint.

A run directory holds:
    train_state.pt     everything needed to resume: step, full model weights, optimizer, EMA, elapsed time
    config.json        } the exported banana checkpoint (EMA weights when EMA is on), loadable by
    model.safetensors  } `Pipeline.from_pretrained` and the next stage
    log.jsonl          one JSON record every `log_every` steps
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from banana_sdk.config import ModelConfig
from banana_sdk.fileio import atomic_open
from banana_sdk.training.common import TrainingError

STATE_FILE = "train_state.pt"
LOG_FILE = "log.jsonl"
STATE_FORMAT = "banana-train-state"
STATE_VERSION = 1


def architecture(config: ModelConfig) -> dict[str, Any]:
    """The parts of a config that shape the weights (sampler defaults and latent scale excluded)."""
    data = config.to_dict()
    data.pop("sampler", None)
    data.pop("name", None)
    data["vae"] = {k: v for k, v in data["vae"].items() if k != "latent_scale"}
    return data


def save_train_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write train_state.pt atomically (a crash mid-write keeps the previous one)."""
    payload = dict(state)
    payload["format"], payload["version"] = STATE_FORMAT, STATE_VERSION
    payload["meta"] = json.dumps(payload.get("meta", {}))
    with atomic_open(run_dir / STATE_FILE) as handle:
        torch.save(payload, handle)


def load_train_state(run_dir: Path, stage: str, config: ModelConfig) -> dict[str, Any]:
    """The state saved in `run_dir`, checked to belong to `stage` and `config`; TrainingError otherwise."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        raise TrainingError(f"{path} is missing: nothing to resume (drop --resume to start a new run)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(state["meta"])
    except (RuntimeError, EOFError, OSError, KeyError, TypeError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        raise TrainingError(
            f"{path} is corrupt ({type(exc).__name__}); move it away to start over (--force), nothing was changed"
        ) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainingError(f"{path} is not a banana training state")
    if state.get("version", 0) > STATE_VERSION:
        raise TrainingError(f"{path} was written by a newer banana-sdk (state version {state['version']})")
    if meta.get("stage") != stage:
        raise TrainingError(f"{run_dir} holds a {meta.get('stage')!r} run, not {stage!r}; pick another --out")
    saved = meta.get("model_config") or {}
    if architecture(ModelConfig.from_dict(saved)) != architecture(config):
        raise TrainingError(
            f"{run_dir} was trained for model {saved.get('name')!r} with a different architecture than "
            f"{config.name!r}; resume with the same preset or pick another --out"
        )
    state["meta"] = meta
    return state


def append_log(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / LOG_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")

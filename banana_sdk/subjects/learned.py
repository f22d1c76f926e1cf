"""Run a checkpoint's learned reference encoder on the host: reference pixels -> one subject token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from banana_sdk.subjects.encoder import SubjectError, reference_crop, standardise


def load_subject_encoder(model_dir: str | Path) -> torch.nn.Module:
    """The learned encoder of checkpoint `model_dir` with its weights (SubjectError if it has none)."""
    from banana_sdk.checkpoint import load_component, read_checkpoint_config
    from banana_sdk.errors import BananaError

    try:
        config, _ = read_checkpoint_config(model_dir)
    except BananaError as exc:
        raise SubjectError(f"--model: {exc}") from None
    if config.subject_encoder is None:
        raise SubjectError(f"model {model_dir} has no learned reference encoder (train one with `banana subject "
                           "train --identities procedural`); leave out --model to use the descriptor")
    try:
        return load_component(model_dir, "subject_encoder")
    except BananaError as exc:
        raise SubjectError(f"cannot read the subject encoder of {model_dir}: {exc}") from None


@torch.no_grad()
def encode_with_model(model_dir: str | Path, images: list[np.ndarray], names: list[str]) -> np.ndarray:
    """(text width,) float32: the mean of the encoder's tokens of validated reference pixels, standardised."""
    encoder = load_subject_encoder(model_dir)
    crops = np.stack([reference_crop(im, encoder.cfg.crop, n) for im, n in zip(images, names, strict=True)])
    tokens = encoder(torch.from_numpy(crops)).numpy().astype(np.float64)
    return standardise(tokens.mean(axis=0))

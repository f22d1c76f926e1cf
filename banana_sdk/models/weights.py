"""Load a small module's safetensors weights with a check against the module its config builds."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn


def load_weights(model: nn.Module, weights: Path, error: type[Exception], config_text: str) -> nn.Module:
    """`model` (built from its config) with the tensors of `weights`, widened to float32, in eval mode.

    `error(one line)` when the file is missing, corrupt, or its keys/shapes differ from the model's
    (`config_text` names the config in that message)."""
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise error(f"{weights} is missing or corrupt: {exc}") from None
    expected = model.state_dict()
    if set(state) != set(expected) or any(state[k].shape != expected[k].shape for k in expected):
        raise error(f"{weights} does not match its config {config_text}")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()

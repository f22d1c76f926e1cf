"""PyTorch signature module -> fp32 .tflite file through litert-torch."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from converters.errors import ConversionError

LIGHTWEIGHT_PARAMS = 50_000_000  # above this, export with lazy constants (lower peak memory)


def export_signature(
    module: nn.Module, name: str, inputs: dict[str, np.ndarray], path: Path,
    extra: list[tuple[str, nn.Module, dict[str, np.ndarray]]] = (),  # type: ignore[assignment]
) -> None:
    """Trace `module` on `inputs` and write an fp32 .tflite to `path` (not atomic: a temp path).

    `extra`: more (name, module, inputs) signatures in the same file; modules that share parameters with
    `module` share their weight buffers in the file (one copy)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import litert_torch

    litert_torch.config.show_progress = False
    params = sum(p.numel() for p in module.parameters())

    def sample(values: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in values.items()}

    try:
        converter = litert_torch.Converter().signature(name, module.eval(), sample_kwargs=sample(inputs))
        for extra_name, extra_module, extra_inputs in extra:
            converter = converter.signature(extra_name, extra_module.eval(), sample_kwargs=sample(extra_inputs))
        with torch.no_grad(), contextlib.redirect_stdout(None):
            model = converter.convert(lightweight_conversion=params > LIGHTWEIGHT_PARAMS)
        model.export(str(path))
    except OSError:
        raise
    except Exception as exc:  # litert-torch raises many types; report one line
        raise ConversionError(f"litert-torch could not convert {name}: {type(exc).__name__}: {exc}") from None


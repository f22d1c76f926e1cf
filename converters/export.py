"""PyTorch signature module -> fp32 .tflite file through litert-torch."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from converters.errors import ConversionError

LIGHTWEIGHT_PARAMS = 50_000_000  # above this, export with lazy constants (lower peak memory) and NHWC-stored
# ^ convolution weights (`channels_last_conv_weights`)


class OHWIConv2d(nn.Module):
    """A Conv2d whose weight is stored (out, kh, kw, in/groups), the layout TFLite's CONV_2D wants: the export's
    NCHW -> NHWC permutation of the weight then cancels against this one instead of materialising one more copy
    of every convolution weight (measured: 6 x 1280x1280x3x3 convs peak 2.03 -> 1.51 GB in export; SD 1.5's
    UNet 11.5 GB -> see BENCHMARKS realsize). Same numbers as the Conv2d it replaces."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().permute(0, 2, 3, 1).contiguous(), requires_grad=False)
        self.bias = conv.bias
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.weight.permute(0, 3, 1, 2), self.bias, self.stride, self.padding,
                                    self.dilation, self.groups)


def channels_last_conv_weights(module: nn.Module) -> int:
    """Replace, in place, every k x k (k > 1) zero-padded nn.Conv2d under `module` by an OHWIConv2d (1 x 1 convs
    keep their module, and so their names: recipes select some of them by scope); returns how many."""
    swaps = [(parent, name, child) for parent in module.modules() for name, child in parent.named_children()
             if type(child) is nn.Conv2d and child.padding_mode == "zeros" and tuple(child.kernel_size) != (1, 1)
             and isinstance(child.padding, tuple)]
    for parent, name, child in swaps:
        setattr(parent, name, OHWIConv2d(child))
    return len(swaps)


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

    if params > LIGHTWEIGHT_PARAMS:
        channels_last_conv_weights(module)
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


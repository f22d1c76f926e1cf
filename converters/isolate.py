"""Run the export step of a big signature in a child process, so its memory goes back to the OS.

Measured on nano-banana-2 (1.8B, this 2-core/24 GiB machine): in one process the denoiser's export peaks at
10.2 GiB, and after the torch module is freed the process still holds 8.4 GiB (allocator high-water mark),
so quantizing from the file on top of it peaked at 16.7 GiB. With the export in a spawned child, the parent
only ever holds the quantize-and-gate working set (~8.5 GiB when the quantizer read the fp32 file whole; since it
streams the weights, `converters.recipes.quantize_file`, ~2.7 bytes per parameter) and the peak is the export's own.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from converters.errors import ConversionError

Extra = list[tuple[str, Callable[[nn.Module], nn.Module], dict[str, np.ndarray]]]  # (name, wrap, inputs)


def _child(make_module: Callable[..., nn.Module], name: str, inputs: dict[str, np.ndarray], path: str,
           reference_path: str, queue, extra: Extra = (), with_reference: bool = False) -> None:  # noqa: ANN001
    try:
        from converters.export import export_signature
        from converters.signatures import torch_outputs

        module, own = make_module(inputs) if with_reference else (make_module(), None)
        extras = [(n, wrap(module), i) for n, wrap, i in extra]
        export_signature(module, name, inputs, Path(path), extras)
        references = {name: own if own is not None else torch_outputs(module, inputs),
                      **{n: torch_outputs(m, i) for n, m, i in extras}}
        np.savez(reference_path, **{f"{sig}/{k}": v for sig, out in references.items() for k, v in out.items()})
        queue.put(("ok", ""))
    except Exception as exc:  # reported to the parent as one line
        message = str(exc) if exc.__class__.__module__.startswith(("converters", "banana_sdk")) else (
            f"{type(exc).__name__}: {exc}")
        queue.put(("error", message or traceback.format_exc(limit=1)))


def export_isolated(
    make_module: Callable[..., nn.Module], name: str, inputs: dict[str, np.ndarray], path: Path,
    extra: Extra = (),  # type: ignore[assignment]
    with_reference: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """Export `make_module()` (plus the `extra` signatures built from it) to `path` in a spawned child;
    returns the PyTorch reference outputs by signature. `with_reference`: `make_module(inputs)` returns
    (module, the gate's own reference outputs on `inputs`, e.g. the unrewritten model's forward)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    reference_path = path.with_suffix(".reference.npz")
    proc = ctx.Process(target=_child, args=(make_module, name, inputs, str(path), str(reference_path), queue,
                                            list(extra), with_reference))
    proc.start()
    proc.join()
    status, message = queue.get() if not queue.empty() else ("error", f"exit code {proc.exitcode}")
    if status != "ok":
        if proc.exitcode and proc.exitcode < 0:
            message = f"killed by signal {-proc.exitcode} (out of memory?)"
        raise ConversionError(f"export of {name} failed in the worker process: {message}")
    references: dict[str, dict[str, np.ndarray]] = {}
    with np.load(reference_path) as data:
        for key in data.files:
            sig, output = key.split("/", 1)
            references.setdefault(sig, {})[output] = data[key]
    reference_path.unlink()
    return references

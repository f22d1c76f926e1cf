"""The manifest's delegate plan: per signature, which accelerators to try in which order, and why.

The app and the device harness read `manifest["delegate_plan"][signature]["order"]` and try each entry until
one loads (docs/DESIGN.md §5.1). An accelerator enters the order only when the pre-flight puts the whole
signature on it in one partition; partial delegation is recorded but not recommended (boundary copies
usually cost more than they save). Preference: NPU, then GPU (the LiteRT GPU accelerator the app uses),
then NNAPI (only up to Android 14, API 34: deprecated from 35), then XNNPACK on the CPU, always last.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from converters.preflight.engine import SignatureResult, run_table
from converters.preflight.graph import DelegateGraph, read_delegate_graphs
from converters.preflight.tables import gpu_classic, mldrift, nnapi, npu

NNAPI_LEVELS = (27, 28, 29, 30, 31, 33, 34)  # levels whose rules differ (32 behaves like 31)
NNAPI_REPORTED = (30, 34)  # levels recorded in the manifest


def _summary(result: SignatureResult) -> dict[str, Any]:
    return {"delegated": result.delegated, "total": result.total, "partitions": result.partitions,
            "boundary_bytes": result.boundary_bytes}


def _graphs(source: str | Path | Iterable[DelegateGraph]) -> list[DelegateGraph]:
    if not isinstance(source, (str, Path)):
        return list(source)
    directory = Path(source)
    graphs: dict[str, DelegateGraph] = {}
    for path in sorted(directory.glob("*.tflite")):
        if path.name.startswith("."):
            continue
        # every signature of the file: denoise.tflite also holds the runtime-peel signatures denoise_rN
        for graph in read_delegate_graphs(path):
            graphs.setdefault(graph.signature, graph)
    return list(graphs.values())


def signature_plan(graph: DelegateGraph) -> dict[str, Any]:
    """The plan entry of one signature."""
    gpu = run_table(graph, mldrift.MLDRIFT)
    gpu_cl = run_table(graph, gpu_classic.OPENCL)
    npu_q = run_table(graph, npu.QUALCOMM)
    nn = {api: run_table(graph, nnapi.NNAPI, api) for api in NNAPI_LEVELS}
    nnapi_full = [api for api, r in nn.items() if r.full]
    order = [name for name, ok in (("npu", npu_q.full), ("gpu", gpu.full), ("nnapi", bool(nnapi_full))) if ok]
    return {
        "order": [*order, "cpu"],
        "nnapi_max_api": nnapi.MAX_API,
        "nnapi_min_api": min(nnapi_full) if nnapi_full else None,
        "gpu": {"backend": "mldrift", **_summary(gpu)},
        "gpu_opencl": _summary(gpu_cl),
        "nnapi": {f"api{api}": _summary(nn[api]) for api in NNAPI_REPORTED},
        "npu": {"vendor": "qualcomm", "source": "table", **_summary(npu_q)},
    }


def delegate_plan(source: str | Path | Iterable[DelegateGraph]) -> dict[str, dict[str, Any]]:
    """{signature: plan} for a directory of `<signature>.tflite` files (a bundle or a converter's staging
    directory) or for delegate graphs already read."""
    return {g.signature: signature_plan(g) for g in sorted(_graphs(source), key=lambda g: g.signature)}

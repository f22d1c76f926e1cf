"""The view of a signature's subgraph that a delegate sees: nodes with their op options and tensor roles.

Built on `banana_sdk.bundle.flatbuffer.read_graph` (which gives tensors and ops); this module adds what the
delegates' support checks look at and `read_graph` leaves out: builtin options (fused activation, keep_dims,
softmax beta, ...), which tensors are runtime values versus constants, how weights are quantized (affine
or blockwise) and the producer/consumer links the partitioner needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from banana_sdk.bundle.flatbuffer import ModelGraph, SignatureGraph, TensorInfo, read_graph
from banana_sdk.errors import BundleError

ACTIVATIONS = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
DTYPE_BYTES = {"FLOAT32": 4.0, "FLOAT16": 2.0, "BFLOAT16": 2.0, "INT32": 4.0, "INT64": 8.0, "INT16": 2.0,
               "INT8": 1.0, "UINT8": 1.0, "BOOL": 1.0, "INT4": 0.5, "UINT32": 4.0, "UINT16": 2.0,
               "FLOAT64": 8.0, "UINT64": 8.0, "INT2": 0.25}


@dataclass(frozen=True)
class Tensor:
    index: int  # tensor index in the subgraph
    name: str  # tensor name in the file, or `tensor #<index>` (our converter strips inner names)
    shape: tuple[int, ...]  # static shape
    dtype: str  # TFLite type name ("FLOAT32", "INT4", ...)
    constant: bool  # backed by a buffer (weights, shapes, axes)
    quantization: str  # "none", "affine" (per tensor/channel scales) or "blockwise"
    values: tuple[float, ...] | None  # the values of small constants (<= 16 elements), else None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of one copy of this tensor (what a partition boundary moves)."""
        return int(np.ceil(int(np.prod(self.shape, dtype=np.int64)) * DTYPE_BYTES.get(self.dtype, 4.0)))


@dataclass(frozen=True)
class Node:
    index: int  # position in the execution plan
    op: str  # builtin op name ("FULLY_CONNECTED", "CUSTOM:DISPATCH_OP", "STABLEHLO_COMPOSITE:odml.x")
    version: int  # op version from the operator code
    inputs: tuple[Tensor | None, ...]  # input tensors in order (None = optional input left out)
    outputs: tuple[Tensor, ...]  # output tensors
    options: dict[str, Any]  # builtin options by field name (fusedActivationFunction as its name)

    @property
    def runtime_inputs(self) -> tuple[Tensor, ...]:
        """Inputs computed at run time (not constants)."""
        return tuple(t for t in self.inputs if t is not None and not t.constant)

    @property
    def activation(self) -> str:
        """Fused activation name ("NONE" when the op has none)."""
        return str(self.options.get("fusedActivationFunction", "NONE"))


@dataclass
class DelegateGraph:
    signature: str  # signature key
    path: Path  # the .tflite file
    nodes: list[Node]  # execution order
    inputs: tuple[Tensor, ...]  # signature inputs
    outputs: tuple[Tensor, ...]  # signature outputs
    tensors: dict[int, Tensor] = field(default_factory=dict)  # every tensor by index

    @cached_property
    def producers(self) -> dict[int, int]:
        """tensor index -> index of the node that writes it."""
        return {t.index: n.index for n in self.nodes for t in n.outputs}

    @cached_property
    def consumers(self) -> dict[int, list[int]]:
        """tensor index -> indices of the nodes that read it."""
        out: dict[int, list[int]] = {}
        for n in self.nodes:
            for t in n.inputs:
                if t is not None:
                    out.setdefault(t.index, []).append(n.index)
        return out

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return dict(sorted(counts.items()))


def _quantization(info: TensorInfo) -> str:
    if info.block_size:
        return "blockwise"
    return "affine" if info.scales else "none"


def _small_values(model: ModelGraph, signature: str, info: TensorInfo) -> tuple[float, ...] | None:
    if not info.constant or int(np.prod(info.shape, dtype=np.int64)) > 16 or info.dtype not in (
            "INT32", "INT64", "FLOAT32", "FLOAT16", "INT8", "UINT8", "BOOL"):
        return None
    try:
        return tuple(float(v) for v in np.asarray(model.constant(signature, info.index)).reshape(-1))
    except (BundleError, ValueError, KeyError):
        return None


def _options(op: schema.OperatorT) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for raw in (op.builtinOptions, getattr(op, "builtinOptions2", None)):
        if raw is None:
            continue
        for key, value in vars(raw).items():
            if isinstance(value, bytes):
                value = value.decode(errors="replace")
            options[key] = ACTIVATIONS.get(value, value) if key == "fusedActivationFunction" else value
    return options


def _op_name(base: str, options: dict[str, Any]) -> str:
    if base == "STABLEHLO_COMPOSITE" and options.get("name"):
        return f"STABLEHLO_COMPOSITE:{options['name']}"
    return base


def delegate_graph(model: ModelGraph, signature: str) -> DelegateGraph:
    """The delegate view of one signature of a parsed file; BundleError if the signature is absent."""
    if signature not in model.signatures:
        raise BundleError(f"{model.path} has no signature {signature!r} (has {sorted(model.signatures)})")
    sig: SignatureGraph = model.signatures[signature]
    sub = model.model.subgraphs[sig.subgraph]
    tensors = {info.index: Tensor(index=info.index, name=info.name or f"tensor #{info.index}", shape=info.shape,
                                  dtype=info.dtype,
                                  constant=info.constant, quantization=_quantization(info),
                                  values=_small_values(model, signature, info))
               for info in sig.tensors}
    nodes = []
    for i, (info, raw) in enumerate(zip(sig.ops, sub.operators or [], strict=True)):
        options = _options(raw)
        nodes.append(Node(index=i, op=_op_name(info.name, options), version=info.version,
                          inputs=tuple(tensors[t] if t >= 0 else None for t in info.inputs),
                          outputs=tuple(tensors[t] for t in info.outputs), options=options))
    return DelegateGraph(signature=signature, path=model.path, nodes=nodes,
                         inputs=tuple(tensors[i] for _, i in sorted(sig.inputs.items())),
                         outputs=tuple(tensors[i] for _, i in sorted(sig.outputs.items())), tensors=tensors)


def read_delegate_graphs(path: str | Path) -> list[DelegateGraph]:
    """Every signature of a .tflite file as a delegate graph (BundleError if the file is not a model)."""
    model = read_graph(path)
    if not model.signatures:
        raise BundleError(f"{path} has no signatures; convert with `banana convert` (one signature per file)")
    return [delegate_graph(model, name) for name in sorted(model.signatures)]

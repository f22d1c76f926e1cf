"""Build small .tflite models op by op: reproduce a delegate problem with exactly the op, version and tensor
types in question (TOPK_V2, INT64 arithmetic, a rank-5 tensor), which the PyTorch exporter will not always
emit (litert-torch lowers torch.topk to STABLEHLO_SORT and legalises int64 casts to int32).

Uses the flatbuffer object API of `ai_edge_litert.schema_py_generated` (the same schema `read_graph`
parses); the result is a regular model that the ai-edge-litert Interpreter loads and runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

_NUMPY = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "INT64": np.int64, "INT8": np.int8,
          "UINT8": np.uint8, "INT16": np.int16, "BOOL": np.bool_}


@dataclass(frozen=True)
class TensorSpec:
    name: str  # unique tensor name
    shape: tuple[int, ...]  # static shape
    dtype: str = "FLOAT32"  # TFLite type name
    data: np.ndarray | None = None  # constant values (None: a runtime tensor)


@dataclass(frozen=True)
class OpSpec:
    op: str  # builtin operator name, e.g. "TOPK_V2"
    inputs: tuple[str, ...]  # input tensor names ("" = optional input left out)
    outputs: tuple[str, ...]  # output tensor names
    version: int = 1  # operator version
    options: Any = None  # a schema `<Name>OptionsT` object, or None


def _tensor(spec: TensorSpec, buffers: list[schema.BufferT]) -> schema.TensorT:
    t = schema.TensorT()
    t.name = spec.name.encode()
    t.shape = list(spec.shape)
    t.type = getattr(schema.TensorType, spec.dtype)
    t.buffer = 0
    if spec.data is not None:
        values = np.asarray(spec.data, dtype=_NUMPY[spec.dtype]).reshape(spec.shape)
        buf = schema.BufferT()
        buf.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
        t.buffer = len(buffers)
        buffers.append(buf)
    return t


def build_tflite(signature: str, tensors: list[TensorSpec], ops: list[OpSpec], inputs: list[str],
                 outputs: list[str]) -> bytes:
    """A one-subgraph model with one signature named `signature`; ValueError on an unknown name."""
    buffers = [schema.BufferT()]  # buffer 0: the empty sentinel
    index = {spec.name: i for i, spec in enumerate(tensors)}
    codes: dict[tuple[str, int], int] = {}
    model = schema.ModelT()
    model.version = 3
    model.description = b"banana-sdk preflight craft"
    model.operatorCodes = []
    sub = schema.SubGraphT()
    sub.name = signature.encode()
    sub.tensors = [_tensor(spec, buffers) for spec in tensors]
    sub.operators = []
    for op in ops:
        if not hasattr(schema.BuiltinOperator, op.op):
            raise ValueError(f"unknown builtin operator {op.op!r}")
        if (op.op, op.version) not in codes:
            code = schema.OperatorCodeT()
            code.builtinCode = getattr(schema.BuiltinOperator, op.op)
            code.deprecatedBuiltinCode = min(code.builtinCode, 127)
            code.version = op.version
            codes[(op.op, op.version)] = len(model.operatorCodes)
            model.operatorCodes.append(code)
        node = schema.OperatorT()
        node.opcodeIndex = codes[(op.op, op.version)]
        try:
            node.inputs = [index[name] if name else -1 for name in op.inputs]
            node.outputs = [index[name] for name in op.outputs]
        except KeyError as exc:
            raise ValueError(f"{op.op} refers to unknown tensor {exc}") from None
        if op.options is not None:
            node.builtinOptionsType = getattr(schema.BuiltinOptions, type(op.options).__name__.removesuffix("T"))
            node.builtinOptions = op.options
        sub.operators.append(node)
    sub.inputs = [index[n] for n in inputs]
    sub.outputs = [index[n] for n in outputs]
    model.subgraphs = [sub]
    model.buffers = buffers
    sig = schema.SignatureDefT()
    sig.signatureKey = signature.encode()
    sig.subgraphIndex = 0
    sig.inputs = [_tensor_map(n, index[n]) for n in inputs]
    sig.outputs = [_tensor_map(n, index[n]) for n in outputs]
    model.signatureDefs = [sig]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _tensor_map(name: str, tensor_index: int) -> schema.TensorMapT:
    m = schema.TensorMapT()
    m.name = name.encode()
    m.tensorIndex = tensor_index
    return m


def options(kind: str, **fields: Any) -> Any:
    """A builtin options object by schema name, e.g. options("TopKV2Options") or options("AddOptions")."""
    cls = getattr(schema, f"{kind}T", None)
    if cls is None:
        raise ValueError(f"unknown options type {kind!r}")
    obj = cls()
    for key, value in fields.items():
        if not hasattr(obj, key):
            raise ValueError(f"{kind} has no field {key!r}")
        setattr(obj, key, value)
    return obj

"""Read what a `.tflite` file really holds: signatures, ops, tensor types, weight storage.

Parses the flatbuffer with `ai_edge_litert.schema_py_generated`; used by the manifest (quantization per op
type is read from the written file, never from intent), `banana verify` and the delegate pre-flight.
"""

from __future__ import annotations

import mmap
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from banana_sdk.errors import BundleError

_INDEX_TYPES = ("INT32", "INT64")
OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NUMPY = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "INT8": np.int8,
          "UINT8": np.uint8, "INT64": np.int64, "INT16": np.int16, "BOOL": np.bool_}


@dataclass(frozen=True)
class TensorInfo:
    index: int  # tensor index in its subgraph
    name: str  # tensor name
    shape: tuple[int, ...]  # static shape
    dtype: str  # TFLite type name, e.g. "FLOAT32", "INT4"
    constant: bool  # backed by a non-empty buffer (a weight)
    scales: int  # number of quantization scales (0 = not quantized, 1 = per tensor, >1 channel/block)
    block_size: int  # blockwise quantization block size (0 = not blockwise)


@dataclass(frozen=True)
class OpInfo:
    name: str  # builtin op name, e.g. "FULLY_CONNECTED"
    version: int  # op version
    inputs: tuple[int, ...]  # tensor indices (-1 = optional input absent)
    outputs: tuple[int, ...]  # tensor indices


@dataclass
class SignatureGraph:
    name: str  # signature key
    subgraph: int  # subgraph index
    inputs: dict[str, int]  # signature input name -> tensor index
    outputs: dict[str, int]  # signature output name -> tensor index
    tensors: list[TensorInfo] = field(default_factory=list)  # all tensors of the subgraph
    ops: list[OpInfo] = field(default_factory=list)  # operators in execution order

    def op_counts(self) -> dict[str, int]:
        """{op name: count}, sorted by name."""
        return dict(sorted(Counter(op.name for op in self.ops).items()))

    def weight_storage(self) -> dict[str, dict[str, int]]:
        """{op name: {storage label: count}} for the constant weight input (input 1) of each op.

        Labels: "int4_blockwise_32", "int8_channelwise", "int8_per_tensor", "float16", "float32".
        Ops without a constant weight input, or whose constant is an index/shape operand (int32/int64),
        are not listed.
        """
        out: dict[str, Counter[str]] = {}
        for op in self.ops:
            weight = self._weight(op)
            if weight is not None and weight.dtype not in _INDEX_TYPES:
                out.setdefault(op.name, Counter())[storage_label(weight)] += 1
        return {name: dict(sorted(c.items())) for name, c in sorted(out.items())}

    def _weight(self, op: OpInfo) -> TensorInfo | None:
        if len(op.inputs) < 2 or op.inputs[1] < 0:
            return None
        tensor = self.tensors[op.inputs[1]]
        if tensor.constant:
            return tensor
        producer = self._producers().get(tensor.index)
        if producer is not None and producer.name == "DEQUANTIZE":
            source = self.tensors[producer.inputs[0]]
            return source if source.constant else None
        return None

    def _producers(self) -> dict[int, OpInfo]:
        if not hasattr(self, "_producer_cache"):
            self._producer_cache = {o: op for op in self.ops for o in op.outputs}
        return self._producer_cache


def storage_label(tensor: TensorInfo) -> str:
    """How a weight tensor is stored, as a manifest label."""
    dtype = tensor.dtype.lower()
    if tensor.block_size:
        return f"{dtype}_blockwise_{tensor.block_size}"
    if tensor.dtype in ("INT8", "INT4", "UINT8", "INT16"):
        return f"{dtype}_channelwise" if tensor.scales > 1 else f"{dtype}_per_tensor"
    return dtype


@dataclass
class ModelGraph:
    path: Path  # the file parsed
    signatures: dict[str, SignatureGraph]  # by signature key
    model: schema.ModelT  # the parsed object tree (for constant reads)

    def constant(self, signature: str, tensor_index: int) -> np.ndarray:
        """A constant tensor's raw values (quantized ints stay ints; INT4 unpacked to int8)."""
        sig = self.signatures[signature]
        tensor = self.model.subgraphs[sig.subgraph].tensors[tensor_index]
        data = self.model.buffers[tensor.buffer].data
        if data is None:
            raise BundleError(f"{self.path}: tensor {tensor_index} of {signature!r} is not a constant")
        raw = np.asarray(data, dtype=np.uint8)
        info = sig.tensors[tensor_index]
        if info.dtype == "INT4":
            low = (raw & 0x0F).astype(np.int8)
            high = (raw >> 4).astype(np.int8)
            values = np.stack([low, high], axis=1).reshape(-1)
            values = np.where(values > 7, values - 16, values).astype(np.int8)
            return values[: int(np.prod(info.shape))].reshape(info.shape)
        return raw.view(_NUMPY[info.dtype]).reshape(info.shape)

    def dequantized(self, signature: str, tensor_index: int) -> np.ndarray:
        """A quantized weight as float32 (scale * q, per channel or per block)."""
        sig = self.signatures[signature]
        tensor = self.model.subgraphs[sig.subgraph].tensors[tensor_index]
        q = self.constant(signature, tensor_index).astype(np.float32)
        quant = tensor.quantization
        if quant is not None and quant.details is not None and getattr(quant.details, "blockSize", 0):
            scales = self.constant(signature, quant.details.scales).astype(np.float32)
            block = quant.details.blockSize
            return (q.reshape(q.shape[0], -1, block) * scales.reshape(q.shape[0], -1, 1)).reshape(q.shape)
        if quant is None or quant.scale is None:
            return q
        scale = np.asarray(quant.scale, dtype=np.float32)
        zero = np.asarray(quant.zeroPoint if quant.zeroPoint is not None else [0], dtype=np.float32)
        axis = quant.quantizedDimension
        shape = [1] * q.ndim
        if scale.size > 1:
            shape[axis] = scale.size
        return (q - zero.reshape(shape)) * scale.reshape(shape)


MAP_ABOVE_BYTES = 256 << 20  # read_graph maps files above this size (smaller ones are read)


def read_graph(path: str | Path) -> ModelGraph:
    """Parse a .tflite file; BundleError if it is not a valid LiteRT flatbuffer."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            # a big file is mapped, not read: the graph is the flatbuffer's head and weights are paged in only if
            # asked for (a 10 GB fp32 export is planned without holding it)
            size = os.fstat(handle.fileno()).st_size
            buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size > MAP_ABOVE_BYTES \
                else handle.read()
    except FileNotFoundError:
        raise BundleError(f"{path} does not exist") from None
    return parse_graph(buf, path)


def parse_graph(buf: bytes, path: str | Path = "<memory>") -> ModelGraph:
    """Parse serialized .tflite bytes (`path` names them in errors); BundleError if not a LiteRT flatbuffer."""
    path = Path(path)
    try:
        if len(buf) < 8 or buf[4:8] != b"TFL3":
            raise ValueError("missing TFL3 identifier")
        model = schema.ModelT.InitFromPackedBuf(buf, 0)
    except Exception as exc:  # the generated parser raises assorted errors on garbage
        raise BundleError(f"{path} is not a valid .tflite flatbuffer ({type(exc).__name__}: {exc})") from None
    signatures: dict[str, SignatureGraph] = {}
    for sdef in model.signatureDefs or []:
        key = sdef.signatureKey.decode()
        sub = model.subgraphs[sdef.subgraphIndex]
        tensors = []
        for i, t in enumerate(sub.tensors):
            buffer = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
            constant = buffer is not None and (buffer.data is not None or bool(buffer.offset))
            quant = t.quantization
            details = quant.details if quant is not None else None
            tensors.append(TensorInfo(
                index=i, name=t.name.decode(errors="replace") if t.name else "",
                shape=tuple(int(d) for d in (t.shape if t.shape is not None else [])),
                dtype=TYPE_NAMES.get(t.type, str(t.type)), constant=constant,
                scales=len(quant.scale) if quant is not None and quant.scale is not None else 0,
                block_size=int(getattr(details, "blockSize", 0) or 0),
            ))
        ops = []
        for op in sub.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            name = OP_NAMES.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM" and code.customCode:
                name = f"CUSTOM:{code.customCode.decode()}"
            ops.append(OpInfo(name=name, version=code.version,
                              inputs=tuple(int(i) for i in (op.inputs if op.inputs is not None else [])),
                              outputs=tuple(int(i) for i in (op.outputs if op.outputs is not None else []))))
        signatures[key] = SignatureGraph(
            name=key, subgraph=sdef.subgraphIndex,
            inputs={x.name.decode(): x.tensorIndex for x in sdef.inputs or []},
            outputs={x.name.decode(): x.tensorIndex for x in sdef.outputs or []},
            tensors=tensors, ops=ops,
        )
    return ModelGraph(path=path, signatures=signatures, model=model)


def read_signature_io(path: str | Path) -> dict[str, dict[str, list[dict[str, object]]]]:
    """Signature -> {"inputs", "outputs": [{"name", "shape", "dtype"}] sorted by name} of a .tflite file.

    Reads only the signature table and the I/O tensors through a memory map (no weights are copied), so a
    runtime can check a big file against its manifest at load for the cost of a few page reads."""
    import mmap

    path = Path(path)
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if len(buf) < 8 or buf[4:8] != b"TFL3":
                raise ValueError("missing TFL3 identifier")
            model = schema.Model.GetRootAs(buf, 0)
            out: dict[str, dict[str, list[dict[str, object]]]] = {}
            for s in range(model.SignatureDefsLength()):
                sdef = model.SignatureDefs(s)
                sub = model.Subgraphs(sdef.SubgraphIndex())

                def describe(maps: list, sub=sub) -> list[dict[str, object]]:  # noqa: ANN001
                    rows = []
                    for m in maps:
                        t = sub.Tensors(m.TensorIndex())
                        rows.append({"name": m.Name().decode(),
                                     "shape": [int(t.Shape(i)) for i in range(t.ShapeLength())],
                                     "dtype": TYPE_NAMES.get(t.Type(), str(t.Type())).lower()})
                    return sorted(rows, key=lambda r: str(r["name"]))

                out[sdef.SignatureKey().decode()] = {
                    "inputs": describe([sdef.Inputs(i) for i in range(sdef.InputsLength())]),
                    "outputs": describe([sdef.Outputs(i) for i in range(sdef.OutputsLength())])}
            return out
    except FileNotFoundError:
        raise BundleError(f"{path} does not exist") from None
    except Exception as exc:  # the generated reader raises assorted errors on garbage
        raise BundleError(f"{path} is not a valid .tflite flatbuffer ({type(exc).__name__}: {exc})") from None

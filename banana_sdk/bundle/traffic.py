"""Bytes moved per call of each signature, counted on the written `.tflite` graph (issue 20, part 6).

The count is what the graph, executed op by op as written, moves through memory in one call:

- **weights**: every constant tensor an op reads, at its stored type (the buffer's bytes: INT4 is half a byte
  an element), plus its quantization scales (blockwise scales are FLOAT16 constant tensors of their own;
  per-channel scales are float32 arrays in the flatbuffer, 4 bytes each). Read once per call. A DEQUANTIZE
  of a constant (fp16 weights) is folded at load by every LiteRT backend: its output counts as that weight,
  not as an activation.
- **activations**: every other tensor of the subgraph, counted once written (a signature input is written
  by the caller) and once read per consuming op input (a signature output once more: the caller reads it).
  K/V are activations like any other; they are also reported apart (`kv_bytes`, a part of the total): the
  second operand of each activation matmul (keys of q@k^T, values of p@v) and the layout-only ops
  (RESHAPE/TRANSPOSE/...) back to the projection that produced it, the projection's output included.
  `score_bytes` (also a part of the total) are the attention scores and probabilities: from the q@k^T
  output through mask/softmax to the p@v operand, what a fused attention kernel keeps on chip.

It is an upper bound on a real runtime's traffic: a delegate that fuses ops, aliases RESHAPE outputs or
keeps small tensors in cache moves less. Ratios between graphs (GQA vs MHA, int4 vs fp32) are what it is for.
Two smaller figures bracket a fusing runtime: `fused_bytes` (the total without the attention scores) and
`lower_bytes` (weights + only what matmuls and convolutions read and write).

The files are read through a memory map with the flatbuffer's table accessors: no weight is copied, and the
time grows with the number of ops, not with the weights (the demo bundle: 0.2 s). `banana_sdk.info.
estimate_traffic` gives the same figures from a config without converting (it mirrors the converter's
lowering; tests/test_traffic.py states the agreement). `banana traffic BUNDLE` prints the table.

FLOPs are counted on the same graph: 2 per multiply-accumulate of FULLY_CONNECTED, BATCH_MATMUL, CONV_2D,
DEPTHWISE_CONV_2D and TRANSPOSE_CONV (`mac_flops`, what `banana info` counts), plus one per output element
of every other op except layout-only ones (`flops` = both).
"""

from __future__ import annotations

import math
import mmap
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ai_edge_litert import schema_py_generated as schema

from banana_sdk.bundle.flatbuffer import OP_NAMES, TYPE_NAMES, OpInfo, TensorInfo
from banana_sdk.errors import BundleError

DTYPE_BYTES = {"FLOAT32": 4.0, "FLOAT16": 2.0, "BFLOAT16": 2.0, "INT32": 4.0, "UINT32": 4.0, "INT64": 8.0,
               "INT16": 2.0, "INT8": 1.0, "UINT8": 1.0, "BOOL": 1.0, "INT4": 0.5, "FLOAT64": 8.0}
LAYOUT_OPS = frozenset({"RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS"})  # move data, compute nothing
MAC_OPS = frozenset({"FULLY_CONNECTED", "BATCH_MATMUL", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"})
_ELEMENTWISE = frozenset({"ADD", "MUL", "SUB", "DIV"})  # followed back from SOFTMAX to the scores


@dataclass(frozen=True)
class Traffic:
    """Bytes moved and FLOPs of one call of one signature (or a config estimate of it, `banana_sdk.info`)."""

    name: str  # signature (component)
    weight_bytes: float  # constants read once per call at their stored types, quantization scales included
    written_bytes: float  # activations written: every non-constant tensor once
    read_bytes: float  # activations read: once per consuming op, signature outputs once more (the caller)
    kv_bytes: float  # K/V tensors, written + read (a part of written + read)
    score_bytes: float  # attention scores/probabilities, written + read (a part of written + read)
    matmul_io_bytes: float  # activations matmuls/convs read and write, scores excluded (see `lower_bytes`)
    mac_flops: float  # 2 per multiply-accumulate of matmuls and convolutions
    flops: float  # mac_flops + one per output element of every other non-layout op

    @property
    def activation_bytes(self) -> float:
        return self.written_bytes + self.read_bytes

    @property
    def total_bytes(self) -> float:
        """Weights + activations: the bytes one call moves."""
        return self.weight_bytes + self.activation_bytes

    @property
    def fused_bytes(self) -> float:
        """The total without the attention scores: what a fused (flash-style) attention kernel would move."""
        return self.total_bytes - self.score_bytes

    @property
    def lower_bytes(self) -> float:
        """Weights + only the activations matmuls and convolutions read and write, attention fused: what a
        runtime moves that fuses every elementwise op, norm and softmax into its neighbours (a lower bound)."""
        return self.weight_bytes + self.matmul_io_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "activation_bytes": self.activation_bytes, "total_bytes": self.total_bytes,
                "fused_bytes": self.fused_bytes, "lower_bytes": self.lower_bytes}


def _numel(t: TensorInfo) -> int:
    return math.prod(t.shape) if t.shape else 1


def tensor_bytes(t: TensorInfo) -> float:
    """Bytes of a tensor at its type (INT4 packs two elements a byte)."""
    return math.ceil(_numel(t) * DTYPE_BYTES.get(t.dtype, 4.0))


@dataclass
class _Graph:
    """What the count needs of one signature, read through a memory map (no weight is copied)."""

    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: dict[str, int]  # signature input name -> tensor
    outputs: dict[str, int]  # signature output name -> tensor
    stored: dict[int, float] = field(default_factory=dict)  # constant tensor -> its buffer's bytes
    scale_tensor: dict[int, int] = field(default_factory=dict)  # blockwise weight -> its scale tensor
    scale_count: dict[int, int] = field(default_factory=dict)  # per-channel weight -> number of scales
    folded: set[int] = field(default_factory=set)  # DEQUANTIZE outputs of constants: weights, folded at load

    def weight_like(self, i: int) -> bool:
        """A constant, or a constant's DEQUANTIZE output."""
        return self.tensors[i].constant or i in self.folded


def _read(path: str | Path) -> dict[str, _Graph]:
    """Signatures of a .tflite file as `_Graph`s; BundleError if it is not a valid LiteRT flatbuffer."""
    path = Path(path)
    try:
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            if len(buf) < 8 or buf[4:8] != b"TFL3":
                raise ValueError("missing TFL3 identifier")
            return _parse(schema.Model.GetRootAs(buf, 0))
    except FileNotFoundError:
        raise BundleError(f"{path} does not exist") from None
    except Exception as exc:  # the generated reader raises assorted errors on garbage
        raise BundleError(f"{path} is not a valid .tflite flatbuffer ({type(exc).__name__}: {exc})") from None


def _parse(model: Any) -> dict[str, _Graph]:
    codes = []
    for k in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(k)
        name = OP_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        codes.append((name, code.Version()))
    buffers = []
    for k in range(model.BuffersLength()):
        b = model.Buffers(k)
        size = b.DataLength() if not b.DataIsNone() else (b.Size() if b.Offset() > 1 else 0)
        buffers.append((not b.DataIsNone() or bool(b.Offset()), float(size)))
    out: dict[str, _Graph] = {}
    for s in range(model.SignatureDefsLength()):
        sdef = model.SignatureDefs(s)
        sub = model.Subgraphs(sdef.SubgraphIndex())
        graph = _Graph(tensors=[], ops=[],
                       inputs={sdef.Inputs(i).Name().decode(): sdef.Inputs(i).TensorIndex()
                               for i in range(sdef.InputsLength())},
                       outputs={sdef.Outputs(i).Name().decode(): sdef.Outputs(i).TensorIndex()
                                for i in range(sdef.OutputsLength())})
        for i in range(sub.TensorsLength()):
            t = sub.Tensors(i)
            constant, size = buffers[t.Buffer()] if t.Buffer() < len(buffers) else (False, 0.0)
            quant = t.Quantization()
            scales = block = 0
            if quant is not None:
                scales = quant.ScaleLength()
                if quant.DetailsType() == schema.QuantizationDetails.BlockwiseQuantization:
                    table = quant.Details()
                    details = schema.BlockwiseQuantization()
                    details.Init(table.Bytes, table.Pos)
                    block = details.BlockSize()
                    graph.scale_tensor[i] = details.Scales()
            graph.tensors.append(TensorInfo(
                index=i, name="", shape=tuple(int(t.Shape(k)) for k in range(t.ShapeLength())),
                dtype=TYPE_NAMES.get(t.Type(), str(t.Type())), constant=constant, scales=scales, block_size=block))
            if constant:
                graph.stored[i] = size
                if scales:
                    graph.scale_count[i] = scales
        for k in range(sub.OperatorsLength()):
            op = sub.Operators(k)
            name, version = codes[op.OpcodeIndex()]
            graph.ops.append(OpInfo(name=name, version=version,
                                    inputs=tuple(int(op.Inputs(j)) for j in range(op.InputsLength())),
                                    outputs=tuple(int(op.Outputs(j)) for j in range(op.OutputsLength()))))
        graph.folded = {op.outputs[0] for op in graph.ops
                        if op.name == "DEQUANTIZE" and op.inputs and graph.tensors[op.inputs[0]].constant}
        out[sdef.SignatureKey().decode()] = graph
    return out


def signature_traffic(sig: _Graph, name: str) -> Traffic:
    """Count one signature (see the module doc for the rules)."""
    tensors = sig.tensors
    producers = {o: op for op in sig.ops for o in op.outputs if o >= 0}
    folded = sig.folded

    # weights: the distinct constants the ops read, once per call, with their scales
    weight_ids = {i for op in sig.ops for i in op.inputs if i >= 0 and tensors[i].constant}
    scale_ids = {sig.scale_tensor[i] for i in weight_ids if i in sig.scale_tensor} - weight_ids
    weights = sum(sig.stored.get(i, 0.0) for i in weight_ids | scale_ids)
    weights += sum(4.0 * sig.scale_count.get(i, 0) for i in weight_ids if i not in sig.scale_tensor)

    # activations: written once, read per consumer
    reads: Counter[int] = Counter(i for op in sig.ops for i in op.inputs if i >= 0)
    reads.update(sig.outputs.values())
    active = [t for t in tensors if not t.constant and t.index not in folded
              and (t.index in producers or t.index in sig.inputs.values())]
    written = sum(tensor_bytes(t) for t in active)
    read = sum(tensor_bytes(t) * reads[t.index] for t in active)

    def moved(ids: set[int]) -> float:
        return sum(tensor_bytes(tensors[i]) * (1 + reads[i]) for i in ids)

    kv, scores = _kv_tensors(sig, producers), _score_tensors(sig, producers)
    live = {t.index for t in active} - scores
    matmul_io = sum(tensor_bytes(tensors[i]) for op in sig.ops if op.name in MAC_OPS
                    for i in (*op.inputs, *op.outputs) if i in live)
    mac, other = _flops(sig)
    return Traffic(name=name, weight_bytes=weights, written_bytes=written, read_bytes=read,
                   kv_bytes=moved(kv - scores), score_bytes=moved(scores), matmul_io_bytes=matmul_io,
                   mac_flops=mac, flops=mac + other)


def _is_matmul(sig: _Graph, op: Any) -> bool:
    """An activation x activation matmul: BATCH_MATMUL, or FULLY_CONNECTED whose weights are computed (the
    converter writes q@k^T as one when a single K/V head needs no transpose)."""
    if len(op.inputs) < 2 or op.inputs[1] < 0:
        return False
    return op.name == "BATCH_MATMUL" or (op.name == "FULLY_CONNECTED" and not sig.weight_like(op.inputs[1]))


def _kv_tensors(sig: _Graph, producers: dict[int, Any]) -> set[int]:
    """Second operand of each activation matmul, followed back through layout ops to (and with) its producer's
    output."""
    found: set[int] = set()
    for op in sig.ops:
        if not _is_matmul(sig, op):
            continue
        i = op.inputs[1]
        while i >= 0 and not sig.weight_like(i):
            found.add(i)
            prod = producers.get(i)
            if prod is None or prod.name not in LAYOUT_OPS:
                break
            i = prod.inputs[0]
    return found


def _score_tensors(sig: _Graph, producers: dict[int, Any]) -> set[int]:
    """Attention scores: back from each SOFTMAX input through same-size elementwise/layout ops to a q@k^T
    output (paths that end elsewhere, like an additive mask, are not scores), and forward from the SOFTMAX
    output through layout ops to the p@v operand."""
    consumers: dict[int, list[Any]] = {}
    for op in sig.ops:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    found: set[int] = set()

    def back(i: int, size: int) -> bool:
        if i < 0 or sig.weight_like(i) or _numel(sig.tensors[i]) != size:
            return False
        prod = producers.get(i)
        if prod is None:
            return False
        if _is_matmul(sig, prod):
            hit = True
        elif prod.name in LAYOUT_OPS or prod.name in _ELEMENTWISE:
            hit = any([back(j, size) for j in prod.inputs])
        else:
            hit = False
        if hit:
            found.add(i)
        return hit

    for op in sig.ops:
        if op.name != "SOFTMAX":
            continue
        back(op.inputs[0], _numel(sig.tensors[op.outputs[0]]))
        i = op.outputs[0]
        while True:
            found.add(i)
            nxt = [c for c in consumers.get(i, []) if c.name in LAYOUT_OPS]
            if len(nxt) != 1:
                break
            i = nxt[0].outputs[0]
    return found


def _flops(sig: _Graph) -> tuple[float, float]:
    """(2 x MACs of matmuls/convs, one per output element of other non-layout ops)."""
    mac = other = 0.0
    t = sig.tensors
    for op in sig.ops:
        outs = [t[o] for o in op.outputs if o >= 0]
        out_n = sum(_numel(o) for o in outs)
        if op.name == "FULLY_CONNECTED":
            n = t[op.inputs[1]].shape[0]
            mac += 2.0 * _numel(t[op.inputs[0]]) * n
        elif op.name == "BATCH_MATMUL":
            m = outs[0].shape[-2] if len(outs[0].shape) >= 2 else 1
            k = math.prod(t[op.inputs[0]].shape[-2:]) / max(1, m)
            mac += 2.0 * out_n * k
        elif op.name == "CONV_2D":
            _, kh, kw, cin = t[op.inputs[1]].shape
            mac += 2.0 * out_n * kh * kw * cin
        elif op.name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = t[op.inputs[1]].shape
            mac += 2.0 * out_n * kh * kw
        elif op.name == "TRANSPOSE_CONV":  # inputs: output shape, weights (O, kh, kw, I), input
            cout, kh, kw, _ = t[op.inputs[1]].shape
            mac += 2.0 * _numel(t[op.inputs[2]]) * kh * kw * cout
        elif op.name not in LAYOUT_OPS and op.name != "DEQUANTIZE":
            other += out_n
    return mac, other


def bundle_traffic(directory: str | Path) -> dict[str, Traffic]:
    """Traffic of every signature of a bundle, in manifest order (each file read once, through a memory map)."""
    from banana_sdk.bundle.reader import bundle_path, read_manifest

    directory = Path(directory)
    manifest = read_manifest(directory)
    files: dict[str, dict[str, _Graph]] = {}
    out: dict[str, Traffic] = {}
    for name, sig in manifest.signatures.items():
        if sig.file not in files:
            files[sig.file] = _read(bundle_path(directory, sig.file))
        if name not in files[sig.file]:
            raise BundleError(f"{directory / sig.file} has no signature {name!r}")
        out[name] = signature_traffic(files[sig.file][name], name)
    return out


def file_traffic(path: str | Path) -> dict[str, Traffic]:
    """Traffic of every signature of one `.tflite` file."""
    return {name: signature_traffic(graph, name) for name, graph in _read(path).items()}


def per_image(traffic: dict[str, Traffic], steps: int) -> dict[str, float]:
    """Bytes and FLOPs of one text-to-image generation: text encoder once, `steps` denoise calls, one decode."""
    calls = {"text_encoder": 1, "denoise": steps, "vae_decode": 1}
    rows = [(traffic[n], k) for n, k in calls.items() if n in traffic]
    return {"total_bytes": sum(t.total_bytes * k for t, k in rows), "kv_bytes": sum(t.kv_bytes * k for t, k in rows),
            "fused_bytes": sum(t.fused_bytes * k for t, k in rows), "flops": sum(t.flops * k for t, k in rows)}


def _mib(x: float) -> str:
    return f"{x / 2**20:,.2f}" if x < 100 * 2**20 else f"{x / 2**20:,.0f}"


def format_traffic(traffic: dict[str, Traffic], title: str, steps: int | None = None) -> str:
    """The per-component table `banana traffic` prints (MiB per call)."""
    cols = ("weights", "written", "read", "K/V", "scores", "total", "GFLOP", "B/FLOP")
    lines = [title, "MiB moved per call (K/V and scores are parts of written + read)",
             f"{'component':<15}" + "".join(f"{c:>11}" for c in cols)]
    for t in traffic.values():
        cells = [_mib(t.weight_bytes), _mib(t.written_bytes), _mib(t.read_bytes), _mib(t.kv_bytes),
                 _mib(t.score_bytes), _mib(t.total_bytes), f"{t.flops / 1e9:,.3f}",
                 f"{t.total_bytes / max(t.flops, 1.0):.3f}"]
        lines.append(f"{t.name:<15}" + "".join(f"{c:>11}" for c in cells))
    if steps is not None and "denoise" in traffic:
        img = per_image(traffic, steps)
        lines.append(f"one image at {steps} steps (text encoder + {steps} x denoise + decode): "
                     f"{_mib(img['total_bytes'])} MiB ({_mib(img['kv_bytes'])} MiB K/V; "
                     f"{_mib(img['fused_bytes'])} MiB with fused attention), {img['flops'] / 1e9:,.2f} GFLOP")
    return "\n".join(lines)

"""Fixes applied to a quantized flatbuffer before it is written: zero block scales (below) and inner tensor
names (`strip_tensor_names`: export module paths, ~8% of the demo INT4 bundle, several times that in a file
with runtime-peel signatures, become `t<index>`; signature inputs and outputs keep their names).

XNNPACK (the LiteRT CPU delegate) refuses a blockwise INT4 weight that has any zero block scale
("unsupported scale value (0.000000) ... for INT4 tensor"). ai-edge-quantizer writes a zero scale for an
all-zero block (e.g. a zero-initialised adaLN layer). Every value of such a block quantizes to 0, so any
positive scale dequantizes to the same zeros: we patch those scales to the smallest normal fp16 in place.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

_SMALLEST_NORMAL_FP16 = np.float16(2.0**-14)
MAX_REPACK_BYTES = 512 << 20  # larger files keep their names (the repack holds ~3 copies; names are noise there)


def fix_zero_block_scales(model: bytes) -> tuple[bytes, int]:
    """(patched model bytes, number of scales patched)."""
    buf = bytearray(model)
    patched = _patch_zero_scales(buf)
    return bytes(buf), patched


def fix_zero_block_scales_file(path: Path) -> int:
    """Patch the zero block scales of the .tflite at `path` in place (through a map: a big model is never read
    whole); returns the number of scales patched."""
    with open(path, "r+b") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_WRITE) as buf:
        patched = _patch_zero_scales(buf)
        if patched:
            buf.flush()
    return patched


def _patch_zero_scales(buf) -> int:  # noqa: ANN001 - a writable buffer (bytearray or mmap)
    root = schema.Model.GetRootAs(buf, 0)
    patched = 0
    for s in range(root.SubgraphsLength()):
        sub = root.Subgraphs(s)
        for t in range(sub.TensorsLength()):
            quant = sub.Tensors(t).Quantization()
            if quant is None or quant.DetailsType() != schema.QuantizationDetails.BlockwiseQuantization:
                continue
            table = quant.Details()
            details = schema.BlockwiseQuantization()
            details.Init(table.Bytes, table.Pos)
            scales_tensor = sub.Tensors(details.Scales())
            if scales_tensor.Type() != schema.TensorType.FLOAT16:
                continue
            buffer = root.Buffers(scales_tensor.Buffer())
            raw = None
            if buffer.Offset() > 1:  # external buffer stored after the flatbuffer
                start, size = buffer.Offset(), buffer.Size()
                view = np.frombuffer(buf, dtype=np.float16, count=size // 2, offset=start)
            else:
                raw = buffer.DataAsNumpy()
                if isinstance(raw, int):
                    continue
                view = raw.view(np.float16)
            zeros = view == 0
            if zeros.any():
                view[zeros] = _SMALLEST_NORMAL_FP16
                patched += int(zeros.sum())
            del view, raw  # views of `buf`: a map cannot close while they live
    return patched


def strip_tensor_names(model: bytes, signatures: set[str]) -> bytes:
    """The model with the inner tensor names of `signatures`' subgraphs replaced by `t<index>` (signature inputs
    and outputs keep theirs; names must stay unique: the Qualcomm plugin refuses a graph whose tensors share
    one). Extra signatures built from the same module (runtime peels) share the weight buffers but
    repeat every tensor's long export name: most of their size. Buffers stored after the flatbuffer are
    inlined (the result is one flatbuffer); models above `MAX_REPACK_BYTES` are returned unchanged."""
    import flatbuffers

    if len(model) > MAX_REPACK_BYTES:
        return model
    root = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    for buffer in root.buffers or []:
        if buffer.offset and buffer.offset > 1:  # external buffer stored after the flatbuffer
            buffer.data = np.frombuffer(model, np.uint8, count=buffer.size, offset=buffer.offset)
            buffer.offset = buffer.size = 0
    targets = {s.subgraphIndex for s in root.signatureDefs or [] if s.signatureKey.decode() in signatures}
    for index in targets:
        subgraph = root.subgraphs[index]
        keep = set(subgraph.inputs) | set(subgraph.outputs)
        for i, tensor in enumerate(subgraph.tensors):
            if i not in keep:
                tensor.name = f"t{i}".encode()  # short and unique: QNN's compiler names graph tensors by them
    builder = flatbuffers.Builder(len(model))
    builder.Finish(root.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def strip_tensor_names_file(path: Path, signatures: set[str]) -> None:
    """`strip_tensor_names` of the .tflite at `path`, rewritten atomically (files above `MAX_REPACK_BYTES` are
    left as they are, unread)."""
    from banana_sdk.fileio import atomic_write_bytes

    if path.stat().st_size > MAX_REPACK_BYTES:
        return
    atomic_write_bytes(path, strip_tensor_names(path.read_bytes(), signatures))

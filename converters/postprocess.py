"""Byte-level fixes applied to a quantized flatbuffer before it is written.

XNNPACK (the LiteRT CPU delegate) refuses a blockwise INT4 weight that has any zero block scale
("unsupported scale value (0.000000) ... for INT4 tensor"). ai-edge-quantizer writes a zero scale for an
all-zero block (e.g. a zero-initialised adaLN layer). Every value of such a block quantizes to 0, so any
positive scale dequantizes to the same zeros: we patch those scales to the smallest normal fp16 in place.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

_SMALLEST_NORMAL_FP16 = np.float16(2.0**-14)


def fix_zero_block_scales(model: bytes) -> tuple[bytes, int]:
    """(patched model bytes, number of scales patched)."""
    buf = bytearray(model)
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
            if buffer.Offset() > 1:  # external buffer stored after the flatbuffer
                start, size = buffer.Offset(), buffer.Size()
                view = np.frombuffer(memoryview(buf)[start:start + size], dtype=np.float16)
            else:
                raw = buffer.DataAsNumpy()
                if isinstance(raw, int):
                    continue
                view = raw.view(np.float16)
            zeros = view == 0
            if zeros.any():
                view[zeros] = _SMALLEST_NORMAL_FP16
                patched += int(zeros.sum())
    return bytes(buf), patched

"""Node conditions of the NNAPI delegate, per Android API level.

Reproduces `NNAPIDelegateKernel::Validate` in tflite/delegates/nnapi/nnapi_delegate.cc (LiteRT), whose
SDK thresholds are kMinSdkVersionForNNAPI11 = 28, ...NNAPI12 = 29, ...NNAPI13 = 30 and the runtime feature
levels 5 (Android 12, API 31), 6 (Android 13, API 33), 7 (Android 14, API 34) from nnapi_delegate_kernel.h.
Each check is registered in `checks.CHECKS` and named by `tables/nnapi.py`.
"""

from __future__ import annotations

from converters.preflight.checks import CheckContext, check
from converters.preflight.graph import Node

API_NNAPI11, API_NNAPI12, API_NNAPI13, API_FL6, API_FL7 = 28, 29, 30, 33, 34
FLOAT_QUANT8 = ("FLOAT32", "UINT8", "INT8")


def _in(node: Node, i: int = 0) -> str:
    t = node.inputs[i] if len(node.inputs) > i else None
    return t.dtype if t is not None else "NONE"


def _ranks_le4(node: Node) -> str | None:
    if any(t is not None and t.rank > 4 for t in node.inputs[:2]):
        return "Input rank must be <= 4"
    return None


@check("nn_float_or_quant8")
def nn_float_or_quant8(node: Node, ctx: CheckContext) -> str | None:
    """ExpectIsFloatOrQuant8Operator: input 0 is float32, uint8 or int8."""
    return None if _in(node) in FLOAT_QUANT8 else f"input type {_in(node)} (NNAPI wants float32 or 8-bit)"


@check("nn_float")
def nn_float(node: Node, ctx: CheckContext) -> str | None:
    """ExpectIsFloatOperator: input 0 is float32."""
    return None if _in(node) == "FLOAT32" else f"input type {_in(node)} (NNAPI supports float32 only)"


@check("nn_add_mul")
def nn_add_mul(node: Node, ctx: CheckContext) -> str | None:
    """ADD/MUL: float or 8-bit (int32 too from API 30), inputs of rank <= 4."""
    allowed = FLOAT_QUANT8 + (("INT32",) if ctx.api_level >= API_NNAPI13 else ())
    if _in(node) not in allowed:
        return f"input type {_in(node)} not supported at API {ctx.api_level}"
    return _ranks_le4(node)


@check("nn_sub")
def nn_sub(node: Node, ctx: CheckContext) -> str | None:
    """SUB: float from API 28, 8-bit from 29, int32 from 30; rank <= 4."""
    dtype = _in(node)
    ok = (dtype == "FLOAT32" and ctx.api_level >= API_NNAPI11) or (
        dtype in ("UINT8", "INT8") and ctx.api_level >= API_NNAPI12) or (
        dtype == "INT32" and ctx.api_level >= API_NNAPI13)
    return _ranks_le4(node) if ok else f"NNAPI does not support {dtype} SUB at API {ctx.api_level}"


@check("nn_div")
def nn_div(node: Node, ctx: CheckContext) -> str | None:
    """DIV: float32 only, rank <= 4."""
    return _ranks_le4(node) if _in(node) == "FLOAT32" else "NNAPI only support float div"


def _is_hybrid(node: Node) -> bool:
    """IsHybridOperator: float input with 8-bit quantized weights (CONV_2D / FULLY_CONNECTED)."""
    return _in(node) == "FLOAT32" and _in(node, 1) in ("UINT8", "INT8")


@check("nn_conv")
def nn_conv(node: Node, ctx: CheckContext) -> str | None:
    """CONV_2D: hybrid and per-channel only from API 29, bias required, dilation from API 29."""
    if ctx.api_level < API_NNAPI12:
        if _is_hybrid(node):
            return "Hybrid operators not supported before NNAPI 1.2 (API 29)"
        if _in(node) not in ("FLOAT32", "UINT8"):
            return f"input type {_in(node)} not supported before API 29"
        if node.inputs[1].quantization == "affine" and node.inputs[1].dtype != "FLOAT32":
            return "Per-channel quantized convolution not supported before NNAPI 1.2 (API 29)"
        if node.options.get("dilationHFactor", 1) != 1 or node.options.get("dilationWFactor", 1) != 1:
            return "NNAPI supports dilated Conv2D since NNAPI 1.2 (API 29)"
    if len(node.inputs) != 3 or node.inputs[2] is None:
        return "Conv2D with omitted bias not supported"
    return None


@check("nn_depthwise")
def nn_depthwise(node: Node, ctx: CheckContext) -> str | None:
    """DEPTHWISE_CONV_2D: before API 29 float/uint8 and no dilation."""
    if ctx.api_level < API_NNAPI12:
        if _in(node) not in ("FLOAT32", "UINT8"):
            return f"input type {_in(node)} not supported before API 29"
        if node.options.get("dilationHFactor", 1) != 1 or node.options.get("dilationWFactor", 1) != 1:
            return "dilation must be 1 before API 29"
    return None


@check("nn_fully_connected")
def nn_fully_connected(node: Node, ctx: CheckContext) -> str | None:
    """FULLY_CONNECTED: no int16 output, hybrid from API 29, keep_num_dims from API 30."""
    if node.outputs[0].dtype == "INT16":
        return "Unsupported output of type kTfLiteInt16"
    if ctx.api_level < API_NNAPI12 and (_is_hybrid(node) or _in(node) not in ("FLOAT32", "UINT8")):
        return "Hybrid operators not supported before NNAPI 1.2 (API 29)"
    if node.options.get("keepNumDims") and ctx.api_level < API_NNAPI13:
        return "keep_num_dims needs NNAPI 1.3 (API 30)"
    return None


@check("nn_softmax")
def nn_softmax(node: Node, ctx: CheckContext) -> str | None:
    """SOFTMAX: float/8-bit, input rank <= 4 (2 or 4 before API 29)."""
    if _in(node) not in FLOAT_QUANT8:
        return f"input type {_in(node)} not supported"
    rank = node.inputs[0].rank
    if rank > 4:
        return "Input rank should be <= 4"
    if ctx.api_level < API_NNAPI12 and rank not in (2, 4):
        return "Before API level 29 only 2D and 4D input tensors were supported"
    return None


@check("nn_reshape")
def nn_reshape(node: Node, ctx: CheckContext) -> str | None:
    """RESHAPE: float/8-bit (int32 from API 33), ranks <= 4, constant shape operand."""
    allowed = FLOAT_QUANT8 + (("INT32",) if ctx.api_level >= API_FL6 else ())
    if _in(node) not in allowed:
        return f"input type {_in(node)} not supported at API {ctx.api_level}"
    if node.inputs[0].rank > 4 or node.outputs[0].rank > 4:
        return "Input/output rank should be <= 4"
    if len(node.inputs) >= 2 and node.inputs[1] is not None and not node.inputs[1].constant:
        return "The shape input tensor must be constant"
    return None


@check("nn_resize")
def nn_resize(node: Node, ctx: CheckContext) -> str | None:
    """RESIZE_*: 4-D float/8-bit input, constant size; no align_corners/half_pixel_centers up to API 29."""
    if node.inputs[0].rank != 4:
        return "Input should have rank 4"
    if _in(node) not in FLOAT_QUANT8:
        return f"input type {_in(node)} not supported"
    if len(node.inputs) < 2 or not node.inputs[1].constant:
        return "The size input tensor must be constant"
    if ctx.api_level <= API_NNAPI12 and (node.options.get("alignCorners") or node.options.get("halfPixelCenters")):
        return "NNAPI does not support align_corners/half_pixel_centers == true before API 30"
    return None


@check("nn_concat")
def nn_concat(node: Node, ctx: CheckContext) -> str | None:
    """CONCATENATION: no activation, rank <= 4, f16/f32/8-bit."""
    if node.activation != "NONE":
        return "No activation function supported"
    if node.inputs[0].rank > 4:
        return "Input rank should be less than 4"
    return None if _in(node) in ("FLOAT16",) + FLOAT_QUANT8 else f"input type {_in(node)} not supported"


@check("nn_dequantize")
def nn_dequantize(node: Node, ctx: CheckContext) -> str | None:
    """DEQUANTIZE: fp16 constants are folded (IsDequantizeConstFloat16); else 8-bit input (int8 from API 29)."""
    src = node.inputs[0]
    if src.dtype == "FLOAT16" and (src.constant or ctx.api_level >= API_NNAPI13):
        return None
    allowed = ("UINT8",) if ctx.api_level < API_NNAPI12 else ("UINT8", "INT8")
    return None if src.dtype in allowed else f"input type {src.dtype} not supported at API {ctx.api_level}"


@check("nn_const_input1")
def nn_const_input1(node: Node, ctx: CheckContext) -> str | None:
    """TRANSPOSE / TRANSPOSE_CONV / shape-like operand 1 must be constant ('Dynamically-sized tensors')."""
    other = node.inputs[1] if len(node.inputs) > 1 else None
    return None if other is not None and other.constant else "Dynamically-sized tensors not supported"


@check("nn_rsqrt")
def nn_rsqrt(node: Node, ctx: CheckContext) -> str | None:
    """RSQRT: float (8-bit too from API 34)."""
    return nn_float(node, ctx) if ctx.api_level < API_FL7 else nn_float_or_quant8(node, ctx)


@check("nn_slice")
def nn_slice(node: Node, ctx: CheckContext) -> str | None:
    """SLICE: f32/i32/8-bit input, int32 begin and size."""
    if _in(node) not in ("FLOAT32", "INT32", "UINT8", "INT8"):
        return f"input type {_in(node)} not supported"
    if _in(node, 1) != "INT32" or _in(node, 2) != "INT32":
        return "Begin and size types should be Int32"
    return None


@check("nn_mean")
def nn_mean(node: Node, ctx: CheckContext) -> str | None:
    """MEAN: float32 (8-bit from API 29), non-scalar output, input rank <= 4."""
    allowed = ("FLOAT32",) if ctx.api_level < API_NNAPI12 else FLOAT_QUANT8
    if _in(node) not in allowed:
        return f"input type {_in(node)} not supported at API {ctx.api_level}"
    if node.outputs[0].rank == 0:
        return "NNAPI does not support generating a scalar as output for MEAN"
    return "NNAPI does not support mean of a tensor with rank > 4" if node.inputs[0].rank > 4 else None


@check("nn_embedding_lookup")
def nn_embedding_lookup(node: Node, ctx: CheckContext) -> str | None:
    """EMBEDDING_LOOKUP: float32 values only."""
    return None if _in(node, 1) == "FLOAT32" else f"NNAPI only support float32 values (table is {_in(node, 1)})"


@check("nn_cast")
def nn_cast(node: Node, ctx: CheckContext) -> str | None:
    """CAST: f32/i32/u8 (int8 too from API 30) in and out; never 64-bit or bool."""
    allowed = ("FLOAT32", "INT32", "UINT8") + (("INT8",) if ctx.api_level >= API_NNAPI13 else ())
    src, dst = _in(node), node.outputs[0].dtype
    return None if src in allowed and dst in allowed else f"cast {src} -> {dst} not supported"


@check("nn_types_f32_i32_q8")
def nn_types_f32_i32_q8(node: Node, ctx: CheckContext) -> str | None:
    """MAXIMUM/MINIMUM/TILE/TOPK_V2/GATHER/SPLIT...: input 0 float32, int32 or 8-bit."""
    allowed = ("FLOAT32", "INT32", "UINT8", "INT8", "FLOAT16")
    return None if _in(node) in allowed else f"input type {_in(node)} not supported"


@check("nn_compare")
def nn_compare(node: Node, ctx: CheckContext) -> str | None:
    """Comparisons: f32/8-bit/bool/int32 inputs."""
    allowed = FLOAT_QUANT8 + ("BOOL", "INT32")
    return None if _in(node) in allowed else f"input type {_in(node)} not supported"


@check("nn_bool_input")
def nn_bool_input(node: Node, ctx: CheckContext) -> str | None:
    """LOGICAL_*: bool input."""
    return None if _in(node) == "BOOL" else "Input should be bool"


@check("nn_topk")
def nn_topk(node: Node, ctx: CheckContext) -> str | None:
    """TOPK_V2: constant int32 k."""
    k = node.inputs[1]
    if k.dtype != "INT32" or not k.constant:
        return "K param should be a constant of type Int32"
    return nn_types_f32_i32_q8(node, ctx)


@check("nn_sum")
def nn_sum(node: Node, ctx: CheckContext) -> str | None:
    """SUM / REDUCE_PROD: float input, non-scalar output."""
    if node.outputs[0].rank == 0:
        return "NNAPI does not support generating a scalar as output"
    return nn_float(node, ctx)


@check("nn_squared_difference")
def nn_squared_difference(node: Node, ctx: CheckContext) -> str | None:
    """SQUARED_DIFFERENCE: float (uint8 from 29, int8/int32 from 30), rank <= 4."""
    allowed = ("FLOAT32",) + (("UINT8",) if ctx.api_level >= API_NNAPI12 else ()) + (
        ("INT8", "INT32") if ctx.api_level >= API_NNAPI13 else ())
    if _in(node) not in allowed:
        return f"input type {_in(node)} not supported at API {ctx.api_level}"
    return _ranks_le4(node)


@check("nn_batch_matmul")
def nn_batch_matmul(node: Node, ctx: CheckContext) -> str | None:
    """BATCH_MATMUL (API 33+): f32/i32/i8, same types, rank 2..4, no broadcast batch."""
    a, b = node.inputs[0], node.inputs[1]
    if a.dtype not in ("FLOAT32", "INT32", "INT8") or a.dtype != b.dtype:
        return "NNAPI does not support hybrid batch matmul" if a.dtype != b.dtype else f"type {a.dtype}"
    if not 2 <= a.rank <= 4:
        return "NNAPI does not support input rank greater than 4 or less than 2"
    if a.rank != b.rank or a.shape[:-2] != b.shape[:-2]:
        return "NNAPI does not support broadcast batch matmul"
    return None


@check("nn_weights_mappable")
def nn_weights_mappable(node: Node, ctx: CheckContext) -> str | None:
    """NNAPI operand types (NeuralNetworksTypes.h) have no 4-bit or blockwise-quantized tensors: Validate()
    accepts a float-input FULLY_CONNECTED/EMBEDDING_LOOKUP with such a weight (IsHybridOperator only knows
    8-bit), so building the NNAPI model fails after partitioning."""
    for t in node.inputs:
        if t is not None and t.constant and (t.dtype in ("INT4", "INT2") or t.quantization == "blockwise"):
            return f"constant {t.dtype} {t.quantization} weight {t.name!r} has no NNAPI operand type"
    return None

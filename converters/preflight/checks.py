"""Named node conditions that the support tables refer to, and the registry that runs them.

A check takes a node and the context of the run and returns None when the node passes, else the reason in
the delegate's own words. Tables name checks by string so that they stay data (`tables/`); the functions
live here (shape/dtype logic shared by the GPU tables) and in `checks_nnapi.py`. Every check cites the
source function it reproduces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from converters.preflight.graph import DelegateGraph, Node, Tensor

FLOATS = frozenset({"FLOAT32", "FLOAT16"})
QUANT8 = frozenset({"INT8", "UINT8"})


@dataclass(frozen=True)
class CheckContext:
    graph: DelegateGraph  # the signature being checked
    api_level: int  # Android API level (NNAPI checks); 0 for other delegates


Check = Callable[[Node, CheckContext], str | None]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    """Register a check under `name` (tables refer to it by that name)."""
    def register(fn: Check) -> Check:
        if name in CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        CHECKS[name] = fn
        return fn
    return register


def run_check(name: str, node: Node, ctx: CheckContext) -> str | None:
    """Run one named check; KeyError lists the known names (a table typo is a programming error)."""
    try:
        fn = CHECKS[name]
    except KeyError:
        raise KeyError(f"unknown check {name!r}; known: {sorted(CHECKS)}") from None
    return fn(node, ctx)


def _const_inputs(node: Node) -> list[Tensor]:
    return [t for t in node.inputs if t is not None and t.constant]


def _shape(t: Tensor) -> str:
    return "[" + ",".join(str(d) for d in t.shape) + "]"


# ---- classic TFLite GPU delegate: tflite/tools/versioning/gpu_compatibility.cc + gpu/common/model_builder.cc

@check("gpu_unary")
def gpu_unary(node: Node, ctx: CheckContext) -> str | None:
    """One-argument elementwise ops: CheckInputsConstsOutputs(1 runtime, 0 const, 1 output)."""
    if len(node.runtime_inputs) != 1 or _const_inputs(node) or len(node.outputs) != 1:
        return f"expects 1 runtime input and no constant, node has {len(node.runtime_inputs)} runtime " \
               f"and {len(_const_inputs(node))} constant input(s)"
    return None


@check("gpu_binary")
def gpu_binary(node: Node, ctx: CheckContext) -> str | None:
    """Two-argument elementwise ops: 2 runtime inputs, or 1 runtime + 1 constant ('1 or 2 operand(s)')."""
    runtime, const = len(node.runtime_inputs), len(_const_inputs(node))
    if (runtime, const) not in ((2, 0), (1, 1)) or len(node.outputs) != 1:
        return "Op can only handle 1 or 2 operand(s)"
    return None


@check("gpu_activation")
def gpu_activation(node: Node, ctx: CheckContext) -> str | None:
    """IsActivationSupported: every fused activation except SIGN_BIT."""
    return "fused activation SIGN_BIT is not supported" if node.activation == "SIGN_BIT" else None


def _broadcast_ok(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """CheckAddMulBroadcastCompatibility with the delegate's standard flags (not the enhanced ones)."""
    if len(a) <= 1 or len(b) <= 1 or len(a) == len(b):
        return True
    longer, shorter = (a, b) if len(a) >= len(b) else (b, a)
    if len(longer) == 4 and len(shorter) == 3 and longer[0] == 1:
        return True
    if len(longer) == 4 and len(shorter) == 2 and longer[0] == 1 and shorter == (1, 1):
        return True
    return len(longer) == 4 and len(shorter) == 2 and longer[0] == shorter[0] and longer[3] == shorter[1]


@check("gpu_add")
def gpu_add(node: Node, ctx: CheckContext) -> str | None:
    """ADD: exactly two inputs whose ranks broadcast under the standard rules."""
    if len(node.inputs) != 2:
        return "ADD requires two input tensors"
    a, b = node.inputs
    if not _broadcast_ok(a.shape, b.shape):
        return f"Doesn't support broadcasting - input0: {_shape(a)}, input1: {_shape(b)}"
    return None


@check("gpu_mul")
def gpu_mul(node: Node, ctx: CheckContext) -> str | None:
    """MUL: one input not smaller than the other in every dim (equal ranks), else the ADD broadcast rules."""
    if len(node.inputs) != 2:
        return "MUL requires two input tensors"
    a, b = node.inputs
    if a.rank == b.rank:
        a_smaller = any(x < y for x, y in zip(a.shape, b.shape, strict=True))
        b_smaller = any(y < x for x, y in zip(a.shape, b.shape, strict=True))
        if a_smaller and b_smaller:
            return f"MUL requires one tensor that not less than second in all dimensions ({_shape(a)} x {_shape(b)})"
        return None
    if not _broadcast_ok(a.shape, b.shape):
        return f"Doesn't support broadcasting - input0: {_shape(a)}, input1: {_shape(b)}"
    return None


@check("gpu_conv_io")
def gpu_conv_io(node: Node, ctx: CheckContext) -> str | None:
    """CheckConvoultionInputOutput (sic): at most 2 runtime inputs, one output; strides/dilations > 0."""
    if len(node.runtime_inputs) > 2 or len(node.outputs) != 1:
        return f"expected 1 or 2 runtime inputs and 1 output, node has {len(node.runtime_inputs)}"
    for key in ("strideH", "strideW", "dilationHFactor", "dilationWFactor"):
        if key in node.options and node.options[key] <= 0:
            return f"incorrect {key} = {node.options[key]}"
    return None


@check("gpu_depthwise")
def gpu_depthwise(node: Node, ctx: CheckContext) -> str | None:
    """CheckDepthwiseConvGpuDelegateCompatibility: 4-D tensors, depth_multiplier 1 unless input depth is 1."""
    inp, flt, out = node.inputs[0], node.inputs[1], node.outputs[0]
    if inp.rank != 4 or flt.rank != 4 or out.rank != 4:
        return "input/filter/output must be 4-D"
    multiplier = node.options.get("depthMultiplier", 1)
    if multiplier != 1 and inp.shape[3] != 1:
        return "depth_multiplier != 1 && input.c != 1"
    return None


@check("gpu_fully_connected")
def gpu_fully_connected(node: Node, ctx: CheckContext) -> str | None:
    """FullyConnected: default weights format, <= 2 runtime inputs, runtime input 0, keep_num_dims ranks."""
    if node.options.get("weightsFormat", 0) != 0:
        return f"Unsupported FullyConnected weights format: {node.options['weightsFormat']}"
    if len(node.runtime_inputs) > 2:
        return "FullyConnected doesn't support more than 2 runtime inputs"
    if node.inputs[0] is None or node.inputs[0].constant:
        return "FullyConnected doesn't support constant input"
    if node.options.get("keepNumDims") and node.inputs[0].rank != node.outputs[0].rank:
        return "Input and output dimensions different and FullyConnected doesn't support keep_num_dims"
    return None


@check("const_int32_axes")
def const_int32_axes(node: Node, ctx: CheckContext) -> str | None:
    """CheckAxesAreInt32Const on input 1 (reductions, CUMSUM axis)."""
    axes = node.inputs[1] if len(node.inputs) > 1 else None
    if axes is None or not axes.constant:
        return f"{node.op} is only supported with constant axes"
    if axes.dtype != "INT32":
        return f"{node.op} supports int32 tensor for axes, node has {axes.dtype}"
    return None


@check("one_runtime_input")
def one_runtime_input(node: Node, ctx: CheckContext) -> str | None:
    """CheckInputsOutputs(1 runtime input, 1 output): RESHAPE, TRANSPOSE, TILE, PAD, RESIZE, CAST, MEAN."""
    if len(node.runtime_inputs) != 1 or len(node.outputs) != 1:
        return f"expected 1 runtime input, node has {len(node.runtime_inputs)}"
    return None


@check("gpu_slice")
def gpu_slice(node: Node, ctx: CheckContext) -> str | None:
    """SLICE / STRIDED_SLICE: 3-D or 4-D input; STRIDED_SLICE without ellipsis/new-axis/shrink masks."""
    if node.op == "STRIDED_SLICE":
        for mask in ("ellipsisMask", "newAxisMask", "shrinkAxisMask"):
            if node.options.get(mask):
                return f"Slice does not support {mask}"
    if node.inputs[0].rank not in (3, 4):
        return f"{node.op} supports 3 or 4 dimensional tensors only, node has {node.inputs[0].rank}"
    return None


@check("softmax_beta_one")
def softmax_beta_one(node: Node, ctx: CheckContext) -> str | None:
    """Softmax.beta != 1 is not supported."""
    beta = float(node.options.get("beta", 1.0))
    return None if beta == 1.0 else f"Softmax.beta != 1 is not supported (beta {beta})"


@check("gpu_pad")
def gpu_pad(node: Node, ctx: CheckContext) -> str | None:
    """PAD/PADV2/MIRROR_PAD: paddings 4x2 or 3x2, MIRROR_PAD only REFLECT (mode 0)."""
    if node.op == "MIRROR_PAD" and node.options.get("mode", 0) != 0:
        return "Only Reflective padding is supported for Mirror Pad operation"
    pads = node.inputs[1] if len(node.inputs) > 1 else None
    if pads is None or pads.shape not in ((4, 2), (3, 2)):
        return "Invalid paddings tensor shape: expected 4x2 or 3x2"
    return None


@check("gpu_cast")
def gpu_cast(node: Node, ctx: CheckContext) -> str | None:
    """CAST: bool<->float (bool from a comparison) or float32/int32 <-> float32/int32; never 64-bit."""
    src, dst = node.inputs[0].dtype, node.outputs[0].dtype
    if src == "BOOL" and dst in FLOATS or src in FLOATS and dst == "BOOL":
        return None
    if src in ("FLOAT32", "INT32") and dst in ("FLOAT32", "INT32"):
        return None
    return f"Not supported Cast case. Input type: {src} and output type: {dst}"


@check("gpu_logical_consumer")
def gpu_logical_consumer(node: Node, ctx: CheckContext) -> str | None:
    """Comparison ops: the bool output must feed exactly one CAST/SELECT/SELECT_V2 with a float output."""
    users = ctx.graph.consumers.get(node.outputs[0].index, [])
    if len(users) == 1:
        nxt = ctx.graph.nodes[users[0]]
        if nxt.op in ("CAST", "SELECT", "SELECT_V2") and nxt.outputs[0].dtype in FLOATS:
            return None
    return "Not supported logical op case (bool result must feed one CAST/SELECT with a float output)"


@check("gpu_cumsum")
def gpu_cumsum(node: Node, ctx: CheckContext) -> str | None:
    """CheckCumsumGpuDelegateCompatibility: float input/output, constant int32 axis."""
    inp, out = node.inputs[0], node.outputs[0]
    axis = node.inputs[1] if len(node.inputs) > 1 else None
    if inp.dtype not in FLOATS or out.dtype != inp.dtype or axis is None or axis.dtype != "INT32" \
            or not axis.constant:
        return "Input/output must be float type and indices must be constant int32 type"
    return None


@check("gpu_gather")
def gpu_gather(node: Node, ctx: CheckContext) -> str | None:
    """GATHER: non-int32 data, 1-D int32 indices."""
    data, idx = node.inputs[0], node.inputs[1]
    if data.dtype == "INT32":
        return "Does not accept INT32 input"
    if idx.rank != 1 or idx.dtype != "INT32":
        return "Only support 1D INT32 indices"
    return None


@check("gpu_select")
def gpu_select(node: Node, ctx: CheckContext) -> str | None:
    """CheckSelectV2GpuDelegateCompatibility: float/bool condition, float branches same-shaped or scalar."""
    if len(node.inputs) != 3:
        return "Expected 3 inputs and 1 output"
    cond, a, b = node.inputs
    out = node.outputs[0].shape
    if cond.dtype not in FLOATS | {"BOOL"} or a.dtype not in FLOATS or b.dtype not in FLOATS:
        return "Cond must be float or bool type, if, else tensors must be float"
    for t in (a, b):
        if t.shape and t.shape != out and (t.rank > 1 or t.shape[0] > 1):
            return "if/else tensors must have the output's shape or be scalars"
    return None


@check("gpu_resize")
def gpu_resize(node: Node, ctx: CheckContext) -> str | None:
    """RESIZE_*: one runtime input; bilinear refuses align_corners together with half_pixel_centers."""
    if node.options.get("alignCorners") and node.options.get("halfPixelCenters"):
        return "If half_pixel_centers is True, align_corners must be False"
    return one_runtime_input(node, ctx)


@check("gpu_block_size")
def gpu_block_size(node: Node, ctx: CheckContext) -> str | None:
    """DEPTH_TO_SPACE / SPACE_TO_DEPTH: block_size > 1."""
    return None if node.options.get("blockSize", 2) > 1 else f"{node.op} block_size must be > 1"


@check("gpu_pool")
def gpu_pool(node: Node, ctx: CheckContext) -> str | None:
    """Pooling: positive kernel and strides, supported fused activation."""
    for key in ("filterHeight", "filterWidth", "strideH", "strideW"):
        if node.options.get(key, 1) <= 0:
            return f"incorrect {key}"
    return gpu_activation(node, ctx)


@check("gpu_dequantize")
def gpu_dequantize(node: Node, ctx: CheckContext) -> str | None:
    """DEQUANTIZE: not from INT16."""
    return "Unsupported dequantization type (int16)" if node.inputs[0].dtype == "INT16" else None


@check("two_inputs")
def two_inputs(node: Node, ctx: CheckContext) -> str | None:
    """BATCH_MATMUL and friends: exactly 2 inputs and 1 output."""
    if len(node.inputs) != 2 or len(node.outputs) != 1:
        return f"Expected 2 inputs and 1 output, got {len(node.inputs)} inputs"
    return None


@check("gpu_weights_readable")
def gpu_weights_readable(node: Node, ctx: CheckContext) -> str | None:
    """ObjectReader::ReadTensor -> CreateVectorCopyData<float> (model_builder_helper.cc) reads constant
    weights of f32/f16/int8/uint8/int32 with per-tensor/channel scales only: INT4 and blockwise-quantized
    constants fail when the delegate builds its graph, after partitioning (IsSupported passed)."""
    for t in node.inputs:
        if t is not None and t.constant and (t.dtype in ("INT4", "INT2") or t.quantization == "blockwise"):
            return f"constant {t.dtype} {t.quantization}-quantized weight {t.name!r} cannot be read " \
                   f"(CreateVectorCopyData: \"src can't be int4\")"
    return None


# ---- LiteRT GPU accelerator (ML Drift): ml_drift_delegate/tflite/support/support_*.cc

MD_ARITH_TYPES = frozenset({"BFLOAT16", "FLOAT16", "FLOAT32", "INT4", "INT8", "INT16", "INT32", "UINT8",
                            "UINT16", "UINT32"})


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    for x, y in zip(reversed(a), reversed(b), strict=False):
        if x != y and x != 1 and y != 1:
            return False
    return True


@check("md_unary")
def md_unary(node: Node, ctx: CheckContext) -> str | None:
    """IsUnaryOpSupported: 1 in/1 out, dtypes of the arithmetic set (CAST adds BOOL), equal dims, runtime input."""
    if len(node.inputs) != 1 or len(node.outputs) != 1:
        return "expected 1 input and 1 output"
    allowed = MD_ARITH_TYPES | ({"BOOL"} if node.op == "CAST" else set())
    inp, out = node.inputs[0], node.outputs[0]
    for role, t in (("inputs[0]", inp), ("outputs[0]", out)):
        if t.dtype not in allowed:
            return f"{role} dtype {t.dtype} not supported"
    if inp.shape != out.shape:
        return f"Input and output dimension mismatch: {_shape(inp)}, {_shape(out)}"
    if inp.constant:
        return "inputs[0] must not be constant"
    return None


@check("md_binary")
def md_binary(node: Node, ctx: CheckContext) -> str | None:
    """IsBinaryOpSupported: 2 in/1 out, arithmetic dtypes, broadcastable dims, not both constant, activation."""
    if len(node.inputs) != 2 or len(node.outputs) != 1:
        return "expected 2 inputs and 1 output"
    a, b = node.inputs
    for role, t in (("inputs[0]", a), ("inputs[1]", b), ("outputs[0]", node.outputs[0])):
        if t.dtype not in MD_ARITH_TYPES:
            return f"{role} dtype {t.dtype} not supported"
    if a.shape != b.shape and not _broadcastable(a.shape, b.shape):
        return f"input0 and input1 dimension mismatch: {_shape(a)}, {_shape(b)}"
    if a.constant and b.constant:
        return "Invalid 2 constant inputs"
    return gpu_activation(node, ctx)


@check("md_fully_connected")
def md_fully_connected(node: Node, ctx: CheckContext) -> str | None:
    """IsFullyConnectedSupported: version 1-14, weights f16/f32/int2/int4/int8/uint8 (blockwise allowed), <=4-D."""
    if not 2 <= len(node.inputs) <= 3 or len(node.outputs) != 1:
        return "Invalid number of inputs/outputs"
    inp, weights = node.inputs[0], node.inputs[1]
    if inp.dtype not in ("BFLOAT16", "FLOAT16", "FLOAT32", "INT8", "UINT8"):
        return f"inputs[0] dtype {inp.dtype} not supported"
    if weights.dtype not in ("FLOAT16", "FLOAT32", "INT2", "INT4", "INT8", "UINT8"):
        return f"inputs[1] dtype {weights.dtype} not supported"
    if inp.rank > 4 or node.outputs[0].rank > 4:
        return "tensors must be at most 4-D"
    if node.options.get("weightsFormat", 0) != 0:
        return f"Unsupported weights format: {node.options['weightsFormat']}"
    return gpu_activation(node, ctx)


@check("md_embedding_lookup")
def md_embedding_lookup(node: Node, ctx: CheckContext) -> str | None:
    """IsEmbeddingLookupSupported: ids f16/f32/i32; table f32 or int2/4/8 with *affine* quantization only."""
    ids, table = node.inputs[0], node.inputs[1]
    if ids.dtype not in ("FLOAT16", "FLOAT32", "INT32"):
        return f"inputs[0] dtype {ids.dtype} not supported"
    if table.dtype not in ("FLOAT32", "INT2", "INT4", "INT8"):
        return f"Unsupported weights type: {table.dtype}"
    if table.dtype != "FLOAT32" and table.quantization != "affine":
        return f"Unsupported quantization type for weights: {table.quantization} (affine only)"
    return None


@check("md_cumsum")
def md_cumsum(node: Node, ctx: CheckContext) -> str | None:
    """IsCumsumSupported: version 1, runtime input, constant scalar int32 axis, no 64-bit types."""
    inp, axis = node.inputs[0], node.inputs[1]
    if inp.dtype in ("INT64", "FLOAT64") or axis.dtype != "INT32":
        return f"dtype {inp.dtype}/{axis.dtype} not supported"
    if inp.constant or not axis.constant:
        return "input must be runtime and axis constant"
    return None


@check("md_topk")
def md_topk(node: Node, ctx: CheckContext) -> str | None:
    """IsTopKSupported: float values, int32 indices, constant scalar k."""
    inp, k = node.inputs[0], node.inputs[1]
    if inp.dtype not in FLOATS or k.dtype != "INT32" or not k.constant or (k.values is not None
                                                                          and len(k.values) != 1):
        return "TopK needs float input and a constant scalar int32 k"
    return None


# ---- NPU compiler plugins (measured with the Qualcomm plugin, see tables/npu.py)

@check("npu_no_blockwise")
def npu_no_blockwise(node: Node, ctx: CheckContext) -> str | None:
    """A blockwise-quantized weight makes the Qualcomm compile fail ("Unsupported quantization type")."""
    for t in node.inputs:
        if t is not None and t.quantization == "blockwise":
            return f"blockwise-quantized {t.dtype} weight {t.name!r} (QNN: 'Unsupported quantization type')"
    return None


@check("npu_no_hybrid_conv")
def npu_no_hybrid_conv(node: Node, ctx: CheckContext) -> str | None:
    """Measured: the HTP Conv2d has no float32-input x int8-weight I/O set; the plugin leaves it on the CPU."""
    weights = node.inputs[1] if len(node.inputs) > 1 else None
    if node.inputs[0] is not None and node.inputs[0].dtype == "FLOAT32" and weights is not None \
            and weights.dtype in ("INT8", "UINT8", "INT4"):
        return f"float input with {weights.dtype} weights (HTP Conv2d has no FLOAT_32 x SFIXED_POINT_8 I/O set)"
    return None

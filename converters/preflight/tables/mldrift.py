"""The LiteRT GPU accelerator (CompiledModel API, ML Drift): what `Accelerator.GPU` runs on Android.

Sources (google-ai-edge/LiteRT, read through the search tool; no code copied):
- ml_drift_delegate/tflite/support/support.cc: `IsNodeSupported` (the op list and the max version passed to
  each arithmetic/activation check) and `GetSupportedNodes` (bool tensors refused unless
  `allow_bool_tensors`; quantized tensors accepted with `allow_quant_ops`, which int4/int8 models need and
  we assume on; the FP16 graph partition helper, largest partitions first).
- support_elementwise.cc (unary/binary dtype sets: no BOOL except CAST, no INT64; unary input must be a
  runtime tensor with the output's shape; binary inputs broadcastable, not both constant),
  support_fully_connected.cc (versions 1-14; int2/int4/int8/uint8 weights incl. blockwise scales),
  support_embedding_lookup.cc (quantized tables must be *affine*: blockwise INT4 tables are refused),
  support_cumsum.cc, support_topk.cc.
- The "Supported operators" table of ai.google.dev/edge/litert/inference ("GPU Accelerator" column), which
  agrees that BROADCAST_TO and RELU_0_TO_1 are not GPU ops.
Assumptions, stated in reports: tensors of rank <= 4 (the FC/embedding checks' limit, applied to every op),
`allow_bool_tensors` off, `allow_quant_ops` on, one delegated partition.
"""

from __future__ import annotations

from converters.preflight.tables.base import DelegateTable, OpRule, TensorPolicy


def _unary(version: int) -> OpRule:
    return OpRule(version, checks=("md_unary",))


def _binary(version: int) -> OpRule:
    return OpRule(version, checks=("md_binary",))


_ANY = OpRule(None)

OPS: dict[str, OpRule] = {
    # arith1(N): unary arithmetic with max version N
    "ABS": _unary(5), "CAST": _unary(1), "CEIL": _unary(2), "COS": _unary(2), "ELU": _unary(2),
    "EXP": _unary(2), "FLOOR": _unary(2), "GELU": _unary(3), "HARD_SWISH": _unary(1), "LOG": _unary(2),
    "LOGISTIC": _unary(2), "NEG": _unary(2), "ROUND": _unary(2), "RSQRT": _unary(2), "SIGN": _unary(2),
    "SIN": _unary(2), "SQRT": _unary(2), "SQUARE": _unary(2), "TANH": _unary(2),
    "STABLEHLO_CBRT": _unary(1),
    # arith2(N): binary arithmetic with max version N
    "ADD": _binary(6), "ATAN2": _binary(2), "DIV": _binary(2), "FLOOR_DIV": _binary(3),
    "FLOOR_MOD": _binary(2), "MAXIMUM": _binary(4), "MINIMUM": _binary(4), "MUL": _binary(8),
    "POW": _binary(2), "RIGHT_SHIFT": _binary(1), "SQUARED_DIFFERENCE": _binary(2), "SUB": _binary(3),
    "STABLEHLO_REMAINDER": _binary(1), "STABLEHLO_SHIFT_LEFT": _binary(1),
    # logic1/logic2: bool results, so refused while allow_bool_tensors is off (see TENSORS)
    "EQUAL": OpRule(2), "NOT_EQUAL": OpRule(2), "GREATER": OpRule(2), "GREATER_EQUAL": OpRule(2),
    "LESS": OpRule(2), "LESS_EQUAL": OpRule(2), "LOGICAL_AND": OpRule(2), "LOGICAL_OR": OpRule(2),
    "LOGICAL_NOT": OpRule(2), "BITWISE_XOR": OpRule(2),
    # relu(N); RELU_0_TO_1 is absent from IsNodeSupported
    "RELU": OpRule(2), "RELU6": OpRule(2), "RELU_N1_TO_1": OpRule(2), "LEAKY_RELU": OpRule(2),
    "PRELU": OpRule(1),
    "SOFTMAX": OpRule(4),
    "FULLY_CONNECTED": OpRule(14, checks=("md_fully_connected",)),
    "EMBEDDING_LOOKUP": OpRule(1, checks=("md_embedding_lookup",)),
    "CUMSUM": OpRule(1, checks=("md_cumsum",)),
    "TOPK_V2": OpRule(2, checks=("md_topk",)),
    # ops whose support_*.cc checks we did not transcribe: accepted by op type, version unchecked
    "ARG_MAX": _ANY, "AVERAGE_POOL_2D": _ANY, "BATCH_MATMUL": _ANY, "BITCAST": _ANY, "CONCATENATION": _ANY,
    "CONV_2D": _ANY, "DEPTH_TO_SPACE": _ANY, "DEPTHWISE_CONV_2D": _ANY, "DEQUANTIZE": _ANY,
    "DYNAMIC_UPDATE_SLICE": _ANY, "GATHER": _ANY, "MAX_POOL_2D": _ANY, "MEAN": _ANY, "MIRROR_PAD": _ANY,
    "ONE_HOT": _ANY, "PACK": _ANY, "PAD": _ANY, "PADV2": _ANY, "QUANTIZE": _ANY, "REDUCE_ALL": _ANY,
    "REDUCE_ANY": _ANY, "REDUCE_MAX": _ANY, "REDUCE_MIN": _ANY, "REDUCE_PROD": _ANY, "RESHAPE": _ANY,
    "RESIZE_BILINEAR": _ANY, "RESIZE_NEAREST_NEIGHBOR": _ANY, "REVERSE_V2": _ANY, "SELECT": _ANY,
    "SELECT_V2": _ANY, "SLICE": _ANY, "SPACE_TO_DEPTH": _ANY, "SPLIT": _ANY, "SPLIT_V": _ANY,
    "STABLEHLO_BROADCAST_IN_DIM": _ANY, "STABLEHLO_CLAMP": _ANY, "STRIDED_SLICE": _ANY, "SUM": _ANY,
    "TILE": _ANY, "TRANSPOSE": _ANY, "TRANSPOSE_CONV": _ANY, "UNPACK": _ANY,
    # composites it recognises
    "STABLEHLO_COMPOSITE:odml.group_norm": _ANY, "STABLEHLO_COMPOSITE:odml.rms_norm": _ANY,
    "STABLEHLO_COMPOSITE:odml.scaled_dot_product_attention": _ANY,
    # custom ops it recognises
    "CUSTOM:Convolution2DTransposeBias": _ANY, "CUSTOM:MaxPoolingWithArgmax2D": _ANY,
    "CUSTOM:Resampler": _ANY, "CUSTOM:custom_call.pixel_shuffle": _ANY,
}

TENSORS = TensorPolicy(
    max_rank=4,
    runtime_dtypes=frozenset({"FLOAT32", "FLOAT16", "BFLOAT16", "INT8", "UINT8", "INT16", "UINT16", "INT32",
                              "UINT32", "INT4", "INT2"}),
)

MLDRIFT = DelegateTable(
    name="gpu/mldrift", title="LiteRT GPU accelerator (CompiledModel API, ML Drift)",
    source="LiteRT ml_drift_delegate/tflite/support/support*.cc; ai.google.dev/edge/litert/inference",
    ops=OPS, tensors=TENSORS, max_partitions=1,
    notes=("assumed: rank <= 4, allow_bool_tensors off, allow_quant_ops on, one delegated partition",),
)

"""The NNAPI delegate, Android API levels 27-34 (NNAPI is deprecated from Android 15, API 35).

Source: google-ai-edge/LiteRT tflite/delegates/nnapi/nnapi_delegate.cc, `NNAPIDelegateKernel::Validate`
(one `case` per builtin op: max op version, the SDK level that introduced it, operand types per level) and
nnapi_delegate_kernel.h (kMinSdkVersionForNNAPI = 27, NNAPI11 = 28, NNAPI12 = 29, NNAPI13 = 30, runtime
feature level 5 = API 31, 6 = API 33, 7 = API 34). Ops without a `case` are never delegated ("Unsupported
operation type"): GELU, BROADCAST_TO, CUMSUM, RELU_0_TO_1, SIGN, STABLEHLO_*, DYNAMIC_UPDATE_SLICE, ...
The delegate takes up to 3 partitions (StatefulNnApiDelegate::Options::max_number_delegated_partitions).
What a device's drivers accept on top of this is not knowable offline: a node that passes here can still be
refused by the vendor driver (then it runs on NNAPI's CPU path or is excluded with `disallow_nnapi_cpu`).
Android 15 deprecates NNAPI (developer.android.com/ndk/guides/neuralnetworks/migration-guide).
"""

from __future__ import annotations

from converters.preflight.checks_nnapi import API_FL6, API_FL7, API_NNAPI11, API_NNAPI12, API_NNAPI13
from converters.preflight.tables.base import DelegateTable, OpRule, TensorPolicy

MIN_API = 27  # Android 8.1, NNAPI 1.0
MAX_API = 34  # the last level with a table: Android 14
DEPRECATED_FROM_API = 35  # Android 15 deprecates NNAPI
KNOWN_APIS = range(MIN_API, 37)  # levels the CLI accepts (35 and 36 evaluated like 34, with a warning)

_W = ("nn_weights_mappable",)
_F_Q8 = ("nn_float_or_quant8",)

OPS: dict[str, OpRule] = {
    "ADD": OpRule(2, checks=("nn_add_mul",)),
    "MUL": OpRule(2, checks=("nn_add_mul",)),
    "SUB": OpRule(3, min_api=API_NNAPI11, checks=("nn_sub",)),
    "DIV": OpRule(1, min_api=API_NNAPI11, checks=("nn_div",)),
    "AVERAGE_POOL_2D": OpRule(2, checks=_F_Q8), "MAX_POOL_2D": OpRule(2, checks=_F_Q8),
    "L2_POOL_2D": OpRule(1, checks=("nn_float",)),
    "CONV_2D": OpRule(5, checks=("nn_conv",), fatal=_W),
    "DEPTHWISE_CONV_2D": OpRule(3, checks=("nn_depthwise",), fatal=_W),
    "FULLY_CONNECTED": OpRule(5, checks=("nn_fully_connected",), fatal=_W),
    "TRANSPOSE_CONV": OpRule(4, min_api=API_NNAPI12, checks=("nn_const_input1",), fatal=_W),
    "HARD_SWISH": OpRule(None, checks=_F_Q8),
    "SOFTMAX": OpRule(2, checks=("nn_softmax",)),
    "RESHAPE": OpRule(1, checks=("nn_reshape",)),
    "RESIZE_BILINEAR": OpRule(3, checks=("nn_resize",)),
    "RESIZE_NEAREST_NEIGHBOR": OpRule(3, min_api=API_NNAPI12, checks=("nn_resize",)),
    "SQUEEZE": OpRule(1, min_api=API_NNAPI11),
    "L2_NORMALIZATION": OpRule(2),
    "LOCAL_RESPONSE_NORMALIZATION": OpRule(1),
    "CONCATENATION": OpRule(2, checks=("nn_concat",)),
    "DEQUANTIZE": OpRule(2, checks=("nn_dequantize",)),
    "FLOOR": OpRule(1),
    "RELU": OpRule(2, checks=_F_Q8), "RELU_N1_TO_1": OpRule(2, checks=_F_Q8), "RELU6": OpRule(2, checks=_F_Q8),
    "LOGISTIC": OpRule(2, checks=_F_Q8),
    "TANH": OpRule(2, checks=("nn_float_or_quant8",)),
    "PAD": OpRule(2, min_api=API_NNAPI11, checks=_F_Q8), "PADV2": OpRule(2, min_api=API_NNAPI12, checks=_F_Q8),
    "SPACE_TO_BATCH_ND": OpRule(2, min_api=API_NNAPI11), "BATCH_TO_SPACE_ND": OpRule(2, min_api=API_NNAPI11),
    "STRIDED_SLICE": OpRule(2, min_api=API_NNAPI11, checks=_F_Q8),
    "TRANSPOSE": OpRule(2, min_api=API_NNAPI11, checks=("nn_const_input1",)),
    "ABS": OpRule(1, min_api=API_NNAPI12, checks=("nn_float",)),
    "EXP": OpRule(1, min_api=API_NNAPI12, checks=("nn_float",)),
    "LOG": OpRule(1, min_api=API_NNAPI12, checks=("nn_float",)),
    "POW": OpRule(1, min_api=API_NNAPI12, checks=("nn_float",)),
    "RSQRT": OpRule(2, min_api=API_NNAPI12, checks=("nn_rsqrt",)),
    "SLICE": OpRule(2, min_api=API_NNAPI12, checks=("nn_slice",)),
    "SIN": OpRule(1, min_api=API_NNAPI12, checks=("nn_float",)),
    "COS": OpRule(1, min_api=API_NNAPI12, checks=("nn_float",)),
    "SQRT": OpRule(1, min_api=API_NNAPI12, checks=("nn_float",)),
    "SPACE_TO_DEPTH": OpRule(2, checks=_F_Q8), "DEPTH_TO_SPACE": OpRule(None, checks=_F_Q8),
    "MEAN": OpRule(2, min_api=API_NNAPI11, checks=("nn_mean",)),
    "EMBEDDING_LOOKUP": OpRule(1, checks=("nn_embedding_lookup",)),
    "MAXIMUM": OpRule(3, min_api=API_NNAPI12, checks=("nn_types_f32_i32_q8",)),
    "MINIMUM": OpRule(3, min_api=API_NNAPI12, checks=("nn_types_f32_i32_q8",)),
    "CAST": OpRule(1, min_api=API_NNAPI12, checks=("nn_cast",)),
    "PRELU": OpRule(1, min_api=API_NNAPI12, checks=_F_Q8), "LEAKY_RELU": OpRule(1, min_api=API_NNAPI12, checks=_F_Q8),
    "TILE": OpRule(1, min_api=API_NNAPI12, checks=("nn_types_f32_i32_q8",)),
    "LOGICAL_OR": OpRule(1, min_api=API_NNAPI12, checks=("nn_bool_input",)),
    "LOGICAL_AND": OpRule(1, min_api=API_NNAPI12, checks=("nn_bool_input",)),
    "LOGICAL_NOT": OpRule(1, min_api=API_NNAPI12, checks=("nn_bool_input",)),
    **{op: OpRule(2, min_api=API_NNAPI12, checks=("nn_compare",))
       for op in ("LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL")},
    "NEG": OpRule(2, min_api=API_NNAPI12, checks=("nn_types_f32_i32_q8",)),
    "TOPK_V2": OpRule(2, min_api=API_NNAPI12, checks=("nn_topk",)),
    "SELECT": OpRule(2, min_api=API_NNAPI12, checks=("nn_types_f32_i32_q8",)),
    "GATHER": OpRule(2, min_api=API_NNAPI12, checks=("nn_types_f32_i32_q8",)),
    "EXPAND_DIMS": OpRule(1, min_api=API_NNAPI12),
    "SPLIT": OpRule(3, min_api=API_NNAPI12, checks=("nn_types_f32_i32_q8",)),
    "SPLIT_V": OpRule(2, min_api=API_NNAPI13, checks=("nn_types_f32_i32_q8",)),
    "LOG_SOFTMAX": OpRule(1, min_api=API_NNAPI12, checks=("nn_float",)),
    "QUANTIZE": OpRule(2, min_api=API_NNAPI12),
    "REDUCE_ANY": OpRule(2, min_api=API_NNAPI12),
    "REDUCE_MAX": OpRule(2, min_api=API_NNAPI12, checks=_F_Q8),
    "REDUCE_MIN": OpRule(2, min_api=API_NNAPI12, checks=_F_Q8),
    "REDUCE_PROD": OpRule(1, min_api=API_NNAPI12, checks=("nn_sum",)),
    "SUM": OpRule(1, min_api=API_NNAPI12, checks=("nn_sum",)),
    "ELU": OpRule(1, min_api=API_NNAPI13, checks=("nn_float",)),
    "FILL": OpRule(1, min_api=API_NNAPI13),
    "PACK": OpRule(2, min_api=API_NNAPI13), "UNPACK": OpRule(2, min_api=API_NNAPI13),
    "SQUARED_DIFFERENCE": OpRule(2, min_api=API_NNAPI11, checks=("nn_squared_difference",)),
    "BATCH_MATMUL": OpRule(2, min_api=API_FL6, checks=("nn_batch_matmul",)),
    "MIRROR_PAD": OpRule(2, min_api=API_FL7), "REVERSE_V2": OpRule(3, min_api=API_FL7),
}

# NNAPI operand types (NeuralNetworksTypes.h): no 64-bit, no 4-bit, no bfloat16
TENSORS = TensorPolicy(max_rank=None,
                       runtime_dtypes=frozenset({"FLOAT32", "FLOAT16", "INT32", "UINT8", "INT8", "INT16", "BOOL"}))

NNAPI = DelegateTable(
    name="nnapi", title="NNAPI delegate (Interpreter API)",
    source="LiteRT tflite/delegates/nnapi/nnapi_delegate.cc (NNAPIDelegateKernel::Validate), "
           "nnapi_delegate_kernel.h",
    ops=OPS, tensors=TENSORS, max_partitions=3,
    notes=("the NNAPI delegate takes up to 3 partitions; device drivers may refuse more",),
)

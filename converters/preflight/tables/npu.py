"""NPU vendor paths of LiteRT (CompiledModel `Accelerator.NPU`, AOT or on-device JIT through a compiler plugin).

Op coverage is the "Supported operators" table of ai.google.dev/edge/litert/inference (columns "Qualcomm
NPU" and "MediaTek NPU"), which documents what each vendor's LiteRT compiler plugin legalises. Conditions
measured here with the real Qualcomm plugin (libLiteRtCompilerPlugin_Qualcomm.so from ai-edge-litert 2.3
with QNN 2.51 x86_64 libraries, see converters/preflight/README.md): fp32, fp16-weight and dynamic-range
INT8 graphs of our bundles compile to one DISPATCH_OP for SM8650; INT4 *blockwise* weights are refused
("qnn_compose_graph.cc: Unsupported quantization type"). Versions and per-op operand rules are not in the
public table, so the NPU rows check op presence plus what we measured with the Qualcomm plugin; with the QNN
libraries installed `banana preflight --delegate npu --soc SM8650` replaces the table by a real compile.
Measured (QNN 2.51, SM8650): a dynamic-range CONV_2D (float input, int8 weights) is left on the CPU (the HTP
Conv2d has no FLOAT_32 x SFIXED_POINT_8 I/O set); a dynamic-range FULLY_CONNECTED with int8 weights compiles;
any INT4 blockwise weight makes the whole compile fail ("qnn_compose_graph.cc: Unsupported quantization
type"). The MediaTek rows are op coverage only (its SDK could not be exercised here).
"""

from __future__ import annotations

from converters.preflight.tables.base import DelegateTable, OpRule, TensorPolicy

_QUALCOMM_OPS = (
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE",
    "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "L2_NORMALIZATION", "L2_POOL_2D", "LOGISTIC",
    "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "SOFTMAX",
    "SPACE_TO_DEPTH", "TANH", "PAD", "GATHER", "TRANSPOSE", "MEAN", "SUB", "DIV", "STRIDED_SLICE", "EXP",
    "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "CAST", "PRELU", "MAXIMUM", "ARG_MAX", "MINIMUM", "LESS", "NEG",
    "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT", "SLICE", "SIN", "TRANSPOSE_CONV", "TILE",
    "EQUAL", "NOT_EQUAL", "LOG", "SUM", "SQRT", "RSQRT", "POW", "ARG_MIN", "REDUCE_MAX", "PACK", "LOGICAL_OR",
    "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY", "SQUARE",
    "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS", "CEIL", "REVERSE_V2",
    "GATHER_ND", "COS", "ELU", "QUANTIZE", "ROUND", "HARD_SWISH", "SCATTER_ND", "SELECT_V2", "BATCH_MATMUL",
    "CUMSUM", "BROADCAST_TO", "CONV_3D", "REDUCE_ALL", "GELU", "DYNAMIC_UPDATE_SLICE", "RELU_0_TO_1", "SIGN",
)
_MEDIATEK_OPS = (
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "FULLY_CONNECTED",
    "L2_NORMALIZATION", "LOGISTIC", "MAX_POOL_2D", "MUL", "RELU", "RESHAPE", "RESIZE_BILINEAR", "SOFTMAX",
    "TANH", "PAD", "TRANSPOSE", "MEAN", "SUB", "DIV", "STRIDED_SLICE", "SPLIT", "CAST", "PRELU", "MAXIMUM",
    "MINIMUM", "PADV2", "GREATER", "SLICE", "TRANSPOSE_CONV", "SUM", "SQRT", "RSQRT", "REDUCE_MAX",
    "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE", "ABS", "QUANTIZE", "HARD_SWISH",
    "BATCH_MATMUL", "GELU",
)
_RULE = OpRule(None, fatal=("npu_no_blockwise",))
_CONV = OpRule(None, checks=("npu_no_hybrid_conv",), fatal=("npu_no_blockwise",))
_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D")

TENSORS = TensorPolicy(max_rank=None, runtime_dtypes=frozenset({"FLOAT32", "FLOAT16", "INT32", "UINT8", "INT8",
                                                                "INT16", "UINT16", "BOOL"}))
_SOURCE = "ai.google.dev/edge/litert/inference (Supported operators); Qualcomm plugin measured here"

QUALCOMM = DelegateTable(
    name="npu/qualcomm", title="LiteRT NPU, Qualcomm (QNN HTP via the LiteRT compiler plugin)", source=_SOURCE,
    ops={op: _CONV if op in _CONVS else _RULE for op in _QUALCOMM_OPS}, tensors=TENSORS, max_partitions=None,
    notes=("op coverage from the LiteRT table; run with --soc and the QNN libraries for a real compile",),
)
MEDIATEK = DelegateTable(
    name="npu/mediatek", title="LiteRT NPU, MediaTek (NeuroPilot via the LiteRT compiler plugin)", source=_SOURCE,
    ops=dict.fromkeys(_MEDIATEK_OPS, OpRule(None)), tensors=TENSORS, max_partitions=None,
    notes=("op coverage from the LiteRT table only; the MediaTek SDK could not be exercised here",),
)

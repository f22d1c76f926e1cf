"""The TFLite GPU delegate v2 (Interpreter API): OpenCL backend, OpenGL ES 3.1 fallback.

Sources (google-ai-edge/LiteRT, read through the search tool; no code copied):
- tflite/delegates/gpu/common/model_builder.cc: `NewOperationParser` (which ops have a parser, so which are
  candidates at all), each parser's `IsSupported` (`CheckMaxSupportedOpVersion` limits below) and
  `GetOpsToReplace` (runtime tensors must be float32/float16, plus int8/uint8 with quantized ops allowed,
  which `TfLiteGpuDelegateOptionsV2Default` enables; a few ops take int32/bool; no tensor of rank >= 5,
  constants included; only the largest partition is delegated, `max_delegated_partitions` = 1).
- tflite/tools/versioning/gpu_compatibility.cc: `CheckGpuDelegateCompatibility` (the per-op conditions the
  parsers call: operand counts, broadcasting, axes, activations, CAST/SELECT/CUMSUM/GATHER types).
- tflite/delegates/gpu/common/model_builder_helper.{h,cc}: constant weights are read through
  `CreateVectorCopyData<float>` (f32, f16, int8, uint8, int32 only): INT4 or blockwise weights fail while the
  delegate builds its graph, after partitioning, so the whole delegation fails (fatal).
- tflite/delegates/gpu/gl/kernels/registry.cc: the OpenGL backend's shaders. An op without one (TRANSPOSE,
  BATCHED_MATMUL, comparisons, CAST, CUMSUM, GATHER, SPLIT, reductions other than MEAN, ...) makes the GL
  delegate fail to build: all ops run on the CPU. OpenGL is used where OpenCL is missing (e.g. Pixel phones).

Not in `NewOperationParser` and so never delegated: BROADCAST_TO, EMBEDDING_LOOKUP, TOPK_V2, SQUEEZE,
EXPAND_DIMS, STABLEHLO_* ops, ARG_MAX/MIN, BATCH_TO_SPACE_ND, SPACE_TO_BATCH_ND, DYNAMIC_UPDATE_SLICE, ...
"""

from __future__ import annotations

from converters.preflight.tables.base import DelegateTable, OpRule, TensorPolicy

_UNARY = OpRule(2, checks=("gpu_unary",))
_UNARY_NO_GL = OpRule(2, checks=("gpu_unary",), gl_shader=False)
_BINARY = OpRule(2, checks=("gpu_binary", "gpu_activation"))
_COMPARE = OpRule(2, checks=("gpu_binary", "gpu_logical_consumer"), gl_shader=False)
_WEIGHTS = ("gpu_weights_readable",)

OPS: dict[str, OpRule] = {
    # one-argument elementwise (ElementwiseOperationParser, max version 2)
    "ABS": _UNARY, "COS": _UNARY, "ELU": _UNARY, "EXP": _UNARY, "FLOOR": _UNARY, "GELU": _UNARY,
    "LOG": _UNARY, "LOGISTIC": _UNARY, "NEG": _UNARY, "RSQRT": _UNARY, "SIN": _UNARY, "SQRT": _UNARY,
    "SQUARE": _UNARY, "TANH": _UNARY, "SIGN": _UNARY_NO_GL,
    # two-argument elementwise (max version 2; MUL 3)
    "ADD": OpRule(2, checks=("gpu_add", "gpu_activation")),
    "ADD_N": OpRule(2, checks=("two_inputs",)),
    "MUL": OpRule(3, checks=("gpu_mul", "gpu_activation")),
    "SUB": _BINARY, "DIV": _BINARY, "POW": _BINARY, "MAXIMUM": _BINARY, "MINIMUM": _BINARY,
    "SQUARED_DIFFERENCE": _BINARY, "FLOOR_DIV": _BINARY, "FLOOR_MOD": _BINARY,
    "EQUAL": _COMPARE, "NOT_EQUAL": _COMPARE, "GREATER": _COMPARE, "GREATER_EQUAL": _COMPARE,
    "LESS": _COMPARE, "LESS_EQUAL": _COMPARE,
    "LOGICAL_AND": OpRule(2, checks=("gpu_binary",), gl_shader=False),
    # activations (ReLUOperationParser, max version 2); RELU_0_TO_1 is accepted here (not by ML Drift)
    "RELU": OpRule(2), "RELU6": OpRule(2), "RELU_N1_TO_1": OpRule(2), "RELU_0_TO_1": OpRule(2),
    "LEAKY_RELU": OpRule(2), "PRELU": OpRule(1), "HARD_SWISH": OpRule(None, checks=("one_runtime_input",)),
    # convolution family: constant weights go through CreateVectorCopyData (no INT4 / blockwise)
    "CONV_2D": OpRule(6, checks=("gpu_conv_io", "gpu_activation"), fatal=_WEIGHTS),
    "DEPTHWISE_CONV_2D": OpRule(6, checks=("gpu_conv_io", "gpu_depthwise", "gpu_activation"), fatal=_WEIGHTS),
    "TRANSPOSE_CONV": OpRule(3, checks=("gpu_conv_io",), fatal=_WEIGHTS),
    "FULLY_CONNECTED": OpRule(9, checks=("gpu_fully_connected", "gpu_activation"), fatal=_WEIGHTS),
    # BATCH_MATMUL with two runtime inputs becomes BATCHED_MATMUL, which has no OpenGL shader
    "BATCH_MATMUL": OpRule(None, checks=("two_inputs",), gl_shader=False),
    "AVERAGE_POOL_2D": OpRule(2, checks=("gpu_pool",)), "MAX_POOL_2D": OpRule(2, checks=("gpu_pool",)),
    # reductions: MEAN has a GL shader, the others do not
    "MEAN": OpRule(None, checks=("one_runtime_input", "const_int32_axes")),
    "SUM": OpRule(None, checks=("one_runtime_input", "const_int32_axes"), gl_shader=False),
    "REDUCE_MAX": OpRule(None, checks=("one_runtime_input", "const_int32_axes"), gl_shader=False),
    "REDUCE_MIN": OpRule(None, checks=("one_runtime_input", "const_int32_axes"), gl_shader=False),
    "REDUCE_PROD": OpRule(None, checks=("one_runtime_input", "const_int32_axes"), gl_shader=False),
    "CUMSUM": OpRule(1, checks=("gpu_cumsum",), gl_shader=False),
    # layout and data movement
    "RESHAPE": OpRule(1, checks=("one_runtime_input",)),
    "TRANSPOSE": OpRule(4, checks=("one_runtime_input",), gl_shader=False),
    "CONCATENATION": OpRule(2), "PACK": OpRule(None),
    "UNPACK": OpRule(None, gl_shader=False), "SPLIT": OpRule(None, gl_shader=False),
    "SPLIT_V": OpRule(None, gl_shader=False),
    "SLICE": OpRule(2, checks=("gpu_slice",)), "STRIDED_SLICE": OpRule(4, checks=("gpu_slice",)),
    "TILE": OpRule(None, checks=("one_runtime_input",)),
    "PAD": OpRule(2, checks=("one_runtime_input", "gpu_pad")),
    "PADV2": OpRule(2, checks=("one_runtime_input", "gpu_pad")),
    "MIRROR_PAD": OpRule(2, checks=("one_runtime_input", "gpu_pad")),
    "DEPTH_TO_SPACE": OpRule(None, checks=("gpu_block_size",)),
    "SPACE_TO_DEPTH": OpRule(2, checks=("gpu_block_size",)),
    "RESIZE_BILINEAR": OpRule(3, checks=("gpu_resize",)),
    "RESIZE_NEAREST_NEIGHBOR": OpRule(3, checks=("gpu_resize",)),
    "GATHER": OpRule(1, checks=("gpu_gather",), gl_shader=False),
    "ONE_HOT": OpRule(1, gl_shader=False),
    "SELECT": OpRule(1, checks=("gpu_select",), gl_shader=False),
    "SELECT_V2": OpRule(1, checks=("gpu_select",), gl_shader=False),
    "CAST": OpRule(None, checks=("one_runtime_input", "gpu_cast"), gl_shader=False),
    "SOFTMAX": OpRule(2, checks=("softmax_beta_one",)),
    "LSTM": OpRule(4),
    # quantization plumbing (allow_quant_ops); fp16 weight DEQUANTIZE nodes are folded by the
    # FP16GraphPartitionHelper (tflite/delegates/utils.cc) before partitioning
    "DEQUANTIZE": OpRule(3, checks=("gpu_dequantize",)), "QUANTIZE": OpRule(2),
    "DENSIFY": OpRule(1, gl_shader=False),
    # custom ops with parsers
    "CUSTOM:Convolution2DTransposeBias": OpRule(None), "CUSTOM:MaxPoolingWithArgmax2D": OpRule(None),
    "CUSTOM:MaxUnpooling2D": OpRule(None), "CUSTOM:Resampler": OpRule(None),
}

_COMPARISONS = ("EQUAL", "NOT_EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL")
TENSORS = TensorPolicy(
    max_rank=4,
    runtime_dtypes=frozenset({"FLOAT32", "FLOAT16", "INT8", "UINT8"}),
    extra_inputs={"CAST": frozenset({"BOOL", "INT32"}), "ONE_HOT": frozenset({"INT32"}),
                  "SELECT": frozenset({"BOOL"}), "SELECT_V2": frozenset({"BOOL"}),
                  "LOGICAL_AND": frozenset({"BOOL"}), "GATHER": frozenset({"INT32"})},
    extra_outputs={**{op: frozenset({"BOOL"}) for op in _COMPARISONS},
                   "CAST": frozenset({"INT32", "BOOL"}), "LOGICAL_AND": frozenset({"BOOL"})},
    rank_applies_to_constants=True,
)

_SOURCE = ("LiteRT tflite/delegates/gpu/common/model_builder.cc, tflite/tools/versioning/gpu_compatibility.cc, "
           "tflite/delegates/gpu/common/model_builder_helper.cc")

OPENCL = DelegateTable(
    name="gpu/opencl", title="TFLite GPU delegate v2, OpenCL backend (Interpreter API)", source=_SOURCE,
    ops=OPS, tensors=TENSORS, max_partitions=1,
    notes=("only the largest GPU partition is delegated (max_delegated_partitions = 1)",),
)

OPENGL = DelegateTable(
    name="gpu/opengl", title="TFLite GPU delegate v2, OpenGL ES 3.1 backend (devices without OpenCL)",
    source=_SOURCE + ", tflite/delegates/gpu/gl/kernels/registry.cc", ops=OPS, tensors=TENSORS, max_partitions=1,
    notes=("an op without a GL shader makes the whole delegate fail to build: every op runs on the CPU",),
)

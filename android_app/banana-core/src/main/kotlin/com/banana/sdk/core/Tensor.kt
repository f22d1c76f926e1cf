package com.banana.sdk.core

/** A dense tensor bound to a signature input or read from an output, by name. */
sealed class Tensor(
    val shape: IntArray,
) {
    val elementCount: Int get() = shape.fold(1) { acc, d -> acc * d }

    abstract val dtype: DType

    /** float32 data, row-major. */
    class F32(
        shape: IntArray,
        val data: FloatArray,
    ) : Tensor(shape) {
        override val dtype = DType.FLOAT32

        init {
            require(data.size == elementCount) { "float tensor of shape ${shape.toList()} needs $elementCount values, got ${data.size}" }
        }
    }

    /** int32 data, row-major. */
    class I32(
        shape: IntArray,
        val data: IntArray,
    ) : Tensor(shape) {
        override val dtype = DType.INT32

        init {
            require(data.size == elementCount) { "int tensor of shape ${shape.toList()} needs $elementCount values, got ${data.size}" }
        }
    }

    companion object {
        /** A zero tensor matching [spec] (unbound optional inputs: no subjects, no peel). */
        fun zeros(spec: TensorSpec): Tensor {
            val shape = spec.shape.toIntArray()
            return when (spec.dtype) {
                DType.FLOAT32 -> F32(shape, FloatArray(spec.elementCount))
                DType.INT32 -> I32(shape, IntArray(spec.elementCount))
            }
        }
    }
}

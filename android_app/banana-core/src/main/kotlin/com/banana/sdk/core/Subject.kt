package com.banana.sdk.core

import kotlin.math.sqrt

/** Where a subject's token came from (subject file "source"). */
enum class SubjectSource(
    val id: String,
) {
    REFERENCES("references"), // the colour-silhouette descriptor of reference images (width 128)
    EMBEDDING("embedding"), // a learned vector, usable only at its own width
    ENCODER("encoder"), // made by one model's own learned reference encoder: bound only to that model, at its own width
    ;

    companion object {
        fun parse(id: String): SubjectSource? = entries.firstOrNull { it.id == id }
    }
}

/**
 * A named subject (docs/DESIGN.md §7, `banana_sdk.subjects.store.Subject`): the token the denoiser's subject slot
 * receives, and the word prompts use to name it.
 */
class Subject(
    val name: String, // one lower-case ASCII word; prompts refer to the subject by it
    val token: FloatArray, // (width,) float32 subject-slot input
    val source: SubjectSource,
    val model: String? = null, // source ENCODER: weights sha256 of the model whose learned encoder made it; else null
) {
    val width: Int get() = token.size

    /**
     * This subject's token for a model whose subject slots are [width] wide (`Subject.token_for`): as is at its own
     * width, projected ([project]) if it is a 128-wide reference descriptor, else [SubjectException] (learned
     * embeddings and model-encoded tokens are used only at their own width).
     */
    fun tokenFor(width: Int): FloatArray {
        if (width == this.width) return token
        if (source == SubjectSource.REFERENCES && this.width == DESCRIPTOR_DIM) return project(token, width)
        val what = if (source == SubjectSource.ENCODER) "model-encoded" else "learned"
        throw SubjectException(
            "subject '$name' is a $what ${this.width}-wide embedding; this model's subject slots are $width wide " +
                "(define it from reference images instead)",
        )
    }

    companion object {
        /** Features of a reference descriptor (`encoder.DESCRIPTOR_DIM`). */
        const val DESCRIPTOR_DIM = 128

        /**
         * A 128-wide descriptor mapped to [width] (`encoder.token_for_width`, the fixed projection):
         * width >= 128: the token zero-padded, times float32(sqrt(width / 128)), exact as in Python;
         * width < 128: element i = sum over features j with j mod width == i of float32(1 / sqrt(count_i)) * t_j,
         * summed in float64 and rounded once (Python sums float32 products in BLAS order: equal within 1e-6).
         */
        fun project(
            token: FloatArray,
            width: Int,
        ): FloatArray {
            if (width < 1) throw SubjectException("text width must be positive, got $width")
            require(token.size == DESCRIPTOR_DIM) { "a descriptor has $DESCRIPTOR_DIM features, got ${token.size}" }
            if (width >= DESCRIPTOR_DIM) {
                val scale = sqrt(width.toDouble() / DESCRIPTOR_DIM).toFloat()
                return FloatArray(width) { i -> if (i < DESCRIPTOR_DIM) scale * token[i] else 0f }
            }
            return FloatArray(width) { i ->
                val count = (i until DESCRIPTOR_DIM step width).count()
                val coefficient = (1.0 / sqrt(count.toDouble())).toFloat().toDouble()
                var sum = 0.0
                for (j in i until DESCRIPTOR_DIM step width) sum += coefficient * token[j]
                sum.toFloat()
            }
        }
    }
}

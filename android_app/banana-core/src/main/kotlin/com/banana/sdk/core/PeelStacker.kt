package com.banana.sdk.core

/** A runtime peel and the strength it is applied with (1 = as trained, 0 = off, negative = subtract). */
class WeightedPeel(
    val peel: RuntimePeel,
    val weight: Float, // scales B; any finite value (float32, like numpy's weak-scalar multiply)
)

/** The inputs of one `denoise_r{bucket}` call: every attached peel stacked along the rank axis, zero-padded. */
class StackedPeels(
    val bucket: Int, // R: the rank bucket (signature denoise_r{R})
    val loraA: FloatArray, // [R * sum(in_i)]: per slot, the peels' A_i rows stacked, then zero rows, (R, in_i) row-major
    val loraB: FloatArray, // [R * sum(out_i)]: per slot, the peels' B_i * weight columns stacked, then zeros, (out_i, R)
)

/**
 * Stacks weighted runtime peels into a rank bucket, exactly as `banana_sdk.peels.device.stack_runtime`: the total
 * rank picks the smallest bucket that holds it; for each layout slot a peel covers (every slot, or those its
 * `slots` metadata names), peel k's A rows go to rows [offset_k, offset_k + r_k) of the slot's (R, in) block and
 * its B columns, times its weight in float32, to the same columns of the (out, R) block; everything else is zero
 * (slots a sparse peel does not cover included). Bit for bit the Python result (copies and one float32 product
 * per value).
 */
object PeelStacker {
    /** [peels] stacked for [layout]; no peels gives zeros at the smallest bucket. [PeelException] if they do not fit. */
    fun stack(
        peels: List<WeightedPeel>,
        layout: PeelLayout,
    ): StackedPeels {
        val (bucket, covered) = fit(peels, layout)
        val (sizeA, sizeB) = layout.flatSizes(bucket)
        val a = FloatArray(sizeA.toInt())
        val b = FloatArray(sizeB.toInt())
        val readA = IntArray(peels.size) // where peel k's next A_i starts in its own lora_a
        val readB = IntArray(peels.size)
        var baseA = 0 // where this slot's (R, in) block starts in the output
        var baseB = 0
        for ((i, slot) in layout.slots.withIndex()) {
            val inF = slot.inFeatures
            val outF = slot.outFeatures
            var offset = 0 // first rank row/column of peel k inside the bucket
            for ((k, wp) in peels.withIndex()) {
                val r = wp.peel.rank
                if (covered[k][i]) {
                    // A_i (r, in) -> rows offset..offset+r of the (R, in) block: one contiguous copy
                    System.arraycopy(wp.peel.loraA, readA[k], a, baseA + offset * inF, r * inF)
                    // B_i (out, r) * weight -> columns offset..offset+r of the (out, R) block
                    val src = wp.peel.loraB
                    for (o in 0 until outF) {
                        val from = readB[k] + o * r
                        val to = baseB + o * bucket + offset
                        for (j in 0 until r) b[to + j] = src[from + j] * wp.weight
                    }
                    readA[k] += r * inF
                    readB[k] += r * outF
                }
                offset += r
            }
            baseA += bucket * inF
            baseB += bucket * outF
        }
        return StackedPeels(bucket, a, b)
    }

    /**
     * The bucket [peels] stack into, after checking what [stack] needs (cheap: no arrays): finite weights, a total
     * rank some bucket holds, slot names [layout] has, and each peel's tensors sized for its covered slots at its rank.
     */
    fun checkFits(
        peels: List<WeightedPeel>,
        layout: PeelLayout,
    ): Int = fit(peels, layout).first

    /** (bucket, per peel which layout slots it covers by index), after the checks [checkFits] documents. */
    private fun fit(
        peels: List<WeightedPeel>,
        layout: PeelLayout,
    ): Pair<Int, List<BooleanArray>> {
        for (wp in peels) {
            if (!wp.weight.isFinite()) throw PeelException("peel '${wp.peel.name}' weight must be a finite number, got ${wp.weight}")
        }
        val bucket = if (peels.isEmpty()) layout.buckets.min() else layout.bucketFor(peels.sumOf { it.peel.rank })
        val covered = peels.map { covered(it.peel, layout) }
        for ((k, wp) in peels.withIndex()) {
            var totalIn = 0L
            var totalOut = 0L
            for ((i, slot) in layout.slots.withIndex()) {
                if (covered[k][i]) {
                    totalIn += slot.inFeatures
                    totalOut += slot.outFeatures
                }
            }
            val peel = wp.peel
            val sizeA = peel.rank * totalIn
            val sizeB = peel.rank * totalOut
            if (peel.loraA.size.toLong() != sizeA || peel.loraB.size.toLong() != sizeB) {
                throw PeelException("runtime peel '${peel.name}' does not match this bundle's layout")
            }
        }
        return bucket to covered
    }

    /**
     * Which of [layout]'s slots [peel] covers, by slot index (`_covered` in device.py): every slot without `slots`
     * metadata, else the named ones; [PeelException] naming (up to three) names the layout does not have.
     */
    fun covered(
        peel: RuntimePeel,
        layout: PeelLayout,
    ): BooleanArray {
        val names = peel.slots ?: return BooleanArray(layout.slots.size) { true }
        val known = layout.slots.mapTo(HashSet()) { it.name }
        val unknown = names.filter { it !in known }
        if (unknown.isNotEmpty()) {
            val list = unknown.take(3).joinToString(", ", "[", "]") { "'$it'" } // as Python prints a list of names
            throw PeelException("runtime peel '${peel.name}' adapts layers this bundle does not have: $list")
        }
        val wanted = names.toHashSet()
        return BooleanArray(layout.slots.size) { layout.slots[it].name in wanted }
    }

    /**
     * Refuses a peel made for other base weights, naming the base it needs (`banana_sdk.peels.io.check_base`);
     * [baseHash] is the bundle's `model.weights_sha256` ("" when the bundle records none), [what] names the bundle.
     */
    fun checkBase(
        peel: RuntimePeel,
        baseHash: String,
        what: String,
    ) {
        if (peel.baseHash != baseHash) {
            throw PeelException(
                "peel '${peel.name}' was made for base '${peel.baseModel}' (${peel.baseHash.take(12)}...), " +
                    "not for $what (${baseHash.take(12)}...)",
            )
        }
    }
}

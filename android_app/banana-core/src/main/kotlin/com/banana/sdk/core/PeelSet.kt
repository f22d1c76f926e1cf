package com.banana.sdk.core

/** Which denoise signature runs and the peel inputs it takes (`lora_a`, `lora_b`). */
class PeelBinding(
    val signature: String, // denoise_r{bucket}
    val stacked: StackedPeels, // the bucket and its two flat input tensors
) {
    /** The signature's extra inputs: `lora_a` [N_a(R)] and `lora_b` [N_b(R)] float32. */
    val inputs: Map<String, Tensor>
        get() =
            mapOf(
                LORA_A to Tensor.F32(intArrayOf(stacked.loraA.size), stacked.loraA),
                LORA_B to Tensor.F32(intArrayOf(stacked.loraB.size), stacked.loraB),
            )

    companion object {
        const val LORA_A = "lora_a"
        const val LORA_B = "lora_b"
    }
}

/**
 * The runtime peels attached to one model. Attaching checks everything a generation would need, so a peel that
 * does not fit is refused at once and leaves the set unchanged: the bundle must have runtime-peel signatures,
 * the peel's base hash must be the bundle's `model.weights_sha256`, the layers a sparse peel names must be the
 * layout's, and the total rank must fit a bucket whose `denoise_r{R}` signature takes `lora_a` / `lora_b` of the
 * layout's sizes.
 */
class PeelSet(
    private val manifest: BundleManifest,
) {
    private val attached = LinkedHashMap<String, WeightedPeel>()
    private var cached: PeelBinding? = null

    /** The attached peels, in attach order (their order along the rank axis). */
    val peels: List<WeightedPeel> get() = attached.values.toList()

    /** Attaches [peel] with [weight] (replacing an attached peel of the same name, e.g. to change its weight). */
    fun attach(
        peel: RuntimePeel,
        weight: Float = 1f,
    ) = replace(LinkedHashMap(attached).apply { put(peel.name, WeightedPeel(peel, weight)) })

    /**
     * Replaces every attached peel by [peels] (peel, weight), checked as [attach] checks one, all before anything
     * changes (`LiteRTPipeline.set_peels`): a peel that does not fit, or the same name given twice
     * ([ConfigException]), leaves the set as it was. An empty list detaches everything (plain `denoise` again).
     */
    fun set(peels: List<WeightedPeel>) {
        val names = peels.map { it.peel.name }
        if (names.toSet().size != names.size) {
            throw ConfigException("the same peel is given twice ($names); give each peel once with its weight")
        }
        replace(LinkedHashMap<String, WeightedPeel>().apply { for (wp in peels) put(wp.peel.name, wp) })
    }

    /**
     * Makes [next] the attached peels once every one is checked (the bundle's base, a bucket the total rank fits, its
     * signature's inputs); an empty map detaches everything.
     */
    private fun replace(next: LinkedHashMap<String, WeightedPeel>) {
        if (next.isNotEmpty()) {
            val layout = PeelLayout.fromManifest(manifest)
            for (wp in next.values) PeelStacker.checkBase(wp.peel, manifest.weightsSha256 ?: "", "bundle ${manifest.modelName}")
            checkSignature(layout, PeelStacker.checkFits(next.values.toList(), layout))
        }
        attached.clear()
        attached.putAll(next)
        cached = null
    }

    /** Detaches the peel called [name]; false if none is attached under that name. */
    fun detach(name: String): Boolean = (attached.remove(name) != null).also { if (it) cached = null }

    /** The peel signature and its stacked inputs, or null when no peel is attached (plain `denoise`). */
    fun binding(): PeelBinding? {
        if (attached.isEmpty()) return null
        cached?.let { return it }
        val layout = PeelLayout.fromManifest(manifest)
        val stacked = PeelStacker.stack(attached.values.toList(), layout)
        return PeelBinding(layout.signature(stacked.bucket), stacked).also { cached = it }
    }

    private fun checkSignature(
        layout: PeelLayout,
        bucket: Int,
    ) {
        val name = layout.signature(bucket)
        val (sizeA, sizeB) = layout.flatSizes(bucket)
        val sig = manifest.signatures[name]
        val ok =
            sig != null &&
                sig.input(PeelBinding.LORA_A) == TensorSpec(PeelBinding.LORA_A, listOf(sizeA.toInt()), DType.FLOAT32) &&
                sig.input(PeelBinding.LORA_B) == TensorSpec(PeelBinding.LORA_B, listOf(sizeB.toInt()), DType.FLOAT32)
        if (!ok) {
            throw PeelException(
                "this bundle's peels section lists bucket $bucket but it has no signature '$name' taking " +
                    "lora_a [$sizeA] and lora_b [$sizeB] float32; convert it again with --peel-buckets",
            )
        }
    }
}

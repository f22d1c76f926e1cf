package com.banana.sdk.core

import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonFields
import com.banana.sdk.core.json.JsonObject

/** One runtime-adaptable linear of the denoiser (`banana_sdk.peels.runtime.LayerSlot`). */
data class LayerSlot(
    val name: String, // module name, e.g. "denoiser.blocks.0.attn.k"
    val inFeatures: Int, // columns of A (input features of the linear)
    val outFeatures: Int, // rows of B (output features of the linear)
)

/**
 * A bundle's runtime-peel layout: the rank buckets it has `denoise_r{R}` signatures for and the ordered slots
 * their flat `lora_a` / `lora_b` inputs cover (docs/DESIGN.md §7; read as `banana_sdk.peels.device.layout_from_manifest`
 * reads the manifest's `peels` section `{"buckets": [4, 8, 16], "layout": [{"name", "in", "out"}, ...]}`).
 */
class PeelLayout(
    val buckets: List<Int>, // ranks R with a denoise_r{R} signature, each >= 1
    val slots: List<LayerSlot>, // the bundle's targets (manifest peels.targets) of every block, in input layout order
) {
    /** Sum of in_i over the slots: `lora_a` has rank times this many values. */
    val totalIn: Long = slots.sumOf { it.inFeatures.toLong() }

    /** Sum of out_i over the slots: `lora_b` has rank times this many values. */
    val totalOut: Long = slots.sumOf { it.outFeatures.toLong() }

    /** (len(lora_a), len(lora_b)) of bucket [rank]: rank * sum(in_i), rank * sum(out_i). */
    fun flatSizes(rank: Int): Pair<Long, Long> = rank * totalIn to rank * totalOut

    /** The smallest bucket that holds [rank] (`bucket_for`); [PeelException] if none does. */
    fun bucketFor(rank: Int): Int =
        buckets.sorted().firstOrNull { rank <= it }
            ?: throw PeelException("total peel rank $rank is larger than any runtime bucket ${buckets.sorted()}")

    /** The denoise signature that takes bucket [rank]'s `lora_a` / `lora_b` inputs. */
    fun signature(rank: Int): String = "$SIGNATURE_PREFIX$rank"

    companion object {
        const val SECTION = "peels"
        const val SIGNATURE_PREFIX = "denoise_r"

        /** The layout [manifest] declares; [PeelException] if the bundle has none or it is malformed. */
        fun fromManifest(manifest: BundleManifest): PeelLayout {
            val section = manifest.raw[SECTION] as? JsonObject
            val buckets = section?.get("buckets")
            if (section == null || buckets == null || buckets == JsonArray(emptyList())) {
                throw PeelException("this bundle has no runtime-peel signatures; convert it with --peel-buckets 4,8,16")
            }
            return parse(section)
        }

        /** Parses a `peels` section (path-named messages), checking every size is positive and fits in memory. */
        fun parse(section: JsonObject): PeelLayout {
            val fail: (String) -> Nothing = { throw PeelException("manifest.json: $it") }
            val doc = JsonFields(section, SECTION, fail)
            val buckets = doc.ints("buckets")
            if (buckets.isEmpty() || buckets.any { it < 1 }) fail("${doc.child("buckets")} must be positive ranks, got $buckets")
            val slots =
                doc.objects("layout").map { s ->
                    val slot = LayerSlot(s.string("name"), s.int("in"), s.int("out"))
                    if (slot.inFeatures < 1 || slot.outFeatures < 1) fail("${s.path} in and out must be positive, got $slot")
                    slot
                }
            if (slots.isEmpty()) fail("${doc.child("layout")} lists no layers")
            val layout = PeelLayout(buckets, slots)
            val (a, b) = layout.flatSizes(buckets.max())
            if (maxOf(a, b) > Int.MAX_VALUE) fail("the rank-${buckets.max()} peel inputs are too large ($a, $b values)")
            return layout
        }
    }
}

package com.banana.sdk.core

import com.banana.sdk.core.json.JsonFields
import com.banana.sdk.core.json.JsonObject

/**
 * The manifest's `upscale` section (docs/DESIGN.md §5.2, written by `converters.tiles.upscale_manifest`): how a
 * bundle with the `upscale_tile` signature tiles and blends to reach sizes above its base.
 */
data class UpscaleSpec(
    val signature: String, // "upscale_tile": image [1, T, T, 3] -> upscaled [1, sT, sT, 3]
    val scale: Int, // s: output pixels per input pixel along one side
    val tiles: TileConfig, // tile T, overlap, margin (validated, against the upscaler's receptive radius when given)
    val baseSize: Int, // the side the bundle generates and decodes at
    val sizes: List<Int>, // the output sides the converter says the chain reaches
) {
    companion object {
        const val SECTION = "upscale"
        const val SIGNATURE = "upscale_tile"

        /**
         * The section of [manifest], checked against its `upscale_tile` signature; [UpscaleException] when the bundle
         * cannot upscale (`converters.tiles.bundle_tiles`) or the section is malformed.
         */
        fun fromManifest(manifest: BundleManifest): UpscaleSpec {
            val section = manifest.raw[SECTION] as? JsonObject
            val sig = manifest.signatures[SIGNATURE]
            if (section == null || sig == null) {
                throw UpscaleException(
                    "this bundle has no $SIGNATURE signature, so it cannot upscale; convert it again with the upscaler " +
                        "(tile signatures) to generate above its base size (${manifest.image.size} px)",
                )
            }
            val spec = parse(section)
            val t = spec.tiles.tile
            val st = spec.scale * t
            if (sig.input("image") != TensorSpec("image", listOf(1, t, t, 3), DType.FLOAT32) ||
                sig.output("upscaled") != TensorSpec("upscaled", listOf(1, st, st, 3), DType.FLOAT32)
            ) {
                throw UpscaleException(
                    "manifest.json: signatures.$SIGNATURE must map image [1, $t, $t, 3] to upscaled [1, $st, $st, 3] float32",
                )
            }
            return spec
        }

        /** Parses an `upscale` section; unknown keys are ignored, `stride` (derived) must agree when present. */
        fun parse(section: JsonObject): UpscaleSpec {
            val fail: (String) -> Nothing = { throw UpscaleException("manifest.json: $it") }
            val doc = JsonFields(section, SECTION, fail)
            val tiles = TileConfig(doc.int("tile"), doc.int("overlap"), doc.int("margin"))
            val depth = doc.optionalObj("upscaler")?.optionalObj("config")?.optionalInt("depth")
            tiles.validate(depth?.let { maxOf(it, 1) })
            doc.optionalInt("stride")?.let {
                if (it !=
                    tiles.stride
                ) {
                    fail("${doc.child("stride")} $it is not tile - overlap ${tiles.stride}")
                }
            }
            val scale = doc.int("scale")
            if (scale !in listOf(2, 4)) fail("${doc.child("scale")} must be 2 or 4, got $scale")
            val spec =
                UpscaleSpec(
                    doc.optionalString("signature") ?: SIGNATURE,
                    scale,
                    tiles,
                    doc.int("base_size"),
                    doc.optionalArray("sizes")?.let { doc.ints("sizes") }.orEmpty(),
                )
            if (spec.signature != SIGNATURE) fail("${doc.child("signature")} '${spec.signature}' is not '$SIGNATURE'")
            return spec
        }
    }
}

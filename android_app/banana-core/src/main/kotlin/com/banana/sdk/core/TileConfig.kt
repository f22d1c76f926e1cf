package com.banana.sdk.core

/**
 * The tiling of one upscaling pass (`banana_sdk.upscale.config.TileConfig`), all sizes in input pixels:
 * tiles of a fixed side (the `upscale_tile` signature's input), neighbours sharing [overlap] pixels, and a
 * [margin] at inner tile edges that the blend ignores (the upscaler's receptive radius), so every blended
 * pixel equals what an untiled pass computes.
 */
data class TileConfig(
    val tile: Int = 80, // input side of one tile (the tile signature's fixed input shape)
    val overlap: Int = 16, // input pixels shared by neighbouring tiles (even)
    val margin: Int = 4, // input pixels at an inner tile edge that get zero blend weight (>= receptive radius)
) {
    /** Distance between tile cores; image sides must be multiples of it. */
    val stride: Int get() = tile - overlap

    /** This config, or [UpscaleException] naming the bad field; [receptiveRadius] of the upscaler when known. */
    fun validate(receptiveRadius: Int? = null): TileConfig {
        if (overlap % 2 != 0 || overlap < 2 || tile <= overlap) {
            throw UpscaleException("tile overlap must be even, >= 2 and < tile, got tile $tile, overlap $overlap")
        }
        if (margin !in 0 until overlap / 2) {
            throw UpscaleException("tile margin must be in [0, overlap / 2), got $margin for overlap $overlap: widen the overlap")
        }
        if (receptiveRadius != null && margin < receptiveRadius) {
            throw UpscaleException(
                "tile margin $margin is below the upscaler's receptive radius $receptiveRadius: tiles would not match an untiled pass",
            )
        }
        return this
    }

    /** [UpscaleException] unless [side] can be tiled: a multiple of the stride and at least one tile. */
    fun checkSide(
        side: Int,
        what: String = "image",
    ) {
        if (stride < 1) validate()
        if (side < tile || side % stride != 0) {
            val first = -Math.floorDiv(-tile, stride) * stride
            throw UpscaleException(
                "$what side $side must be a multiple of the tile stride $stride and at least one tile ($tile px): " +
                    "$first, ${first + stride}, ...",
            )
        }
    }

    companion object {
        /** The tiles for a model of [baseSize] pixels (`default_tiles`): stride 64 (tile 80) when it fits, else 32. */
        fun forBase(baseSize: Int): TileConfig =
            listOf(TileConfig(80, 16, 4), TileConfig(48, 16, 4)).firstOrNull { baseSize >= it.tile && baseSize % it.stride == 0 }
                ?: throw UpscaleException("no tile config fits a $baseSize px base image (need a multiple of 32, >= 48)")
    }
}

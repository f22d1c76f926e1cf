package com.banana.sdk.core

import kotlin.math.floor

/** An 8-bit RGB image, rows top to bottom, 3 bytes per pixel. */
class RgbImage(
    val width: Int,
    val height: Int,
    val rgb: ByteArray, // (height * width * 3) interleaved R, G, B
) {
    init {
        require(width > 0 && height > 0 && rgb.size == width * height * 3) { "rgb must hold width * height * 3 bytes" }
    }

    /** Channel [c] of pixel (x, y) as 0..255. */
    fun channel(
        x: Int,
        y: Int,
        c: Int,
    ): Int = rgb[(y * width + x) * 3 + c].toInt() and 0xFF

    /** Packed 0xAARRGGBB pixels (opaque), the layout of an Android ARGB_8888 bitmap. */
    fun toArgb(): IntArray =
        IntArray(width * height) { p ->
            val r = rgb[3 * p].toInt() and 0xFF
            val g = rgb[3 * p + 1].toInt() and 0xFF
            val b = rgb[3 * p + 2].toInt() and 0xFF
            (0xFF shl 24) or (r shl 16) or (g shl 8) or b
        }
}

/** Decoder output -> 8-bit RGB, exactly as `banana_sdk/imageio.py` (docs/DESIGN.md §4). */
object ImageConversion {
    /** clamp(floor((x + 1) * 127.5 + 0.5), 0, 255) in float32; NaN maps to 0. */
    fun toByte(x: Float): Int {
        val scaled = floor((x + 1f) * 127.5f + 0.5f)
        return when {
            scaled.isNaN() -> 0
            scaled <= 0f -> 0
            scaled >= 255f -> 255
            else -> scaled.toInt()
        }
    }

    /** The `image` output (1, H, W, 3) float NHWC in about [-1, 1] -> RGB. */
    fun toRgb(
        nhwc: FloatArray,
        height: Int,
        width: Int,
    ): RgbImage {
        require(nhwc.size == height * width * 3) { "decoder output has ${nhwc.size} values, expected ${height * width * 3}" }
        return RgbImage(width, height, ByteArray(nhwc.size) { i -> toByte(nhwc[i]).toByte() })
    }
}

package com.banana.sdk.core

import kotlin.math.max
import kotlin.math.min

/** One tile window along one axis: where its output starts and its normalised blend weights. */
class AxisWindow(
    val outStart: Int, // first output pixel of the window (input start * scale)
    val weights: FloatArray, // tile * scale float32 weights; summed over all windows they are 1 at every output pixel
)

/**
 * The tile grid and separable blend of one upscaling pass (`banana_sdk.upscale.tiling` is normative; docs/DESIGN.md
 * §5.2). Along an axis of `side` input pixels, window k starts at clamp(k * stride - overlap / 2, 0, side - tile)
 * (duplicates dropped). At output position x of a window (input coordinate u = (x + 0.5) / scale) the weight is 1,
 * times clamp((u - margin) / (overlap - 2 margin), 0, 1) if the window has an inner left edge, times
 * clamp((tile - margin - u) / (overlap - 2 margin), 0, 1) if it has an inner right edge; then divided by the sum of
 * all windows' weights there. Computed in float64 and rounded once, so the weights equal Python's bit for bit.
 */
object Tiling {
    /** Window starts along one axis of [side] input pixels (the side is checked first). */
    fun tileStarts(
        side: Int,
        cfg: TileConfig,
    ): List<Int> {
        cfg.checkSide(side)
        val half = cfg.overlap / 2
        return (0 until side / cfg.stride).map { k -> min(max(k * cfg.stride - half, 0), side - cfg.tile) }.distinct()
    }

    /** How many tiles a [height] x [width] image takes. */
    fun tileCount(
        height: Int,
        width: Int,
        cfg: TileConfig,
    ): Int = tileStarts(height, cfg).size * tileStarts(width, cfg).size

    /** Per window along one axis: its output start and normalised weights (`axis_weights`). */
    fun axisWeights(
        side: Int,
        cfg: TileConfig,
        scale: Int,
    ): List<AxisWindow> {
        val starts = tileStarts(side, cfg)
        val n = cfg.tile * scale
        val ramp = (cfg.overlap - 2 * cfg.margin).toDouble()
        val raw =
            starts.map { start ->
                DoubleArray(n) { x ->
                    val u = (x + 0.5) / scale
                    var w = 1.0
                    if (start > 0) w *= ((u - cfg.margin) / ramp).coerceIn(0.0, 1.0)
                    if (start + cfg.tile < side) w *= ((cfg.tile - cfg.margin - u) / ramp).coerceIn(0.0, 1.0)
                    w
                }
            }
        val total = DoubleArray(side * scale)
        for ((start, w) in starts.zip(raw)) for (x in 0 until n) total[start * scale + x] += w[x]
        if (total.min() <= 0.0) throw UpscaleException("tile config $cfg leaves output pixels without weight at side $side")
        return starts.zip(raw).map { (start, w) ->
            AxisWindow(start * scale, FloatArray(n) { x -> (w[x] / total[start * scale + x]).toFloat() })
        }
    }

    /**
     * One tiled pass (`tiled_apply`): (H, W, 3) float32 [image] -> (scale H, scale W, 3), running [tileFn] on every
     * (1, tile, tile, 3) window and adding its (1, scale tile, scale tile, 3) output times w_row[y] * w_col[x]
     * (float32, in Python's order). Memory: one input tile, one output tile and the output.
     */
    fun tiledApply(
        image: FloatArray,
        height: Int,
        width: Int,
        cfg: TileConfig,
        scale: Int,
        tileFn: (FloatArray) -> FloatArray,
    ): FloatArray {
        if (image.size != height * width * 3) {
            throw UpscaleException("expected an ($height, $width, 3) image, got ${image.size} values")
        }
        val rows = axisWeights(height, cfg, scale)
        val cols = axisWeights(width, cfg, scale)
        val t = cfg.tile
        val outTile = t * scale
        val outWidth = width * scale
        val out = FloatArray(height * scale * outWidth * 3)
        val tile = FloatArray(t * t * 3)
        for (row in rows) {
            val y = row.outStart / scale
            for (col in cols) {
                val x = col.outStart / scale
                for (i in 0 until t) System.arraycopy(image, ((y + i) * width + x) * 3, tile, i * t * 3, t * 3)
                val result = tileFn(tile)
                if (result.size != outTile * outTile * 3) {
                    throw UpscaleException("tile function returned ${result.size} values, expected (1, $outTile, $outTile, 3)")
                }
                for (i in 0 until outTile) {
                    val wy = row.weights[i]
                    val base = ((row.outStart + i) * outWidth + col.outStart) * 3
                    for (j in 0 until outTile) {
                        val w = wy * col.weights[j]
                        val o = base + j * 3
                        val r = (i * outTile + j) * 3
                        out[o] += result[r] * w
                        out[o + 1] += result[r + 1] * w
                        out[o + 2] += result[r + 2] * w
                    }
                }
            }
        }
        return out
    }
}

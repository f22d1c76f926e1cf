package com.banana.sdk.core

/** What one upscaling pass does. */
enum class StepKind(
    val id: String,
) {
    UP("up"), // one tiled pass: x scale
    UP_HALF("up_half"), // one tiled pass, then a 2x2 box mean: x scale / 2 (a supersampled 2x)
}

/** One pass of the chain from the base image to the requested size. */
data class ChainStep(
    val kind: StepKind,
    val inSize: Int, // input side in pixels
    val outSize: Int, // output side after the pass
)

/**
 * From the base image to up to 4096 px (`banana_sdk.upscale.chain` is normative; docs/DESIGN.md §5.2): from base B
 * to N = B * 2^k, an odd k first takes one pass followed by a 2x2 box mean (a supersampled 2x), then k / 2 plain
 * 4x passes (128 -> 256 -> 1024 -> 4096). Every pass input must be tileable ([TileConfig.checkSide]).
 */
object UpscaleChain {
    /** The largest output side (the product's 4K). */
    const val MAX_SIZE = 4096

    /** The passes from a [base] px image to [target] px; empty when they are equal; [UpscaleException] lists the sizes. */
    fun plan(
        base: Int,
        target: Int,
        tiles: TileConfig,
        scale: Int = 4,
    ): List<ChainStep> {
        if (target == base) return emptyList()
        return tryPlan(base, target, tiles, scale).getOrElse { problem ->
            throw UpscaleException(
                "size $target ${problem.message}; from a $base px image choose one of ${reachableSizes(base, tiles, scale)}",
            )
        }
    }

    /** Output sides the chain reaches from [base] with these tiles (up to [MAX_SIZE]). */
    fun reachableSizes(
        base: Int,
        tiles: TileConfig,
        scale: Int = 4,
    ): List<Int> =
        (1..12)
            .map { base.toLong() shl it }
            .filter { it <= MAX_SIZE }
            .map { it.toInt() }
            .filter { tryPlan(base, it, tiles, scale).isSuccess }

    private fun tryPlan(
        base: Int,
        target: Int,
        tiles: TileConfig,
        scale: Int,
    ): Result<List<ChainStep>> {
        if (target > MAX_SIZE || target < base) return Result.failure(Problem("must be between the base $base and $MAX_SIZE"))
        val steps = stepSizes(base, target, scale) ?: return Result.failure(Problem("is not the base size times a power of two"))
        for (step in steps) {
            try {
                tiles.checkSide(step.inSize, "an upscaling pass's input")
            } catch (e: UpscaleException) {
                return Result.failure(Problem("needs ${e.message}"))
            }
        }
        return Result.success(steps)
    }

    private class Problem(
        message: String,
    ) : Exception(message)

    /** The passes from [base] to [target] = base * 2^k, or null if [target] is not that. */
    private fun stepSizes(
        base: Int,
        target: Int,
        scale: Int,
    ): List<ChainStep>? {
        if (base <= 0 || target % base != 0) return null
        val ratio = target / base
        if (ratio and (ratio - 1) != 0) return null
        var k = Integer.numberOfTrailingZeros(ratio)
        val per = 31 - Integer.numberOfLeadingZeros(scale) // doublings per pass: 2 for a 4x upscaler
        val steps = ArrayList<ChainStep>()
        var size = base
        if (k % per != 0) {
            steps += ChainStep(StepKind.UP_HALF, size, size * scale / 2)
            size = size * scale / 2
            k -= 1
        }
        repeat(k / per) {
            steps += ChainStep(StepKind.UP, size, size * scale)
            size *= scale
        }
        return steps
    }

    /** (H, W, 3) -> (H/2, W/2, 3): the mean of each 2x2 block, float32. */
    fun boxDown2(
        image: FloatArray,
        height: Int,
        width: Int,
    ): FloatArray {
        val h = height / 2
        val w = width / 2
        return FloatArray(h * w * 3) { i ->
            val c = i % 3
            val x = (i / 3) % w
            val y = i / 3 / w

            fun at(
                yy: Int,
                xx: Int,
            ) = image[(yy * width + xx) * 3 + c]
            (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1)) / 4f
        }
    }

    /**
     * (S, S, 3) float32 [image] in [-1, 1] -> (target, target, 3) through the planned passes (`upscale_image`);
     * [tileFn] runs the `upscale_tile` signature, [onPass] hears each finished pass (1-based; inlined, so a
     * suspending caller may emit progress from it).
     */
    inline fun upscale(
        image: FloatArray,
        side: Int,
        target: Int,
        tiles: TileConfig,
        scale: Int,
        noinline tileFn: (FloatArray) -> FloatArray,
        onPass: (Int, Int) -> Unit = { _, _ -> },
    ): FloatArray {
        val steps = plan(side, target, tiles, scale)
        var x = image
        var size = side
        for ((n, step) in steps.withIndex()) {
            x = Tiling.tiledApply(x, size, size, tiles, scale, tileFn)
            size *= scale
            if (step.kind == StepKind.UP_HALF) {
                x = boxDown2(x, size, size)
                size /= 2
            }
            onPass(n + 1, steps.size)
        }
        return x
    }
}

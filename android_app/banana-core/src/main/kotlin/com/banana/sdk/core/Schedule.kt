package com.banana.sdk.core

/**
 * Noise-schedule math, mirroring `banana_sdk/sampling/schedule.py` line for line.
 *
 * Rectified flow with velocity prediction: x_t = (1 - t) x0 + t eps, v = eps - x0, x0 = x_t - t v,
 * t in [0, 1] (1 = pure noise). Times are float64; latent arithmetic is float32 with the scalar
 * rounded to float32 first, exactly as numpy does for `python_float * float32_array`.
 */
object Schedule {
    const val MIN_STEPS = 1 // fewest denoising steps any sampler accepts
    const val MAX_STEPS = 100 // most denoising steps any sampler accepts

    /** Resolution shift t' = s t / (1 + (s - 1) t); s > 1 spends more steps at high noise. */
    fun shiftTime(
        t: Double,
        shift: Double,
    ): Double = shift * t / (1.0 + (shift - 1.0) * t)

    /** (steps + 1) times from 1 (noise) down to 0 (clean), evenly spaced then shifted. */
    fun timeGrid(
        steps: Int,
        shift: Double = 1.0,
    ): DoubleArray {
        if (steps !in MIN_STEPS..MAX_STEPS) throw ConfigException("steps must be in [$MIN_STEPS, $MAX_STEPS], got $steps")
        return DoubleArray(steps + 1) { i -> shiftTime(1.0 - i.toDouble() / steps, shift) }
    }

    /** x_t = (1 - t) x0 + t eps, elementwise in float32. */
    fun addNoise(
        x0: FloatArray,
        eps: FloatArray,
        t: Double,
    ): FloatArray {
        val a = (1.0 - t).toFloat()
        val b = t.toFloat()
        return FloatArray(x0.size) { i -> a * x0[i] + b * eps[i] }
    }

    /** x0 = x_t - t v, elementwise in float32. */
    fun predictX0(
        xt: FloatArray,
        v: FloatArray,
        t: Double,
    ): FloatArray {
        val b = t.toFloat()
        return FloatArray(xt.size) { i -> xt[i] - b * v[i] }
    }
}

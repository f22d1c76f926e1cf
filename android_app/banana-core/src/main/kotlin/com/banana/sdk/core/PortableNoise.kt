package com.banana.sdk.core

import kotlin.math.PI
import kotlin.math.cos
import kotlin.math.ln
import kotlin.math.sin
import kotlin.math.sqrt

/**
 * Portable Gaussian noise, mirroring `banana_sdk/sampling/noise.py`: the same (seed, stream)
 * gives the same latents on every runtime.
 *
 * SplitMix64 hashes key = mix(seed * golden + stream) and counters k = 1..2n into 53-bit uniforms
 * u = ((bits >>> 11) + 0.5) * 2^-53; Box-Muller pairs (cos, sin) in float64, then float32. The
 * integer part is exact; the transcendental part may differ from numpy by an ulp of float64,
 * which the float32 cast almost always hides (golden tolerance 1e-6).
 */
object PortableNoise {
    private const val GOLDEN = -0x61c8864680b583ebL // 0x9E3779B97F4A7C15
    private const val M1 = -0x40a7b892e31b1a47L // 0xBF58476D1CE4E5B9
    private const val M2 = -0x6b2fb644ecceee15L // 0x94D049BB133111EB
    private const val TWO_POW_MINUS_53 = 1.0 / (1L shl 53)

    /** SplitMix64 finaliser (wrapping 64-bit arithmetic). */
    fun mix(z: Long): Long {
        var x = z
        x = (x xor (x ushr 30)) * M1
        x = (x xor (x ushr 27)) * M2
        return x xor (x ushr 31)
    }

    /** The per-(seed, stream) key that element counters are hashed with. */
    fun key(
        seed: Long,
        stream: Long,
    ): Long = mix(seed * GOLDEN + stream)

    /** Raw 64-bit hash of element counter [k] (1-based) under [key]. */
    fun bits(
        key: Long,
        k: Long,
    ): Long = mix(key + k * GOLDEN)

    /** [count] standard normals, a pure function of (seed, stream, index). */
    fun gaussian(
        seed: Long,
        stream: Long,
        count: Int,
    ): FloatArray {
        if (seed < 0) throw ConfigException("seed must be an integer in [0, ${Long.MAX_VALUE}], got $seed")
        require(stream >= 0 && count >= 0) { "stream and count must not be negative" }
        val key = key(seed, stream)
        val out = FloatArray(count)
        var pair = 0
        while (2 * pair < count) {
            val u1 = uniform(bits(key, 2L * pair + 1))
            val u2 = uniform(bits(key, 2L * pair + 2))
            val radius = sqrt(-2.0 * ln(u1))
            val angle = (2.0 * PI) * u2
            out[2 * pair] = (radius * cos(angle)).toFloat()
            if (2 * pair + 1 < count) out[2 * pair + 1] = (radius * sin(angle)).toFloat()
            pair++
        }
        return out
    }

    private fun uniform(bits: Long): Double = ((bits ushr 11).toDouble() + 0.5) * TWO_POW_MINUS_53
}

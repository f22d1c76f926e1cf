package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ConfigException
import kotlin.math.floor
import kotlin.math.sqrt

/** What the denoiser outputs (`sampler.schedule.prediction`). */
enum class Prediction(
    val id: String,
) {
    EPSILON("epsilon"), // the noise
    V("v_prediction"), // v = sqrt(a) eps - sqrt(1 - a) x0
    SAMPLE("sample"), // the clean latent x0
    ;

    companion object {
        fun parse(id: String): Prediction? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/** How N inference timesteps are picked from the T training timesteps (diffusers' `timestep_spacing`). */
enum class Spacing(
    val id: String,
) {
    LEADING("leading"), // k_i = (N-1-i) * (T div N) + offset
    TRAILING("trailing"), // k_i = round(T - i T / N) - 1
    LINSPACE("linspace"), // k_i = round(linspace(0, T-1, N)) reversed
    ;

    companion object {
        fun parse(id: String): Spacing? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/**
 * A discrete DDPM schedule as the manifest stores it (`sampler.schedule`, kind "ddpm"), mirroring
 * `banana_sdk/sampling/ddpm.py`: the table was computed on the host by the pipeline's own scheduler class; this
 * only looks values up. Times are float64; latent arithmetic follows numpy's promotion rules exactly (a numpy
 * float64 scalar times a float32 array is float64, a Python float times it is float32), so results are bit-equal.
 */
data class DdpmSchedule(
    val alphasCumprod: List<Double>, // a_k for k = 0..T-1
    val finalAlphaCumprod: Double, // a for the step after timestep 0
    val prediction: Prediction, // what the denoiser predicts
    val spacing: Spacing, // timestep spacing of the teacher sampler
    val stepsOffset: Int, // added to leading timesteps
    val clipSample: Double?, // clamp predicted x0 to [-c, c]; null = no clamp
    val originalInferenceSteps: Int, // LCM: timesteps of the distillation grid
    val timestepScaling: Double, // LCM: boundary-condition scalings use k * this
) : DiffusersSchedule {
    override val kind: ScheduleKind get() = ScheduleKind.DDPM

    private val table = alphasCumprod.toDoubleArray()

    /** T, the number of training timesteps. */
    val numTrainTimesteps: Int get() = table.size

    /** a_k, or the final alpha for k < 0. */
    fun alpha(k: Int): Double = if (k >= 0) table[k] else finalAlphaCumprod

    /** The float the denoiser signature takes for timestep k: k / T. */
    fun modelTime(k: Int): Double = k.toDouble() / numTrainTimesteps

    /** The teacher's N timesteps, strictly decreasing (`spaced_timesteps`). */
    fun spacedTimesteps(steps: Int): IntArray {
        val total = numTrainTimesteps
        if (steps !in 1..total) throw ConfigException("steps must be in [1, $total], got $steps")
        return when (spacing) {
            Spacing.LEADING -> {
                IntArray(steps) { i -> (steps - 1 - i) * (total / steps) + stepsOffset }
            }

            Spacing.TRAILING -> {
                IntArray(steps) { i -> Math.rint(total - (i.toLong() * total).toDouble() / steps).toInt() - 1 }
            }

            Spacing.LINSPACE -> {
                val grid = linspace(0.0, (total - 1).toDouble(), steps)
                IntArray(steps) { i -> Math.rint(grid[steps - 1 - i]).toInt() }
            }
        }
    }

    /** Euler's float timesteps k_i, strictly decreasing (linspace spacing is not rounded: `euler_timesteps`). */
    fun eulerTimesteps(steps: Int): DoubleArray {
        if (spacing != Spacing.LINSPACE) return spacedTimesteps(steps).map { it.toDouble() }.toDoubleArray()
        if (steps !in 1..numTrainTimesteps) throw ConfigException("steps must be in [1, $numTrainTimesteps], got $steps")
        val grid = linspace(0.0, (numTrainTimesteps - 1).toDouble(), steps)
        return DoubleArray(steps) { grid[steps - 1 - it] }
    }

    /** (ks.size + 1) noise levels sigma(k) = sqrt((1 - a) / a), linear between table entries, then 0 (`euler_sigmas`). */
    fun eulerSigmas(ks: DoubleArray): DoubleArray {
        val sigma = DoubleArray(table.size) { sqrt((1.0 - table[it]) / table[it]) }
        return DoubleArray(ks.size + 1) { i -> if (i < ks.size) interp(ks[i], sigma) else 0.0 }
    }

    /**
     * (x0, eps) implied by the model output [out] at timestep k (`split_prediction`): float64 arithmetic, float32
     * results, x0 clamped when [clipSample] is set (`clip_x0`).
     */
    fun splitPrediction(
        x: FloatArray,
        out: FloatArray,
        k: Int,
    ): Pair<FloatArray, FloatArray> {
        val a = alpha(k)
        val sa = sqrt(a)
        val sb = sqrt(1.0 - a)
        val n = x.size
        val x0 = FloatArray(n)
        val eps = FloatArray(n)
        for (i in 0 until n) {
            val xi = x[i].toDouble()
            val oi = out[i].toDouble()
            when (prediction) {
                Prediction.EPSILON -> {
                    x0[i] = ((xi - sb * oi) / sa).toFloat()
                    eps[i] = out[i]
                }

                Prediction.V -> {
                    x0[i] = (sa * xi - sb * oi).toFloat()
                    eps[i] = (sa * oi + sb * xi).toFloat()
                }

                Prediction.SAMPLE -> {
                    x0[i] = out[i]
                    eps[i] = ((xi - sa * oi) / sb).toFloat()
                }
            }
        }
        clipSample?.let { c ->
            val lo = (-c).toFloat()
            val hi = c.toFloat()
            for (i in 0 until n) x0[i] = x0[i].coerceIn(lo, hi)
        }
        return x0 to eps
    }

    companion object {
        /** numpy.linspace(start, stop, num) with the endpoint: i * step + start, the last value exactly [stop]. */
        fun linspace(
            start: Double,
            stop: Double,
            num: Int,
        ): DoubleArray {
            if (num == 1) return doubleArrayOf(start)
            val step = (stop - start) / (num - 1)
            return DoubleArray(num) { i -> if (i == num - 1) stop else i * step + start }
        }

        /** numpy.interp(x, arange(table.size), table) for x in [0, size - 1]. */
        fun interp(
            x: Double,
            table: DoubleArray,
        ): Double {
            val j = floor(x).toInt()
            if (j >= table.size - 1) return table[table.size - 1]
            if (j.toDouble() == x) return table[j]
            val slope = table[j + 1] - table[j]
            return slope * (x - j) + table[j]
        }
    }
}

package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.PortableNoise
import com.banana.sdk.core.StepListener
import kotlin.math.floor
import kotlin.math.sqrt

/**
 * Multistep latent consistency for LCM-distilled DDPM models (`banana_sdk/sampling/lcm_ddpm.py`), 1-8 steps: N
 * timesteps picked from the distillation grid, each step a consistency estimate, re-noised (stream i + 1) unless last.
 */
class LcmDdpmSampler(
    private val schedule: DdpmSchedule,
) : DdpmSampler {
    override val kind = DdpmSamplerKind.LCM_DDPM

    /** The N integer timesteps, noisiest first: origin grid (j + 1) (T div n) - 1 reversed, at floor(i * (n / N)). */
    fun grid(steps: Int): IntArray {
        val n = schedule.originalInferenceSteps
        if (steps > n) throw ConfigException("lcm-ddpm takes at most original_inference_steps=$n steps, got $steps")
        val stride = schedule.numTrainTimesteps / n
        val step = n.toDouble() / steps // numpy.linspace(0, n, steps, endpoint=False)
        return IntArray(steps) { i -> (n - floor(i * step).toInt()) * stride - 1 }
    }

    override fun timesteps(steps: Int): DoubleArray = grid(steps).map { schedule.modelTime(it) }.toDoubleArray()

    /** (c_skip, c_out) of the consistency boundary condition at timestep k (sigma_data = 0.5). */
    fun scalings(k: Int): Pair<Double, Double> {
        val s = k * schedule.timestepScaling
        return SIGMA_DATA_SQ / (s * s + SIGMA_DATA_SQ) to s / sqrt(s * s + SIGMA_DATA_SQ)
    }

    override suspend fun sample(
        model: PredictionFn,
        count: Int,
        steps: Int,
        seed: Long,
        onStep: StepListener?,
    ): FloatArray {
        checkSteps(steps)
        val ks = grid(steps)
        // 1. start from unit noise (stream 0)
        var x = PortableNoise.gaussian(seed, 0, count)
        var denoised = x
        for ((i, k) in ks.withIndex()) {
            // 2. the model's prediction -> clean latent x0
            val x0 = schedule.splitPrediction(x, model(x, schedule.modelTime(k)), k).first
            // 3. consistency boundary condition: c_out x0 in float64 plus c_skip x in float32 (a Python float)
            val (cSkip, cOut) = scalings(k)
            val skip = cSkip.toFloat()
            val xs = x
            denoised = FloatArray(count) { j -> (cOut * x0[j] + (skip * xs[j]).toDouble()).toFloat() }
            // 4. unless last, re-noise the estimate to the next timestep (stream i + 1)
            if (i + 1 < steps) {
                val aNext = schedule.alpha(ks[i + 1])
                val noise = PortableNoise.gaussian(seed, (i + 1).toLong(), count)
                val sa = sqrt(aNext)
                val sb = sqrt(1.0 - aNext)
                val d = denoised
                x = FloatArray(count) { j -> (sa * d[j] + sb * noise[j]).toFloat() }
            }
            onStep?.invoke(i, steps)
        }
        // 5. the last estimate is the sample
        return denoised
    }

    private companion object {
        const val SIGMA_DATA_SQ = 0.25 // consistency-model data scale 0.5, squared
    }
}

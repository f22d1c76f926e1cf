package com.banana.sdk.core.diffusers

import com.banana.sdk.core.PortableNoise
import com.banana.sdk.core.StepListener
import kotlin.math.sqrt

/**
 * Euler samplers on a DDPM schedule (`banana_sdk/sampling/euler_ddpm.py`; diffusers' `EulerDiscreteScheduler` and,
 * with [ancestral], `EulerAncestralDiscreteScheduler`). The state is x = x0 + sigma eps with
 * sigma_k = sqrt((1 - a_k) / a_k); the model sees x / sqrt(sigma^2 + 1) at time k / T. Ancestral steps go to
 * s_down and add s_up times fresh noise (stream i + 1).
 *
 * Precision follows numpy exactly: for epsilon and sample predictions the derivative and the plain Euler step are
 * float32 (sigma is a Python float); v prediction and the ancestral step are float64, then float32.
 */
class EulerDdpmSampler(
    private val schedule: DdpmSchedule,
    val ancestral: Boolean, // fresh portable noise after each step but the last
) : DdpmSampler {
    override val kind = if (ancestral) DdpmSamplerKind.EULER_ANCESTRAL_DDPM else DdpmSamplerKind.EULER_DDPM

    override fun timesteps(steps: Int): DoubleArray = schedule.eulerTimesteps(steps).map { it / schedule.numTrainTimesteps }.toDoubleArray()

    /** (steps + 1) noise levels sigma_i, the last 0. */
    fun sigmas(steps: Int): DoubleArray = schedule.eulerSigmas(schedule.eulerTimesteps(steps))

    /** Scale of the starting noise (diffusers' `init_noise_sigma`): sigma_max, or sqrt(sigma_max^2 + 1) for leading. */
    fun initialSigma(sigmas: DoubleArray): Double {
        val top = sigmas.max()
        return if (schedule.spacing != Spacing.LEADING) top else sqrt(top * top + 1.0)
    }

    override suspend fun sample(
        model: PredictionFn,
        count: Int,
        steps: Int,
        seed: Long,
        onStep: StepListener?,
    ): FloatArray {
        checkSteps(steps)
        val ks = schedule.eulerTimesteps(steps)
        val sigmas = schedule.eulerSigmas(ks)
        // 1. start from unit noise (stream 0) scaled to the first noise level (float32: a Python float)
        val s0 = initialSigma(sigmas).toFloat()
        var x = PortableNoise.gaussian(seed, 0, count).also { n -> for (j in n.indices) n[j] *= s0 }
        for ((i, k) in ks.withIndex()) {
            val sigma = sigmas[i]
            val next = sigmas[i + 1]
            // 2. the model sees the DDPM-scaled state at timestep k
            val scale = sqrt(sigma * sigma + 1.0)
            val xs = x
            val out = model(FloatArray(count) { j -> (xs[j] / scale).toFloat() }, k / schedule.numTrainTimesteps)
            // 3. the ODE derivative from the predicted clean latent; 4. the step (ancestral: to s_down, then s_up noise)
            val derivative = derivative(x, out, sigma)
            x =
                if (!ancestral) {
                    eulerStep(x, derivative, next - sigma)
                } else {
                    val up = sqrt(next * next * (sigma * sigma - next * next) / (sigma * sigma))
                    val down = sqrt(next * next - up * up)
                    val noise = if (up > 0.0) PortableNoise.gaussian(seed, (i + 1).toLong(), count) else null
                    FloatArray(count) { j ->
                        val moved = xs[j] + (down - sigma) * derivative[j]
                        (if (noise != null) moved + up * noise[j] else moved).toFloat()
                    }
                }
            onStep?.invoke(i, steps)
        }
        // 5. at sigma = 0 the state is the clean latent
        return x
    }

    /**
     * (x - x0) / sigma for the model output [out] (`predicted_x0`), as doubles holding what numpy holds: float32
     * values for epsilon and sample predictions, float64 for v prediction.
     */
    private fun derivative(
        x: FloatArray,
        out: FloatArray,
        sigma: Double,
    ): DoubleArray {
        val s = sigma.toFloat()
        return when (schedule.prediction) {
            Prediction.EPSILON -> {
                DoubleArray(x.size) { j -> ((x[j] - (x[j] - s * out[j])) / s).toDouble() }
            }

            Prediction.SAMPLE -> {
                DoubleArray(x.size) { j -> ((x[j] - out[j]) / s).toDouble() }
            }

            Prediction.V -> {
                val c = -sigma / sqrt(sigma * sigma + 1.0)
                val d = (sigma * sigma + 1.0).toFloat()
                DoubleArray(x.size) { j -> (x[j] - (out[j] * c + (x[j] / d).toDouble())) / sigma }
            }
        }
    }

    /** x + dSigma * derivative: float32 when the derivative is (a Python float times a float32 array), else float64. */
    private fun eulerStep(
        x: FloatArray,
        derivative: DoubleArray,
        dSigma: Double,
    ): FloatArray =
        if (schedule.prediction == Prediction.V) {
            FloatArray(x.size) { j -> (x[j] + dSigma * derivative[j]).toFloat() }
        } else {
            val ds = dSigma.toFloat()
            FloatArray(x.size) { j -> x[j] + ds * derivative[j].toFloat() }
        }
}

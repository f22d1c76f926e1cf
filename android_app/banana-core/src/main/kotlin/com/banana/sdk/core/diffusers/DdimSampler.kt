package com.banana.sdk.core.diffusers

import com.banana.sdk.core.PortableNoise
import com.banana.sdk.core.StepListener
import kotlin.math.sqrt

/**
 * Deterministic DDIM (eta = 0), the teacher sampler of every non-distilled diffusers pipeline
 * (`banana_sdk/sampling/ddim.py`): whatever scheduler class the pipeline shipped, its table and spacing drive DDIM.
 */
class DdimSampler(
    private val schedule: DdpmSchedule,
) : DdpmSampler {
    override val kind = DdpmSamplerKind.DDIM

    override fun timesteps(steps: Int): DoubleArray = schedule.spacedTimesteps(steps).map { schedule.modelTime(it) }.toDoubleArray()

    override suspend fun sample(
        model: PredictionFn,
        count: Int,
        steps: Int,
        seed: Long,
        onStep: StepListener?,
    ): FloatArray {
        checkSteps(steps)
        val ks = schedule.spacedTimesteps(steps)
        val stride = schedule.numTrainTimesteps / steps
        // 1. start from unit noise (stream 0); DDIM's initial sigma is 1
        var x = PortableNoise.gaussian(seed, 0, count)
        for ((i, k) in ks.withIndex()) {
            // 2. the model's prediction -> clean latent x0 and noise eps at timestep k
            val (x0, eps) = schedule.splitPrediction(x, model(x, schedule.modelTime(k)), k)
            // 3. move to the previous timestep k - T/N along the deterministic DDIM path (float64, then float32)
            val aPrev = schedule.alpha(k - stride)
            val sa = sqrt(aPrev)
            val sb = sqrt(1.0 - aPrev)
            x = FloatArray(count) { j -> (sa * x0[j] + sb * eps[j]).toFloat() }
            onStep?.invoke(i, steps)
        }
        // 4. after the last step the state is the clean latent
        return x
    }
}

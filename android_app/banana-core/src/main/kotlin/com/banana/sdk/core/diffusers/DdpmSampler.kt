package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.StepListener

/** The denoiser as a DDPM sampler sees it: latent x (flat, float32) at model time t = k / T -> prediction, same size. */
typealias PredictionFn = suspend (x: FloatArray, t: Double) -> FloatArray

/** Registry key of a sampler that steps on a stored DDPM schedule (`sampler.kind` of a diffusers bundle). */
enum class DdpmSamplerKind(
    val id: String,
    val minSteps: Int, // fewest steps the sampler is meant for
    val maxSteps: Int, // most steps the sampler is meant for
) {
    DDIM("ddim", 1, 100),
    LCM_DDPM("lcm-ddpm", 1, 8),
    EULER_DDPM("euler-ddpm", 1, 100),
    EULER_ANCESTRAL_DDPM("euler-ancestral-ddpm", 1, 100),
    ;

    companion object {
        fun parse(id: String): DdpmSamplerKind? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/**
 * A sampling loop over a [DdpmSchedule], mirroring `banana_sdk/sampling/{ddim,lcm_ddpm,euler_ddpm}.py` bit for bit
 * in float32 (same seed, same portable noise streams: 0 the initial latent, i the noise of step i). Every
 * implementation is held to the same golden vectors (tests/golden/android/diffusers_samplers.json).
 */
interface DdpmSampler {
    val kind: DdpmSamplerKind
    val minSteps: Int get() = kind.minSteps // fewest steps this sampler is meant for
    val maxSteps: Int get() = kind.maxSteps // most steps this sampler is meant for

    /** (steps,) model times k_i / T at which the denoiser runs, strictly decreasing. */
    fun timesteps(steps: Int): DoubleArray

    /** Clean latent of [count] float32 values after [steps] model evaluations. */
    suspend fun sample(
        model: PredictionFn,
        count: Int,
        steps: Int,
        seed: Long,
        onStep: StepListener? = null,
    ): FloatArray

    fun checkSteps(steps: Int) {
        if (steps !in minSteps..maxSteps) throw ConfigException("${kind.id} sampler takes $minSteps-$maxSteps steps, got $steps")
    }
}

/** The DDPM samplers by name; errors list the valid names. */
object DdpmSamplers {
    /** Samplers of other schedule kinds that this SDK knows of but does not run (SD3's flow matching). */
    val UNSUPPORTED: List<String> = listOf("flow-match-euler")

    fun create(
        kind: DdpmSamplerKind,
        schedule: DdpmSchedule,
    ): DdpmSampler =
        when (kind) {
            DdpmSamplerKind.DDIM -> DdimSampler(schedule)
            DdpmSamplerKind.LCM_DDPM -> LcmDdpmSampler(schedule)
            DdpmSamplerKind.EULER_DDPM -> EulerDdpmSampler(schedule, ancestral = false)
            DdpmSamplerKind.EULER_ANCESTRAL_DDPM -> EulerDdpmSampler(schedule, ancestral = true)
        }

    /** The sampler named [id]; [ConfigException] names the valid choices. */
    fun create(
        id: String,
        schedule: DdpmSchedule,
    ): DdpmSampler {
        val kind =
            DdpmSamplerKind.parse(id) ?: throw ConfigException(
                if (id in UNSUPPORTED) {
                    "sampler '$id' steps on a flow-matching schedule, which this SDK does not run; choose from ${DdpmSamplerKind.ids}"
                } else {
                    "unknown sampler '$id' for a diffusers bundle; choose from ${DdpmSamplerKind.ids}"
                },
            )
        return create(kind, schedule)
    }
}

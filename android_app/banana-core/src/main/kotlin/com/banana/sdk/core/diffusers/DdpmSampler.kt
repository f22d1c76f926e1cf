package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.StepListener

/** The denoiser as a DDPM sampler sees it: latent x (flat, float32) at model time t = k / T -> prediction, same size. */
typealias PredictionFn = suspend (x: FloatArray, t: Double) -> FloatArray

/** `sampler.schedule.kind`: what a diffusers bundle stores for its samplers to step on. */
enum class ScheduleKind(
    val id: String,
    val label: String, // its name in messages
) {
    DDPM("ddpm", "DDPM"), // a discrete alphas_cumprod table (UNet/PixArt pipelines)
    FLOW_MATCH("flow-match", "flow-matching"), // a flow-matching sigma grid (SD3)
    ;

    /** The samplers that step on this kind of schedule. */
    val samplerIds: List<String> get() = DdpmSamplerKind.entries.filter { it.schedule == this }.map { it.id }

    companion object {
        fun parse(id: String): ScheduleKind? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/** A stored schedule of a diffusers bundle ([DdpmSchedule] or [FlowMatchSchedule]). */
sealed interface DiffusersSchedule {
    val kind: ScheduleKind
}

/**
 * Registry key of a sampler that steps on a stored schedule (`sampler.kind` of a diffusers bundle), with the
 * schedule kind it needs.
 */
enum class DdpmSamplerKind(
    val id: String,
    val minSteps: Int, // fewest steps the sampler is meant for
    val maxSteps: Int, // most steps the sampler is meant for
    val schedule: ScheduleKind, // what it steps on
) {
    DDIM("ddim", 1, 100, ScheduleKind.DDPM),
    LCM_DDPM("lcm-ddpm", 1, 8, ScheduleKind.DDPM),
    EULER_DDPM("euler-ddpm", 1, 100, ScheduleKind.DDPM),
    EULER_ANCESTRAL_DDPM("euler-ancestral-ddpm", 1, 100, ScheduleKind.DDPM),
    FLOW_MATCH_EULER("flow-match-euler", 1, 100, ScheduleKind.FLOW_MATCH),
    ;

    companion object {
        fun parse(id: String): DdpmSamplerKind? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/**
 * A sampling loop over a stored schedule, mirroring `banana_sdk/sampling/{ddim,lcm_ddpm,euler_ddpm,flow_match}.py` bit for bit
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

/** The diffusers samplers by name; errors list the valid names. */
object DdpmSamplers {
    /** The sampler [kind] on [schedule]; [ConfigException] when it steps on another kind of schedule. */
    fun create(
        kind: DdpmSamplerKind,
        schedule: DiffusersSchedule,
    ): DdpmSampler {
        if (kind.schedule != schedule.kind) {
            throw ConfigException(
                "sampler '${kind.id}' steps on a ${kind.schedule.label} schedule but this model has a " +
                    "${schedule.kind.label} schedule; choose from ${schedule.kind.samplerIds}",
            )
        }
        return when (kind) {
            DdpmSamplerKind.DDIM -> DdimSampler(schedule as DdpmSchedule)
            DdpmSamplerKind.LCM_DDPM -> LcmDdpmSampler(schedule as DdpmSchedule)
            DdpmSamplerKind.EULER_DDPM -> EulerDdpmSampler(schedule as DdpmSchedule, ancestral = false)
            DdpmSamplerKind.EULER_ANCESTRAL_DDPM -> EulerDdpmSampler(schedule as DdpmSchedule, ancestral = true)
            DdpmSamplerKind.FLOW_MATCH_EULER -> FlowMatchEulerSampler(schedule as FlowMatchSchedule)
        }
    }

    /** The sampler named [id]; [ConfigException] names the valid choices. */
    fun create(
        id: String,
        schedule: DiffusersSchedule,
    ): DdpmSampler {
        val kind =
            DdpmSamplerKind.parse(id)
                ?: throw ConfigException("unknown sampler '$id' for a diffusers bundle; choose from ${DdpmSamplerKind.ids}")
        return create(kind, schedule)
    }
}

package com.banana.sdk.core

/** Sampler registry key, as written in manifests. */
enum class SamplerKind(
    val id: String,
) {
    LCM("lcm"),
    EULER("euler"),
    ;

    companion object {
        fun parse(id: String): SamplerKind? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/** The denoiser as the sampler sees it: latent x (flat, float32) at time t in [0, 1] -> velocity, same size. */
typealias VelocityFn = suspend (x: FloatArray, t: Double) -> FloatArray

/** Called after each denoising step with (step index, steps). */
typealias StepListener = suspend (step: Int, steps: Int) -> Unit

/**
 * A sampling loop over the rectified-flow schedule, mirroring `banana_sdk/sampling/`. Every
 * implementation is held to the same golden vectors (tests/golden/android/sampler.json).
 */
interface Sampler {
    val kind: SamplerKind
    val minSteps: Int // fewest steps this sampler is meant for
    val maxSteps: Int // most steps this sampler is meant for

    /** (steps,) times at which the model is evaluated, strictly decreasing in (0, 1]. */
    fun timesteps(
        steps: Int,
        shift: Double,
    ): DoubleArray = Schedule.timeGrid(steps, shift).copyOf(steps)

    /** Clean latent of [count] float32 values after [steps] model evaluations. */
    suspend fun sample(
        model: VelocityFn,
        count: Int,
        steps: Int,
        seed: Long,
        shift: Double,
        onStep: StepListener? = null,
    ): FloatArray

    fun checkSteps(steps: Int) {
        if (steps !in minSteps..maxSteps) throw ConfigException("${kind.id} sampler takes $minSteps-$maxSteps steps, got $steps")
    }
}

/** Multistep latent consistency (LCD-distilled students), 1-8 steps. */
object LcmSampler : Sampler {
    override val kind = SamplerKind.LCM
    override val minSteps = 1
    override val maxSteps = 8

    override suspend fun sample(
        model: VelocityFn,
        count: Int,
        steps: Int,
        seed: Long,
        shift: Double,
        onStep: StepListener?,
    ): FloatArray {
        checkSteps(steps)
        // 1. start from pure noise at t = 1 (stream 0)
        val grid = Schedule.timeGrid(steps, shift)
        var x = PortableNoise.gaussian(seed, 0, count)
        var x0 = x
        for (i in 0 until steps) {
            val t = grid[i]
            // 2. the consistency function maps x_t straight to a clean estimate
            x0 = Schedule.predictX0(x, model(x, t), t)
            // 3. unless this was the last step, re-noise the estimate to the next time (stream i + 1)
            if (i + 1 < steps) x = Schedule.addNoise(x0, PortableNoise.gaussian(seed, (i + 1).toLong(), count), grid[i + 1])
            onStep?.invoke(i, steps)
        }
        // 4. the last estimate is the sample
        return x0
    }
}

/** Teacher sampler: Euler integration of the flow ODE, 1-100 steps. */
object EulerSampler : Sampler {
    override val kind = SamplerKind.EULER
    override val minSteps = 1
    override val maxSteps = 100

    override suspend fun sample(
        model: VelocityFn,
        count: Int,
        steps: Int,
        seed: Long,
        shift: Double,
        onStep: StepListener?,
    ): FloatArray {
        checkSteps(steps)
        // 1. start from pure noise at t = 1 (stream 0)
        val grid = Schedule.timeGrid(steps, shift)
        val x = PortableNoise.gaussian(seed, 0, count)
        for (i in 0 until steps) {
            // 2. predict the velocity at the current time
            val v = model(x, grid[i])
            // 3. step along the ODE: dx/dt = v, dt = t_next - t (< 0), in float32
            val dt = (grid[i + 1] - grid[i]).toFloat()
            for (j in x.indices) x[j] = x[j] + dt * v[j]
            onStep?.invoke(i, steps)
        }
        // 4. at t = 0 the state is the clean latent
        return x
    }
}

object Samplers {
    /** The sampler for [kind]. */
    fun forKind(kind: SamplerKind): Sampler =
        when (kind) {
            SamplerKind.LCM -> LcmSampler
            SamplerKind.EULER -> EulerSampler
        }
}

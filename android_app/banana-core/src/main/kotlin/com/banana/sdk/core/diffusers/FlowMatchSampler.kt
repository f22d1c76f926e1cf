package com.banana.sdk.core.diffusers

import com.banana.sdk.core.PortableNoise
import com.banana.sdk.core.StepListener

/** `sampler.schedule.grid`: the unshifted noise levels u_0 > ... > u_{N-1} of N steps. */
enum class FlowMatchGrid(
    val id: String,
) {
    SIGMA_RANGE("sigma-range"), // linspace(sigma_max, sigma_min, N): the scheduler's own set_timesteps (SD3, Sana)
    UNIFORM("uniform"), // linspace(1, 1/N, N): the sigmas FluxPipeline passes
    ;

    companion object {
        fun parse(id: String): FlowMatchGrid? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/**
 * A flow-matching schedule as the manifest stores it (`sampler.schedule`, kind "flow-match"), mirroring
 * `banana_sdk/sampling/flow_match.py`: diffusers' `FlowMatchEulerDiscreteScheduler` grid (one shift; Flux's
 * dynamic shift already resolved for the bundle's size) from the stored numbers. The model was trained on
 * x_s = (1 - s) x0 + s eps and predicts v = eps - x0; its signature time is s itself.
 */
data class FlowMatchSchedule(
    val numTrainTimesteps: Int, // T: the model's timestep is s * T
    val shift: Double, // timestep shift s' = shift s / (1 + (shift - 1) s)
    val sigmaMin: Double, // smallest sigma of the scheduler's training grid (already shifted)
    val sigmaMax: Double, // largest sigma of the scheduler's training grid
    val grid: FlowMatchGrid = FlowMatchGrid.SIGMA_RANGE, // unshifted grid (absent in the manifest: sigma-range)
) : DiffusersSchedule {
    override val kind: ScheduleKind get() = ScheduleKind.FLOW_MATCH

    /** (steps + 1) float64 noise levels s_0 > ... > s_{N-1} > s_N = 0 (`FlowMatchSchedule.sigmas`). */
    fun sigmas(steps: Int): DoubleArray {
        val u =
            when (grid) {
                FlowMatchGrid.SIGMA_RANGE -> DdpmSchedule.linspace(sigmaMax, sigmaMin, steps)
                FlowMatchGrid.UNIFORM -> DdpmSchedule.linspace(1.0, 1.0 / steps, steps)
            }
        return DoubleArray(steps + 1) { i -> if (i < steps) shiftTime(u[i]) else 0.0 }
    }

    /** `shift_time`: shift * u / (1 + (shift - 1) * u), in numpy's evaluation order. */
    private fun shiftTime(u: Double): Double = shift * u / (1.0 + (shift - 1.0) * u)
}

/**
 * `flow-match-euler` (`banana_sdk/sampling/flow_match.py`): x = noise (stream 0, unscaled); step i:
 * v = model(x, s_i), x += (s_{i+1} - s_i) v. Precision follows numpy: the step size is a Python float, so
 * (s_{i+1} - s_i) * v and the sum are float32.
 */
class FlowMatchEulerSampler(
    private val schedule: FlowMatchSchedule,
) : DdpmSampler {
    override val kind = DdpmSamplerKind.FLOW_MATCH_EULER

    override fun timesteps(steps: Int): DoubleArray = schedule.sigmas(steps).copyOf(steps)

    /** (steps + 1) noise levels s_i, the last 0. */
    fun sigmas(steps: Int): DoubleArray = schedule.sigmas(steps)

    override suspend fun sample(
        model: PredictionFn,
        count: Int,
        steps: Int,
        seed: Long,
        onStep: StepListener?,
    ): FloatArray {
        checkSteps(steps)
        val sigmas = schedule.sigmas(steps)
        // 1. start from unit noise (stream 0) at s_0
        var x = PortableNoise.gaussian(seed, 0, count)
        for (i in 0 until steps) {
            // 2. the velocity at s_i
            val v = model(x, sigmas[i])
            // 3. Euler step along the flow to s_{i+1} (float32: a Python float times a float32 array)
            val ds = (sigmas[i + 1] - sigmas[i]).toFloat()
            val xs = x
            x = FloatArray(count) { j -> xs[j] + ds * v[j] }
            onStep?.invoke(i, steps)
        }
        // 4. at s = 0 the state is the clean latent
        return x
    }
}

package com.banana.sdk.core

import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.flow.FlowCollector

/**
 * The per-step bookkeeping of a sampler loop, shared by banana and diffusers generations: each step's wall time,
 * one trace section per step (never spanning the progress emit: a suspension may resume on another thread) and a
 * [Stage.DENOISE] progress event; cancellation is checked at every step.
 */
internal class DenoiseSteps(
    private val clock: () -> Long,
    private val tracer: Tracer,
    private val out: FlowCollector<GenerationEvent>,
    steps: Int,
) {
    val stepMs = ArrayList<Double>(steps) // wall time per step, in order

    /** Runs [sample] (a sampler call) with the [StepListener] that closes each step. */
    suspend fun <T> run(sample: suspend (StepListener) -> T): T {
        var last = clock()
        var open = true
        tracer.begin(TraceSections.denoiseStep(1))
        try {
            return sample { i, n ->
                currentCoroutineContext().ensureActive()
                val now = clock()
                stepMs += (now - last) / 1e6
                last = now
                tracer.end()
                open = false
                out.emit(GenerationEvent.Progress(Stage.DENOISE, i + 1, n))
                if (i + 1 < n) {
                    tracer.begin(TraceSections.denoiseStep(i + 2))
                    open = true
                }
            }
        } finally {
            if (open) tracer.end()
        }
    }
}

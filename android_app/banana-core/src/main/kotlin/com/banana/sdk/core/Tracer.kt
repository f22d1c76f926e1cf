package com.banana.sdk.core

/**
 * Trace sections around the stages of a generation, for system tracing (Perfetto): the Android
 * implementation is [com.banana.sdk.core.android.AndroidTracer] (`android.os.Trace`); the default
 * [NONE] does nothing. Sections nest and are per thread: [end] closes the innermost section the
 * same thread opened, so a section never spans a coroutine suspension (the thread may change).
 * The harness reads the names in [TraceSections] (`device_tests/trace_config.py`).
 */
interface Tracer {
    /** Opens a section named [name] on this thread. */
    fun begin(name: String)

    /** Closes this thread's innermost open section. */
    fun end()

    companion object {
        /** Records nothing. */
        val NONE: Tracer =
            object : Tracer {
                override fun begin(name: String) = Unit

                override fun end() = Unit
            }
    }
}

/** Runs [block] inside a section named [name] (closed however [block] ends). */
inline fun <T> Tracer.section(
    name: String,
    block: () -> T,
): T {
    begin(name)
    try {
        return block()
    } finally {
        end()
    }
}

/** Section names of the SDK, shared with the harness's trace summary (`device_tests/trace_config.py`). */
object TraceSections {
    const val TEXT_ENCODE = "banana:text encode" // tokenizer output through the text encoder (RunTimings.textMs)
    const val DECODE = "banana:decode" // VAE decode to 8-bit RGB (RunTimings.decodeMs)

    /** Sampler step [step] (1-based): RunTimings.stepMs[step - 1]. */
    fun denoiseStep(step: Int): String = "banana:denoise step $step"

    /** Generation [index] (1-based) of the benchmark runner: timed, or warm-up when [warmup]. */
    fun run(
        index: Int,
        warmup: Boolean,
    ): String = if (warmup) "banana:warmup $index" else "banana:run $index"
}

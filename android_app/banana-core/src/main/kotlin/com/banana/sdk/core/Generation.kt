package com.banana.sdk.core

/** What to generate; null fields take the bundle's defaults. */
data class GenerationConfig(
    val steps: Int? = null, // denoising steps; null = manifest sampler.default_steps
    val seed: Long = 0L, // noise seed, >= 0; same seed, same image on every runtime
    val size: Int? = null, // image side in pixels; null = the bundle's size (the only one its signatures take)
    val guidanceScale: Double? = null, // classifier-free guidance; null = manifest sampler.guidance_scale
    val subjects: List<Subject> = emptyList(), // at most 5, each named by a word of the prompt (SubjectBinding)
    val sampler: String? = null, // registry name; null = manifest sampler.kind (diffusers: any DDPM sampler)
)

/** Pipeline stage a [GenerationEvent.Progress] reports on. */
enum class Stage(
    val id: String,
) {
    TEXT("text"),
    DENOISE("denoise"),
    DECODE("decode"),
    UPSCALE("upscale"), // one tiled upscaling pass (sizes above the bundle's base size)
}

/** Wall-clock milliseconds of one generation, in the runner contract's terms (docs/DESIGN.md §6). */
data class RunTimings(
    val e2eMs: Double, // prompt in -> image out, including any load on the way
    val textMs: Double, // tokenizer + text encoder (excluding load)
    val denoiseMs: List<Double>, // one entry per denoising step
    val decodeMs: Double, // VAE decoder (excluding load)
    val loadMs: Map<String, Double>, // signatures loaded during this generation -> compile time
    val upscaleMs: List<Double> = emptyList(), // one entry per tiled upscaling pass (tiles + blend)
)

sealed interface GenerationEvent {
    /** [step] of [steps] of [stage] finished. */
    data class Progress(
        val stage: Stage,
        val step: Int,
        val steps: Int,
    ) : GenerationEvent

    /** The result; always the last event. */
    class Image(
        val image: RgbImage, // the 8-bit picture
        val latent: FloatArray, // (C * h * w) clean latent before decoding
        val timings: RunTimings,
    ) : GenerationEvent
}

/** Whether the three signatures stay compiled between generations. */
enum class Residency {
    KEEP_LOADED, // fastest repeat generations; needs all three resident
    ONE_AT_A_TIME, // docs/DESIGN.md §5: load, run, free each component; fits 4-8 GB phones
    ;

    companion object {
        /** Largest share of RAM the model files may take for [KEEP_LOADED]. */
        const val KEEP_LOADED_RAM_FRACTION = 0.25

        /** [KEEP_LOADED] when the model files fit in a quarter of RAM, else [ONE_AT_A_TIME]. */
        fun auto(
            modelBytes: Long,
            device: DeviceProfile,
        ): Residency =
            if (device.totalMemoryBytes > 0 && modelBytes <= device.totalMemoryBytes * KEEP_LOADED_RAM_FRACTION) {
                KEEP_LOADED
            } else {
                ONE_AT_A_TIME
            }
    }
}

/** How [BananaModel] runs on this device. */
data class ModelOptions(
    val delegate: DelegateRequest = DelegateRequest.AUTO, // delegate to prefer for every signature
    val threads: Int = 4, // XNNPACK threads
    val residency: Residency? = null, // null = Residency.auto from model size and RAM
    val tracer: Tracer = Tracer.NONE, // trace sections around each stage (AndroidTracer on a phone: Perfetto)
) {
    init {
        if (threads !in 1..64) throw ConfigException("threads must be in [1, 64], got $threads")
    }
}

package com.banana.sdk.core

import com.banana.sdk.core.diffusers.DiffusersJob
import com.banana.sdk.core.diffusers.DiffusersPipeline
import com.banana.sdk.core.diffusers.SignatureCall
import kotlinx.coroutines.flow.FlowCollector

/**
 * One generation of a diffusers bundle inside an open [BananaModel]: [DiffusersPipeline]'s stages with the model's
 * signature loading (delegate fallback, residency), the runner contract's timings, progress events and trace
 * sections — the same events and [RunTimings] as a banana generation, so apps and the benchmark runner need not
 * know the kind. With runtime peels attached ([BananaModel.attachPeel] / [BananaModel.setPeels]: runtime exports of
 * a LoRA of the bundle's UNet, docs/DESIGN.md §7) every denoise pass runs the rank bucket's `denoise_r{R}` with the
 * stacked `lora_a` / `lora_b` instead of `denoise`, as `DiffusersGenerator.denoise` does; nothing else is reloaded.
 */
internal class DiffusersGeneration(
    private val model: BananaModel,
    private val pipeline: DiffusersPipeline,
    private val tracer: Tracer,
) {
    suspend fun execute(
        job: DiffusersJob,
        out: FlowCollector<GenerationEvent>,
    ) {
        val start = model.now()
        val loads = LinkedHashMap<String, Double>()
        // 1. prompt (and CFG's unconditional input) -> conditioning
        val text = call(BananaModel.TEXT_ENCODER, loads)
        val textStart = model.now()
        val (cond, uncond) =
            tracer.section(TraceSections.TEXT_ENCODE) {
                val c = pipeline.encode(job.prompt, text)
                c to pipeline.unconditional(job, c, text)
            }
        val textMs = model.ms(textStart)
        model.release(BananaModel.TEXT_ENCODER)
        out.emit(GenerationEvent.Progress(Stage.TEXT, 1, 1))
        // 2. the sampler drives the denoiser (two passes per step for CFG): denoise_r{R} with the stacked peels
        val binding = model.peelBinding()
        val denoiseName = binding?.signature ?: BananaModel.DENOISE
        val denoise = call(denoiseName, loads, binding?.inputs.orEmpty())
        val steps = DenoiseSteps(model::now, tracer, out, job.steps)
        val latent = steps.run { onStep -> pipeline.sample(job, cond, uncond, denoise, onStep) }
        model.release(denoiseName)
        // 3. decode and convert to 8-bit RGB
        val decoder = call(BananaModel.VAE_DECODE, loads)
        val decodeStart = model.now()
        val size = model.manifest.image.size
        val image = tracer.section(TraceSections.DECODE) { ImageConversion.toRgb(pipeline.decode(latent, decoder), size, size) }
        val decodeMs = model.ms(decodeStart)
        model.release(BananaModel.VAE_DECODE)
        out.emit(GenerationEvent.Progress(Stage.DECODE, 1, 1))
        out.emit(GenerationEvent.Image(image, latent, RunTimings(model.ms(start), textMs, steps.stepMs, decodeMs, loads)))
    }

    /** Signature [name] (loaded on first use), each run fed [extra] inputs too (a peel bucket's `lora_a` / `lora_b`). */
    private fun call(
        name: String,
        loads: MutableMap<String, Double>,
        extra: Map<String, Tensor> = emptyMap(),
    ): SignatureCall {
        val session = model.acquire(name, loads)
        return SignatureCall { inputs -> session.run(if (extra.isEmpty()) inputs else inputs + extra) }
    }
}

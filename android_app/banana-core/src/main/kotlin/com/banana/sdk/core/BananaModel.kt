package com.banana.sdk.core

import com.banana.sdk.core.diffusers.DiffusersPipeline
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.FlowCollector
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.flowOn
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import java.io.File

/**
 * The SDK's model: a verified bundle, the delegate chosen per signature, and text-to-image
 * generation as a [Flow] of progress then one image. Apps never see LiteRT.
 *
 * Stages follow docs/DESIGN.md: tokenizer -> text_encoder -> sampler loop over denoise ->
 * vae_decode -> 8-bit RGB; with [Residency.ONE_AT_A_TIME] each component is loaded, run and freed
 * in turn. One generation runs at a time. Dispatches on `model.kind`: banana bundles run the loop below,
 * diffusers bundles (docs/DESIGN.md §8) run [DiffusersPipeline] through [DiffusersGeneration] on the same
 * [Engine], delegates and residency.
 */
class BananaModel private constructor(
    val bundle: VerifiedBundle,
    private val engine: Engine,
    private val device: DeviceProfile,
    private val options: ModelOptions,
    private val clock: () -> Long,
) : AutoCloseable {
    val manifest: BundleManifest = bundle.manifest
    val residency: Residency =
        options.residency ?: Residency.auto(manifest.signatures.values.sumOf { manifest.files.getValue(it.file).bytes }, device)
    internal val tokenizer: Tokenizer by lazy {
        Tokenizer(Tokenizer.parseVocabulary(bundle.file(manifest.tokenizer.vocabFile).readText(Charsets.UTF_8)), manifest.tokenizer)
    }
    private val diffusers: DiffusersPipeline? =
        manifest.diffusers?.let { spec ->
            DiffusersPipeline(manifest, DiffusersPipeline.tokenizers(spec.tokenizers) { name -> bundle.file(name).readBytes() })
        }
    private val peelSet = PeelSet(manifest)
    private val sessions = HashMap<String, EngineSession>()
    private val chosen = HashMap<String, Delegate>()
    private val reports = LinkedHashMap<String, DelegateReport>()
    internal val mutex = Mutex() // held by a generation, or by a LiveSession while it is open
    private var closed = false

    init {
        if (manifest.kind == ModelKind.BANANA) checkShapes(manifest) // diffusers shapes: checked by the parser
    }

    /** Per signature: the delegate asked for, the one in use, and why they differ (after first load). */
    val delegateReports: Map<String, DelegateReport> get() = synchronized(this) { LinkedHashMap(reports) }

    /**
     * Image sides this bundle can generate: its base size (the signatures have static shapes) and, with the
     * `upscale_tile` signature, the sizes the tiled upscaling chain reaches (docs/DESIGN.md §5.2).
     */
    val supportedSizes: List<Int>
        get() {
            if (UpscaleSpec.SECTION !in manifest.raw.fields) return listOf(manifest.image.size)
            val spec = UpscaleSpec.fromManifest(manifest)
            return listOf(manifest.image.size) + UpscaleChain.reachableSizes(manifest.image.size, spec.tiles, spec.scale)
        }

    /** The attached runtime peels with their weights, in stacking order. */
    val peels: List<WeightedPeel> get() = synchronized(this) { peelSet.peels }

    /**
     * Attaches [peel] with [weight] at run time (replacing one of the same name); [PeelException] if the bundle has
     * no runtime-peel signatures, the peel is for another base, or the attached ranks no longer fit a bucket.
     * Banana and diffusers bundles alike: for a diffusers bundle (sd family, converted with `--peel-buckets`) the
     * peel is the runtime export of a LoRA of its UNet; PEFT / diffusers / kohya LoRA files themselves are not read
     * here, export them on the host first (`banana peel export --peel LORA --bundle SD_BUNDLE --out X.safetensors`).
     * The next generation runs the bucket's `denoise_r{R}`; no other signature is reloaded.
     */
    fun attachPeel(
        peel: RuntimePeel,
        weight: Float = 1f,
    ) = synchronized(this) { peelSet.attach(peel, weight) }

    /**
     * Replaces the attached peels by [peels] in stacking order (`LiteRTPipeline.set_peels`), every one checked as
     * [attachPeel] checks it before anything changes; an empty list returns to the plain `denoise` signature.
     */
    fun setPeels(peels: List<WeightedPeel>) = synchronized(this) { peelSet.set(peels) }

    fun detachPeel(name: String): Boolean = synchronized(this) { peelSet.detach(name) }

    /** The denoise signature generations use now: `denoise`, or `denoise_r{R}` while peels are attached. */
    val denoiseSignature: String get() = synchronized(this) { peelSet.binding()?.signature ?: DENOISE }

    /**
     * Validates everything first (typed exceptions, before any work), then returns a cold flow:
     * [GenerationEvent.Progress] per stage/step, then one [GenerationEvent.Image].
     */
    fun generate(
        prompt: String,
        config: GenerationConfig = GenerationConfig(),
    ): Flow<GenerationEvent> {
        diffusers?.let { pipeline ->
            ensureOpen()
            if (config.subjects.isNotEmpty()) throw ConfigException("subjects need a banana bundle; this is a diffusers bundle")
            if (config.size != null && config.size != manifest.image.size) {
                throw ConfigException(
                    "this bundle was converted for ${manifest.image.size}x${manifest.image.size}; convert again with --size ${config.size}",
                )
            }
            val job = pipeline.prepare(prompt, config.steps, config.seed, config.guidanceScale, config.sampler)
            return flow { mutex.withLock { DiffusersGeneration(this@BananaModel, pipeline, options.tracer).execute(job, this) } }
                .flowOn(Dispatchers.Default)
        }
        val job = prepare(prompt, config)
        return flow { mutex.withLock { execute(job, this) } }.flowOn(Dispatchers.Default)
    }

    /** Compiles every signature now (the runner measures load separately); returns ms per signature. */
    fun loadAll(): Map<String, Double> =
        synchronized(this) {
            ensureOpen()
            listOf(TEXT_ENCODER, denoiseSignature, VAE_DECODE).associateWith { name ->
                val start = clock()
                session(name)
                ms(start)
            }
        }

    override fun close() =
        synchronized(this) {
            sessions.values.forEach { it.close() }
            sessions.clear()
            closed = true
        }

    private class Job(
        val prompt: Encoded,
        val unconditional: Encoded?, // set when guidance != 1
        val steps: Int,
        val seed: Long,
        val guidance: Double,
        val sampler: Sampler,
        val subjects: SubjectInputs?, // null: no subjects (zero inputs)
        val size: Int, // output side in pixels
        val chain: List<ChainStep>, // upscaling passes after the decoder; empty at the base size
    )

    private fun prepare(
        prompt: String,
        config: GenerationConfig,
    ): Job {
        ensureOpen()
        val kind =
            config.sampler?.let { id ->
                SamplerKind.parse(id) ?: throw ConfigException("unknown sampler '$id' for a banana bundle; choose from ${SamplerKind.ids}")
            } ?: manifest.sampler.kind
        val sampler = Samplers.forKind(kind)
        val base = manifest.image.size
        val size = config.size ?: base
        if (size != base && UpscaleSpec.SECTION !in manifest.raw.fields) {
            throw ConfigException(
                "this bundle generates ${base}x$base images only, got size $size; " +
                    "convert a bundle for that size, or with the upscaler for larger ones",
            )
        }
        val chain = if (size == base) emptyList() else upscalePlan(size)
        val steps = config.steps ?: manifest.sampler.defaultSteps
        val lo = maxOf(manifest.sampler.minSteps, sampler.minSteps)
        val hi = minOf(manifest.sampler.maxSteps, sampler.maxSteps)
        if (steps !in lo..hi) throw ConfigException("this bundle's ${sampler.kind.id} sampler takes $lo-$hi steps, got $steps")
        if (config.seed < 0) throw ConfigException("seed must be an integer in [0, ${Long.MAX_VALUE}], got ${config.seed}")
        val guidance = config.guidanceScale ?: manifest.sampler.guidanceScale
        if (!guidance.isFinite() || guidance < 0.0) throw ConfigException("guidance scale must be a finite number >= 0, got $guidance")
        val written = tokenizer.encode(prompt) // prompt errors first, as the prompt was written
        val slots = manifest.signature(DENOISE).input(SubjectInputs.SUBJECTS)!!.shape
        val subjects =
            config.subjects.takeIf { it.isNotEmpty() }?.let {
                SubjectBinding.bind(prompt, it, slots[1], slots[2], SubjectBinding.encoderModel(manifest))
            }
        // binding rule 5: a model with a learned reference encoder reads its subjects' names as "sbj1".."sbj5"
        val bound = subjects?.let { SubjectBinding.boundPrompt(prompt, it.names, manifest.hasSubjectEncoder) } ?: prompt
        val encoded = if (bound == prompt) written else tokenizer.encode(bound)
        val unconditional = if (guidance != 1.0) tokenizer.unconditional() else null
        return Job(encoded, unconditional, steps, config.seed, guidance, sampler, subjects, size, chain)
    }

    /** The tiled passes from the base size to [size] (UpscaleException lists the reachable sizes). */
    private fun upscalePlan(size: Int): List<ChainStep> {
        val spec = UpscaleSpec.fromManifest(manifest)
        return UpscaleChain.plan(manifest.image.size, size, spec.tiles, spec.scale)
    }

    private suspend fun execute(
        job: Job,
        out: FlowCollector<GenerationEvent>,
    ) {
        val start = clock()
        val loads = LinkedHashMap<String, Double>()
        // 1. prompt -> context (plus the empty prompt when guiding)
        val text = acquire(TEXT_ENCODER, loads)
        val tracer = options.tracer
        val textStart = clock()
        val contexts =
            tracer.section(TraceSections.TEXT_ENCODE) { listOfNotNull(job.prompt, job.unconditional).map { encodeText(text, it) } }
        val textMs = ms(textStart)
        release(TEXT_ENCODER)
        out.emit(GenerationEvent.Progress(Stage.TEXT, 1, 1))
        // 2. the sampler drives the denoiser (denoise_r{R} with the stacked peels); guidance combines two passes,
        // the unconditional one with the subject mask zeroed
        val binding = synchronized(this) { peelSet.binding() }
        val denoiseName = binding?.signature ?: DENOISE
        val denoise = acquire(denoiseName, loads)
        val sig = manifest.signature(denoiseName)
        val fixed = fixedDenoiseInputs(sig, binding, job.subjects)
        val fixedUncond =
            job.subjects?.let { fixed + (SubjectInputs.SUBJECT_MASK to Tensor.F32(it.mask.shape, FloatArray(it.mask.elementCount))) }
                ?: fixed
        val latentSpec = sig.input("latent")!!
        val velocity: VelocityFn = { x, t ->
            currentCoroutineContext().ensureActive()
            val v = denoiseOnce(denoise, sig, fixed, contexts[0], x, t)
            if (contexts.size == 1) {
                v
            } else {
                val vu = denoiseOnce(denoise, sig, fixedUncond, contexts[1], x, t)
                val g = job.guidance.toFloat()
                FloatArray(v.size) { i -> vu[i] + g * (v[i] - vu[i]) }
            }
        }
        val steps = DenoiseSteps(clock, tracer, out, job.steps)
        val latent =
            steps.run { onStep ->
                job.sampler.sample(velocity, latentSpec.elementCount, job.steps, job.seed, manifest.sampler.shift, onStep)
            }
        release(denoiseName)
        // 3. decode and convert to 8-bit RGB
        val decoder = acquire(VAE_DECODE, loads)
        val decodeStart = clock()
        val decSig = manifest.signature(VAE_DECODE)
        val baseImage =
            tracer.section(TraceSections.DECODE) {
                val imageOut = output(decoder.run(mapOf("latent" to Tensor.F32(latentSpec.shape.toIntArray(), latent))), decSig, "image")
                ImageConversion.toRgb(imageOut.data, manifest.image.size, manifest.image.size)
            }
        val decodeMs = ms(decodeStart)
        release(VAE_DECODE)
        out.emit(GenerationEvent.Progress(Stage.DECODE, 1, 1))
        // 4. above the base size: tiled upscaling passes over the 8-bit image, converted once at the end
        val upscaleMs = ArrayList<Double>()
        val image = if (job.chain.isEmpty()) baseImage else upscale(baseImage, job, loads, upscaleMs, out)
        out.emit(GenerationEvent.Image(image, latent, RunTimings(ms(start), textMs, steps.stepMs, decodeMs, loads, upscaleMs)))
    }

    /** The base image through the `upscale_tile` chain (`banana_sdk.upscale.chain.generate_upscaled`). */
    private suspend fun upscale(
        baseImage: RgbImage,
        job: Job,
        loads: MutableMap<String, Double>,
        passMs: MutableList<Double>,
        out: FlowCollector<GenerationEvent>,
    ): RgbImage {
        val spec = UpscaleSpec.fromManifest(manifest)
        val session = acquire(UpscaleSpec.SIGNATURE, loads)
        val sig = manifest.signature(UpscaleSpec.SIGNATURE)
        val t = spec.tiles.tile
        val tileFn = { tile: FloatArray ->
            output(session.run(mapOf("image" to Tensor.F32(intArrayOf(1, t, t, 3), tile))), sig, "upscaled").data
        }
        // pil_to_float: uint8 / 127.5 - 1 in float32
        val pixels = FloatArray(baseImage.rgb.size) { (baseImage.rgb[it].toInt() and 0xFF) / 127.5f - 1f }
        var last = clock()
        val result =
            UpscaleChain.upscale(pixels, baseImage.width, job.size, spec.tiles, spec.scale, tileFn) { n, total ->
                currentCoroutineContext().ensureActive()
                val now = clock()
                passMs += (now - last) / 1e6
                last = now
                out.emit(GenerationEvent.Progress(Stage.UPSCALE, n, total))
            }
        release(UpscaleSpec.SIGNATURE)
        return ImageConversion.toRgb(result, job.size, job.size)
    }

    internal fun encodeText(
        session: EngineSession,
        encoded: Encoded,
    ): Pair<Tensor.F32, Tensor.F32> {
        val sig = manifest.signature(TEXT_ENCODER)
        val l = encoded.ids.size
        val inputs =
            mapOf(
                "tokens" to Tensor.I32(intArrayOf(1, l), encoded.ids),
                "segments" to Tensor.F32(intArrayOf(1, l), FloatArray(l) { encoded.segments[it].toFloat() }),
            )
        val outputs = session.run(inputs)
        return output(outputs, sig, "context") to output(outputs, sig, "context_mask")
    }

    /** Denoise inputs that do not change between steps: bound subjects, stacked peels, zeros for anything else. */
    internal fun fixedDenoiseInputs(
        sig: SignatureSpec,
        peels: PeelBinding?,
        subjects: SubjectInputs?,
    ): Map<String, Tensor> {
        val bound = peels?.inputs.orEmpty() + subjects?.inputs.orEmpty()
        return sig.inputs
            .filter { it.name !in STEP_INPUTS }
            .associate { spec -> spec.name to (bound[spec.name] ?: Tensor.zeros(spec)) }
    }

    private fun denoiseOnce(
        session: EngineSession,
        sig: SignatureSpec,
        fixed: Map<String, Tensor>,
        context: Pair<Tensor.F32, Tensor.F32>,
        x: FloatArray,
        t: Double,
    ): FloatArray {
        val inputs =
            fixed +
                mapOf(
                    "latent" to Tensor.F32(sig.input("latent")!!.shape.toIntArray(), x),
                    "t" to Tensor.F32(intArrayOf(1), floatArrayOf(t.toFloat())),
                    "context" to context.first,
                    "context_mask" to context.second,
                )
        return output(session.run(inputs), sig, "velocity").data
    }

    internal fun output(
        outputs: Map<String, Tensor>,
        sig: SignatureSpec,
        name: String,
    ): Tensor.F32 {
        val spec = sig.output(name)!!
        val t = outputs[name] ?: throw EngineException("${sig.name} returned no output '$name'")
        if (t !is Tensor.F32 || t.elementCount != spec.elementCount) {
            throw EngineException(
                "${sig.name} output '$name' has ${t.elementCount} ${t.dtype.id} values, expected ${spec.elementCount} float32",
            )
        }
        return t
    }

    internal fun acquire(
        name: String,
        loads: MutableMap<String, Double>,
    ): EngineSession =
        synchronized(this) {
            ensureOpen()
            sessions[name] ?: run {
                val start = clock()
                session(name).also { loads[name] = ms(start) }
            }
        }

    internal fun release(name: String) =
        synchronized(this) {
            if (residency == Residency.ONE_AT_A_TIME) sessions.remove(name)?.close()
        }

    /** The compiled [name], loading it with delegate fallback the first time. Caller holds the lock. */
    private fun session(name: String): EngineSession {
        sessions[name]?.let { return it }
        val sig = manifest.signature(name)
        val file = bundle.file(sig.file)
        chosen[name]?.let { delegate ->
            return engine.load(file, sig, EngineOptions(delegate, options.threads)).also { sessions[name] = it }
        }
        val plan = DelegateChooser.plan(options.delegate, sig.delegatePlan, device, engine.availableDelegates())
        val failures = LinkedHashMap<Delegate, String>()
        for (delegate in plan.order) {
            val session =
                try {
                    engine.load(file, sig, EngineOptions(delegate, options.threads))
                } catch (e: EngineException) {
                    failures[delegate] = e.message ?: "failed to load"
                    continue
                }
            chosen[name] = delegate
            reports[name] = DelegateReport(options.delegate.id, delegate, plan.fallbackReason(delegate, failures))
            sessions[name] = session
            return session
        }
        throw EngineException(
            "cannot load $name on any delegate: " +
                (plan.skipped.map { "${it.key.id}: ${it.value}" } + failures.map { "${it.key.id}: ${it.value}" }).joinToString("; "),
        )
    }

    /** The compiled [name] for a live session: loaded with delegate fallback on first use, kept until [release]. */
    internal fun resident(name: String): EngineSession =
        synchronized(this) {
            ensureOpen()
            session(name)
        }

    /** The attached peels' denoise binding now (null without peels). */
    internal fun peelBinding(): PeelBinding? = synchronized(this) { peelSet.binding() }

    private fun ensureOpen() {
        if (closed) throw IllegalStateException("this BananaModel is closed")
    }

    internal fun ms(start: Long): Double = (clock() - start) / 1e6

    internal fun now(): Long = clock()

    companion object {
        const val TEXT_ENCODER = "text_encoder"
        const val DENOISE = "denoise"
        const val VAE_DECODE = "vae_decode"
        val REQUIRED = listOf(TEXT_ENCODER, DENOISE, VAE_DECODE)
        private val STEP_INPUTS = setOf("latent", "t", "context", "context_mask")

        /** Verifies every file of [directory] against its manifest, then opens it. */
        fun open(
            directory: File,
            engine: Engine,
            device: DeviceProfile,
            options: ModelOptions = ModelOptions(),
            clock: () -> Long = System::nanoTime,
        ): BananaModel = open(BundleVerifier.verify(directory), engine, device, options, clock)

        fun open(
            bundle: VerifiedBundle,
            engine: Engine,
            device: DeviceProfile,
            options: ModelOptions = ModelOptions(),
            clock: () -> Long = System::nanoTime,
        ): BananaModel = BananaModel(bundle, engine, device, options, clock)

        /** Rejects a manifest whose signature shapes do not chain together (docs/DESIGN.md §1). */
        fun checkShapes(m: BundleManifest) {
            val l = m.tokenizer.contextLength
            val latent = listOf(1, m.image.latentChannels, m.image.latentSize, m.image.latentSize)
            val text = m.signature(TEXT_ENCODER)
            val den = m.signature(DENOISE)
            val dec = m.signature(VAE_DECODE)
            val ct = text.output("context")!!.shape.last()
            val slots = den.input("subjects")!!.shape.let { if (it.size == 3) it[1] else 0 }
            val expected =
                listOf(
                    text.input("tokens")!! to TensorSpec("tokens", listOf(1, l), DType.INT32),
                    text.input("segments")!! to TensorSpec("segments", listOf(1, l), DType.FLOAT32),
                    text.output("context")!! to TensorSpec("context", listOf(1, l, ct), DType.FLOAT32),
                    text.output("context_mask")!! to TensorSpec("context_mask", listOf(1, l), DType.FLOAT32),
                    den.input("latent")!! to TensorSpec("latent", latent, DType.FLOAT32),
                    den.input("t")!! to TensorSpec("t", listOf(1), DType.FLOAT32),
                    den.input("context")!! to TensorSpec("context", listOf(1, l, ct), DType.FLOAT32),
                    den.input("context_mask")!! to TensorSpec("context_mask", listOf(1, l), DType.FLOAT32),
                    den.input("subjects")!! to TensorSpec("subjects", listOf(1, slots, ct), DType.FLOAT32),
                    den.input("subject_mask")!! to TensorSpec("subject_mask", listOf(1, slots), DType.FLOAT32),
                    den.output("velocity")!! to TensorSpec("velocity", latent, DType.FLOAT32),
                    dec.input("latent")!! to TensorSpec("latent", latent, DType.FLOAT32),
                    dec.output("image")!! to TensorSpec("image", listOf(1, m.image.size, m.image.size, 3), DType.FLOAT32),
                )
            for ((actual, want) in expected) {
                if (actual != want) {
                    throw ManifestException(
                        "manifest.json: ${want.name} is ${actual.shape} ${actual.dtype.id}, expected ${want.shape} ${want.dtype.id}",
                    )
                }
            }
        }
    }
}

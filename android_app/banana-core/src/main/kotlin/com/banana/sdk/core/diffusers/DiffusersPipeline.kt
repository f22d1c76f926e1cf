package com.banana.sdk.core.diffusers

import com.banana.sdk.core.BundleManifest
import com.banana.sdk.core.ConfigException
import com.banana.sdk.core.EngineException
import com.banana.sdk.core.ManifestException
import com.banana.sdk.core.StepListener
import com.banana.sdk.core.Tensor

/** One compiled signature as the pipeline calls it: named inputs -> named outputs (an EngineSession, a fake in tests). */
fun interface SignatureCall {
    fun run(inputs: Map<String, Tensor>): Map<String, Tensor>
}

/** The denoiser inputs that carry the prompt: every text-encoder output (context [1, L, Ct], SDXL's pooled) [+ context_mask]. */
typealias Conditioning = Map<String, Tensor>

/** A validated request (every check done before any work). */
class DiffusersJob(
    val prompt: Map<String, ClipEncoded>, // per text_encoder token input
    val unconditional: Map<String, ClipEncoded>?, // the empty prompt, set when CFG runs two passes with empty_prompt
    val cfg: Boolean, // two denoiser passes per step: u + s (c - u)
    val scale: Double, // guidance scale s (also fed as `guidance` to embedded-guidance denoisers)
    val sampler: DdpmSampler, // the loop
    val steps: Int, // denoiser evaluations (CFG: twice as many passes)
    val seed: Long, // portable-noise seed
)

/**
 * Text-to-image over a diffusers bundle's three signatures, a mirror of `banana_sdk/runtime/diffusers.py`
 * (`DiffusersGenerator`, normative): tokens per token input -> text_encoder -> a [DdpmSampler] calling denoise (twice
 * for CFG at s > 1, combined on the host in float32 as numpy does; once with `guidance` for embedded guidance) ->
 * vae_decode. Every text-encoder output is fed to denoise under its own name with `conditioning.constants`
 * (SDXL's `time_ids`), the token mask at `conditioning.context_rows` when `context` holds only some positions
 * (Sana); the unconditional input is the encoded empty prompt (Sana: without the instruction prefix) or zeros. Pure Kotlin: signatures are
 * [SignatureCall]s, so [com.banana.sdk.core.BananaModel] adds loading, timing and progress around it.
 */
class DiffusersPipeline(
    private val manifest: BundleManifest,
    private val tokenizers: Map<String, PromptTokenizer>, // per text_encoder token input, `tokens` first
) {
    val spec: DiffusersSpec =
        manifest.diffusers ?: throw ConfigException("${manifest.modelName} is a ${manifest.kind.id} bundle, not diffusers")
    private val textInputs =
        manifest
            .signature(TEXT_ENCODER)
            .inputs
            .map { it.name }
            .toSet()
    private val denoiseSig = manifest.signature(DENOISE)
    private val denoiseInputs = denoiseSig.inputs.map { it.name }.toSet()
    private val latentShape = denoiseSig.input("latent")!!.shape.toIntArray()
    private val constants: Map<String, Tensor> =
        spec.conditioning.constants
            .filterKeys { it in denoiseInputs }
            .mapValues { (name, v) -> Tensor.F32(denoiseSig.input(name)!!.shape.toIntArray(), v.toFloatArray()) }

    /** Latent elements C * h * w. */
    val latentCount: Int get() = latentShape.fold(1) { a, d -> a * d }

    /** Validates a request: sampler name, steps, seed, guidance scale; tokenizes (PromptException: empty, too long). */
    fun prepare(
        prompt: String,
        steps: Int?,
        seed: Long,
        guidanceScale: Double?,
        samplerId: String?,
    ): DiffusersJob {
        val sampler =
            samplerId?.let { DdpmSamplers.create(it, spec.sampler.schedule) }
                ?: DdpmSamplers.create(spec.sampler.kind, spec.sampler.schedule)
        val n = steps ?: spec.sampler.defaultSteps
        val own = sampler.kind == spec.sampler.kind // the bundle's range applies to its own sampler
        val lo = if (own) maxOf(spec.sampler.minSteps, sampler.minSteps) else sampler.minSteps
        val hi = if (own) minOf(spec.sampler.maxSteps, sampler.maxSteps) else sampler.maxSteps
        if (n !in lo..hi) throw ConfigException("this bundle's ${sampler.kind.id} sampler takes $lo-$hi steps, got $n")
        sampler.timesteps(n) // LCM: refuses more steps than the distillation grid holds
        if (seed < 0) throw ConfigException("seed must be an integer in [0, ${Long.MAX_VALUE}], got $seed")
        val scale = guidanceScale ?: spec.sampler.guidanceScale
        if (!scale.isFinite() || scale < 0.0) throw ConfigException("guidance scale must be a finite number >= 0, got $scale")
        val encoded = tokenizers.mapValues { (_, tok) -> tok.encode(prompt) }
        val cfg = spec.sampler.guidance == GuidanceMode.CFG && scale > 1.0 // diffusers' rule: no guidance at s <= 1
        val empty = if (cfg && spec.conditioning.unconditional == Unconditional.EMPTY_PROMPT) unconditionalTokens() else null
        return DiffusersJob(encoded, empty, cfg, scale, sampler, n, seed)
    }

    /** The empty prompt [bos][eos] per token input. */
    fun unconditionalTokens(): Map<String, ClipEncoded> = tokenizers.mapValues { (_, tok) -> tok.unconditional() }

    /** The prompt inputs of denoise: every text-encoder output and, where denoise takes it, the token mask [1, L]. */
    fun encode(
        tokens: Map<String, ClipEncoded>,
        textEncoder: SignatureCall,
    ): Conditioning {
        val l = tokenizers.getValue(TOKENS).contextLength
        val length = tokens.getValue(TOKENS).length
        val mask = Tensor.F32(intArrayOf(1, l), FloatArray(l) { if (it < length) 1f else 0f })
        val feeds = LinkedHashMap<String, Tensor>()
        for ((name, enc) in tokens) feeds[name] = Tensor.I32(intArrayOf(1, enc.ids.size), enc.ids)
        if (ATTENTION_MASK in textInputs) feeds[ATTENTION_MASK] = mask
        val outputs = textEncoder.run(feeds)
        val cond = LinkedHashMap<String, Tensor>()
        for (spec in manifest.signature(TEXT_ENCODER).outputs) {
            cond[spec.name] = outputs[spec.name] ?: throw EngineException("$TEXT_ENCODER returned no output '${spec.name}'")
        }
        if (CONTEXT_MASK in denoiseInputs) cond[CONTEXT_MASK] = contextMask(mask)
        return cond
    }

    /** The token mask at `conditioning.context_rows` (Sana: the positions `context` holds), else the whole mask. */
    private fun contextMask(mask: Tensor.F32): Tensor.F32 {
        val rows = spec.conditioning.contextRows ?: return mask
        return Tensor.F32(intArrayOf(1, rows.size), FloatArray(rows.size) { mask.data[rows[it]] })
    }

    /** CFG's unconditional input: zeros of every prompt input (the mask kept), or the encoded empty prompt. */
    fun unconditional(
        job: DiffusersJob,
        cond: Conditioning,
        textEncoder: SignatureCall,
    ): Conditioning? {
        if (!job.cfg) return null
        val empty = job.unconditional ?: return cond.mapValues { (k, v) -> if (k == CONTEXT_MASK) v else zerosLike(v) }
        return encode(empty, textEncoder)
    }

    /** The named inputs of one denoise pass at model time [t]. */
    fun denoiseFeeds(
        x: FloatArray,
        t: Double,
        cond: Conditioning,
        scale: Double,
    ): Map<String, Tensor> {
        val feeds = LinkedHashMap<String, Tensor>()
        feeds[LATENT] = Tensor.F32(latentShape, x)
        feeds[T] = Tensor.F32(intArrayOf(1), floatArrayOf(t.toFloat()))
        for ((k, v) in cond) if (k in denoiseInputs) feeds[k] = v
        feeds.putAll(constants)
        if (GUIDANCE in denoiseInputs) feeds[GUIDANCE] = Tensor.F32(intArrayOf(1), floatArrayOf(scale.toFloat()))
        return feeds
    }

    /** The sampler loop over [denoise]; CFG combines u + s (c - u) in float32 (numpy: a Python float times float32). */
    suspend fun sample(
        job: DiffusersJob,
        cond: Conditioning,
        uncond: Conditioning?,
        denoise: SignatureCall,
        onStep: StepListener? = null,
    ): FloatArray {
        val s = job.scale.toFloat()
        val model: PredictionFn = { x, t ->
            val c = prediction(denoise.run(denoiseFeeds(x, t, cond, job.scale)))
            if (uncond == null) {
                c
            } else {
                val u = prediction(denoise.run(denoiseFeeds(x, t, uncond, job.scale)))
                FloatArray(c.size) { i -> u[i] + s * (c[i] - u[i]) }
            }
        }
        return job.sampler.sample(model, latentCount, job.steps, job.seed, onStep)
    }

    /** The decoder's NHWC image [1, S, S, 3] in about [-1, 1] (latent scaling is inside the graph). */
    fun decode(
        latent: FloatArray,
        vae: SignatureCall,
    ): FloatArray = floats(vae.run(mapOf(LATENT to Tensor.F32(latentShape, latent))), VAE_DECODE, IMAGE)

    private fun prediction(outputs: Map<String, Tensor>): FloatArray = floats(outputs, DENOISE, PREDICTION)

    private fun floats(
        outputs: Map<String, Tensor>,
        signature: String,
        name: String,
    ): FloatArray {
        val spec = manifest.signature(signature).output(name)!!
        val t = outputs[name] ?: throw EngineException("$signature returned no output '$name'")
        if (t !is Tensor.F32 || t.elementCount != spec.elementCount) {
            throw EngineException(
                "$signature output '$name' has ${t.elementCount} ${t.dtype.id} values, expected ${spec.elementCount} float32",
            )
        }
        return t.data
    }

    companion object {
        const val TEXT_ENCODER = "text_encoder"
        const val DENOISE = "denoise"
        const val VAE_DECODE = "vae_decode"
        private const val TOKENS = DiffusersManifestParser.TOKENS
        private const val ATTENTION_MASK = DiffusersManifestParser.ATTENTION_MASK
        private const val CONTEXT_MASK = DiffusersManifestParser.CONTEXT_MASK
        private const val LATENT = DiffusersManifestParser.LATENT
        private const val T = DiffusersManifestParser.T
        private const val GUIDANCE = DiffusersManifestParser.GUIDANCE
        private const val PREDICTION = DiffusersManifestParser.PREDICTION
        private const val IMAGE = DiffusersManifestParser.IMAGE

        /**
         * The bundle's tokenizers, one per text_encoder token input ([DiffusersSpec.tokenizers]), from the files [read]
         * returns by name. CLIP inputs share one vocabulary (SDXL's second pads with "!"), T5 inputs one model per file;
         * [ManifestException] when a file is corrupt or disagrees with its spec.
         */
        fun tokenizers(
            specs: Map<String, TokenizerSpec>,
            read: (String) -> ByteArray,
        ): Map<String, PromptTokenizer> {
            val clips = HashMap<ClipTokenizerSpec, ClipTokenizer>() // by spec without path and pad
            val models = HashMap<String, SentencePieceModel>()
            return specs.mapValues { (_, spec) ->
                when (spec) {
                    is ClipTokenizerSpec -> {
                        val key = spec.copy(path = SpecPath(""), padToken = spec.eosToken)
                        val base = clips.getOrPut(key) { clip(spec, read) }
                        if (spec.padToken == spec.eosToken) base else base.withPad(spec.padToken)
                    }

                    is SentencePieceUnigramSpec -> {
                        val model = models.getOrPut(spec.modelFile) { SentencePieceModel.parse(read(spec.modelFile), spec.modelFile) }
                        unigram(spec, model)
                    }

                    is SentencePieceBpeSpec -> {
                        val model = models.getOrPut(spec.modelFile) { SentencePieceModel.parse(read(spec.modelFile), spec.modelFile) }
                        bpe(spec, model)
                    }
                }
            }
        }

        private fun clip(
            spec: ClipTokenizerSpec,
            read: (String) -> ByteArray,
        ): ClipTokenizer =
            ClipTokenizer(
                ClipTokenizer.parseVocab(read(spec.vocabFile).toString(Charsets.UTF_8)),
                ClipTokenizer.parseMerges(read(spec.mergesFile).toString(Charsets.UTF_8)),
                spec.contextLength,
                spec.bosToken,
                spec.eosToken,
                spec.eosToken,
                spec.unkToken,
            )

        /** T5's tokenizer over [model]; the ids and vocabulary size the converter recorded must be the model's. */
        private fun unigram(
            spec: SentencePieceUnigramSpec,
            model: SentencePieceModel,
        ): SentencePieceUnigramTokenizer {
            val tok =
                SentencePieceUnigramTokenizer(
                    model,
                    spec.contextLength,
                    spec.eosToken,
                    spec.padToken,
                    spec.unkToken,
                    spec.extraIds,
                    spec.preprocess,
                    spec.modelFile,
                )
            checkRecorded(
                spec.path,
                spec.modelFile,
                mapOf(
                    "eos_id" to (spec.eosId to tok.eosId),
                    "pad_id" to (spec.padId to tok.padId),
                    "unk_id" to (spec.unkId to tok.unkId),
                    "vocab_size" to (spec.vocabSize to tok.vocabSize),
                ),
            )
            return tok
        }

        /** Gemma's tokenizer over [model]; the ids and vocabulary size the converter recorded must be the model's. */
        private fun bpe(
            spec: SentencePieceBpeSpec,
            model: SentencePieceModel,
        ): SentencePieceBpeTokenizer {
            val tok =
                SentencePieceBpeTokenizer(
                    model,
                    spec.contextLength,
                    spec.bosToken,
                    spec.eosToken,
                    spec.padToken,
                    spec.unkToken,
                    spec.addBos,
                    spec.addEos,
                    spec.preprocess,
                    spec.prefix,
                    spec.modelFile,
                )
            checkRecorded(
                spec.path,
                spec.modelFile,
                mapOf(
                    "bos_id" to (spec.bosId to tok.bosId),
                    "eos_id" to (spec.eosId to tok.eosId),
                    "pad_id" to (spec.padId to tok.padId),
                    "unk_id" to (spec.unkId to tok.unkId),
                    "vocab_size" to (spec.vocabSize to tok.vocabSize),
                ),
            )
            return tok
        }

        /** [ManifestException] naming the first field whose recorded value (first) is not the model's (second). */
        private fun checkRecorded(
            path: SpecPath,
            file: String,
            fields: Map<String, Pair<Int, Int>>,
        ) {
            for ((key, values) in fields) {
                if (values.first != values.second) {
                    throw ManifestException("manifest.json: ${path.of(key)} ${values.first} does not match $file (${values.second})")
                }
            }
        }

        private fun zerosLike(t: Tensor): Tensor =
            when (t) {
                is Tensor.F32 -> Tensor.F32(t.shape, FloatArray(t.elementCount))
                is Tensor.I32 -> Tensor.I32(t.shape, IntArray(t.elementCount))
            }
    }
}

package com.banana.sdk.core.diffusers

import com.banana.sdk.core.DType
import com.banana.sdk.core.FileEntry
import com.banana.sdk.core.ImageSpec
import com.banana.sdk.core.ManifestParser
import com.banana.sdk.core.SignatureSpec
import com.banana.sdk.core.TensorSpec
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonFields
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonValue

/**
 * Reads the sections of a `model.kind == "diffusers"` manifest (docs/DESIGN.md §8, `banana_sdk/bundle/manifest.py`)
 * and checks that its signatures can run: every denoise input is fed by something (a text-encoder output, the
 * prompt mask, `guidance`, a conditioning constant), shapes chain, files exist. [fail] throws the caller's
 * one-line ManifestException; every message names the field path.
 */
internal class DiffusersManifestParser(
    private val fail: (String) -> Nothing,
) {
    fun parse(
        doc: JsonFields,
        image: ImageSpec,
        signatures: Map<String, SignatureSpec>,
        files: Map<String, FileEntry>,
    ): DiffusersSpec {
        val model = doc.obj("model")
        val familyId = model.string("family")
        val family =
            DiffusersFamily.parse(familyId)
                ?: fail("${model.child("family")} '$familyId' is not supported by this SDK; choose from ${DiffusersFamily.ids}")
        val sampler = parseSampler(doc.obj("sampler"))
        val tokenizers = parseTokenizers(doc.obj("tokenizer"), files)
        val conditioning = parseConditioning(doc.optionalObj("conditioning"), tokenizers.getValue(TOKENS).contextLength)
        val spec = DiffusersSpec(family, sampler, tokenizers, conditioning)
        checkSignatures(spec, image, signatures)
        return spec
    }

    private fun parseSampler(obj: JsonFields): DiffusersSamplerSpec {
        val id = obj.string("kind")
        val kind =
            DdpmSamplerKind.parse(id)
                ?: fail("${obj.child("kind")} '$id' is unknown for a diffusers bundle; choose from ${DdpmSamplerKind.ids}")
        // sampler min <= min_steps <= default_steps <= max_steps <= sampler max, the first bad field named
        var low = kind.minSteps
        val steps =
            listOf("min_steps", "default_steps", "max_steps").map { key ->
                val value = obj.int(key)
                if (value !in low..kind.maxSteps) {
                    fail("${obj.child(key)} must be in $low..${kind.maxSteps}, got $value (${kind.id} sampler)")
                }
                low = value
                value
            }
        val scale = obj.double("guidance_scale")
        if (!(scale in 0.0..100.0)) fail("${obj.child("guidance_scale")} must be in 0..100, got $scale")
        val guidanceId = obj.string("guidance")
        val guidance =
            GuidanceMode.parse(guidanceId) ?: fail("${obj.child("guidance")} '$guidanceId' is unknown; choose from ${GuidanceMode.ids}")
        val schedule = parseSchedule(obj.obj("schedule"))
        if (kind.schedule != schedule.kind) {
            fail(
                "${obj.child("kind")} '$id' steps on a ${kind.schedule.label} schedule but ${obj.child("schedule")} is " +
                    "'${schedule.kind.id}'; choose from ${schedule.kind.samplerIds}",
            )
        }
        return DiffusersSamplerSpec(
            kind = kind,
            defaultSteps = steps[1],
            minSteps = steps[0],
            maxSteps = steps[2],
            guidanceScale = scale,
            guidance = guidance,
            schedule = schedule,
            schedulerClass = obj.optionalString("scheduler_class"),
        )
    }

    /** `sampler.schedule` by its `kind` (absent: "ddpm"), as `read_schedule` dispatches. */
    private fun parseSchedule(obj: JsonFields): DiffusersSchedule {
        val kindId = obj.optionalString("kind") ?: ScheduleKind.DDPM.id
        return when (ScheduleKind.parse(kindId)) {
            ScheduleKind.DDPM -> parseDdpmSchedule(obj)
            ScheduleKind.FLOW_MATCH -> parseFlowMatchSchedule(obj)
            null -> fail("${obj.child("kind")} '$kindId' is unknown; choose from ${ScheduleKind.ids}")
        }
    }

    /** A flow-matching schedule: 0 < sigma_min < sigma_max <= 1, shift > 0, a known grid (`FlowMatchSchedule.from_dict`). */
    private fun parseFlowMatchSchedule(obj: JsonFields): FlowMatchSchedule {
        val total = obj.int("num_train_timesteps")
        if (total !in 1..MAX_TIMESTEPS) fail("${obj.child("num_train_timesteps")} must be in 1..$MAX_TIMESTEPS, got $total")
        val shift = obj.double("shift")
        if (!(shift > 0.0 && shift.isFinite())) fail("${obj.child("shift")} must be finite and positive, got $shift")
        val sigmaMin = obj.double("sigma_min")
        val sigmaMax = obj.double("sigma_max")
        if (!(sigmaMin > 0.0 && sigmaMin < sigmaMax && sigmaMax <= 1.0)) {
            fail("${obj.child("sigma_min")} and sigma_max must satisfy 0 < sigma_min < sigma_max <= 1, got $sigmaMin and $sigmaMax")
        }
        val gridId = obj.optionalString("grid") ?: FlowMatchGrid.SIGMA_RANGE.id
        val grid = FlowMatchGrid.parse(gridId) ?: fail("${obj.child("grid")} '$gridId' is unknown; choose from ${FlowMatchGrid.ids}")
        return FlowMatchSchedule(total, shift, sigmaMin, sigmaMax, grid)
    }

    private fun parseDdpmSchedule(obj: JsonFields): DdpmSchedule {
        val total = obj.int("num_train_timesteps")
        if (total !in 1..MAX_TIMESTEPS) fail("${obj.child("num_train_timesteps")} must be in 1..$MAX_TIMESTEPS, got $total")
        val table = obj.array("alphas_cumprod").mapIndexed { i, v -> alphaValue(v, "${obj.child("alphas_cumprod")}[$i]") }
        if (table.size != total) fail("${obj.child("alphas_cumprod")} has ${table.size} values for num_train_timesteps $total")
        val predictionId = obj.string("prediction")
        val prediction =
            Prediction.parse(predictionId) ?: fail("${obj.child("prediction")} '$predictionId' is unknown; choose from ${Prediction.ids}")
        val spacingId = obj.string("spacing")
        val spacing = Spacing.parse(spacingId) ?: fail("${obj.child("spacing")} '$spacingId' is unknown; choose from ${Spacing.ids}")
        val offset = obj.optionalInt("steps_offset") ?: 0
        if (offset !in 0 until total) fail("${obj.child("steps_offset")} must be in 0..${total - 1}, got $offset")
        val clip = if (obj.has("clip_sample")) obj.double("clip_sample") else null
        if (clip != null &&
            !(clip > 0.0 && clip.isFinite())
        ) {
            fail("${obj.child("clip_sample")} must be a positive number or null, got $clip")
        }
        val original = obj.optionalInt("original_inference_steps") ?: 50
        if (original !in 1..total) fail("${obj.child("original_inference_steps")} must be in 1..$total, got $original")
        val scaling = if (obj.has("timestep_scaling")) obj.double("timestep_scaling") else 10.0
        if (!(scaling > 0.0 && scaling.isFinite())) fail("${obj.child("timestep_scaling")} must be finite and positive, got $scaling")
        return DdpmSchedule(
            alphasCumprod = table,
            finalAlphaCumprod = alphaValue(obj.obj.fields["final_alpha_cumprod"], obj.child("final_alpha_cumprod")),
            prediction = prediction,
            spacing = spacing,
            stepsOffset = offset,
            clipSample = clip,
            originalInferenceSteps = original,
            timestepScaling = scaling,
        )
    }

    /** A cumulative alpha: a number in (0, 1] (the samplers divide by sqrt(a) and take sqrt(1 - a)). */
    private fun alphaValue(
        value: JsonValue?,
        where: String,
    ): Double {
        val a = (value as? JsonNumber)?.toDouble() ?: fail("$where must be a number")
        if (!(a > 0.0 && a <= 1.0)) fail("$where must be in (0, 1], got $a")
        return a
    }

    /**
     * `tokenizer` and its `inputs` -> one spec per text_encoder token input, `tokens` first
     * (`text_tokenizers.input_tokenizers`): an entry with a `kind` is a tokenizer of its own, any other entry's
     * fields go over the section's. CLIP inputs share one vocabulary.
     */
    private fun parseTokenizers(
        obj: JsonFields,
        files: Map<String, FileEntry>,
    ): Map<String, TokenizerSpec> {
        val section = JsonObject(obj.obj.fields - INPUTS)
        val base = parseTokenizer(JsonFields(section, obj.path, fail), files, SpecPath(obj.path))
        val inputs = obj.optionalObj(INPUTS)
        val specs = LinkedHashMap<String, TokenizerSpec>()
        for (name in inputs?.obj?.fields?.keys ?: listOf(TOKENS)) {
            val entry = inputs?.obj(name)
            specs[name] =
                when {
                    entry == null || entry.obj.fields.isEmpty() -> {
                        base
                    }

                    entry.has("kind") -> {
                        parseTokenizer(entry, files, SpecPath(entry.path))
                    }

                    else -> {
                        val merged = JsonFields(JsonObject(section.fields + entry.obj.fields), entry.path, fail)
                        parseTokenizer(merged, files, SpecPath(entry.path, obj.path, entry.obj.fields.keys))
                    }
                }
        }
        if (TOKENS !in specs) fail("${obj.child(INPUTS)} lacks '$TOKENS' (the text encoder's first token input)")
        val clips = specs.values.filterIsInstance<ClipTokenizerSpec>()
        clips.firstOrNull { it.vocabFile != clips[0].vocabFile || it.mergesFile != clips[0].mergesFile }?.let {
            fail("${it.path.entry} must share ${clips[0].path.entry}.vocab_file and merges_file (one CLIP vocabulary per bundle)")
        }
        return linkedMapOf(TOKENS to specs.getValue(TOKENS)) + specs
    }

    /** One tokenizer spec at `obj.path`, by its `kind`. */
    private fun parseTokenizer(
        obj: JsonFields,
        files: Map<String, FileEntry>,
        path: SpecPath,
    ): TokenizerSpec {
        val kind = obj.string("kind")
        val version =
            when (kind) {
                ClipTokenizer.KIND -> ClipTokenizer.VERSION
                SentencePieceUnigramTokenizer.KIND -> SentencePieceUnigramTokenizer.VERSION
                SentencePieceBpeTokenizer.KIND -> SentencePieceBpeTokenizer.VERSION
                else -> fail("${obj.child("kind")} '$kind' is not supported by this SDK; choose from $TOKENIZER_KINDS")
            }
        val found = obj.int("version")
        if (found > version) fail("${obj.child("version")} $found is newer than this SDK reads ($version); update the app")
        val context = obj.int("context_length")
        if (context !in 2..ManifestParser.MAX_CONTEXT) {
            fail("${obj.child("context_length")} must be in 2..${ManifestParser.MAX_CONTEXT}, got $context")
        }
        val vocabSize = obj.int("vocab_size")
        if (vocabSize !in 1..ManifestParser.MAX_VOCAB_SIZE) {
            fail("${obj.child("vocab_size")} must be in 1..${ManifestParser.MAX_VOCAB_SIZE}, got $vocabSize")
        }
        val vocabFile = fileReference(obj, "vocab_file", files)
        if (kind == ClipTokenizer.KIND) {
            return ClipTokenizerSpec(
                path = path,
                version = found,
                contextLength = context,
                vocabSize = vocabSize,
                bosToken = obj.string("bos_token"),
                eosToken = obj.string("eos_token"),
                padToken = obj.string("pad_token"),
                unkToken = obj.string("unk_token"),
                vocabFile = vocabFile,
                mergesFile = fileReference(obj, "merges_file", files),
            )
        }
        val id = { key: String ->
            obj.int(key).also {
                if (it !in
                    0 until vocabSize
                ) {
                    fail("${obj.child(key)} must be in 0..${vocabSize - 1}, got $it")
                }
            }
        }
        val steps =
            obj.optionalArray("preprocess")?.let { obj.strings("preprocess") }.orEmpty().map { step ->
                Preprocess.parse(step) ?: fail("${obj.child("preprocess")} step '$step' is unknown; choose from ${Preprocess.ids}")
            }
        if (kind == SentencePieceBpeTokenizer.KIND) {
            return SentencePieceBpeSpec(
                path = path,
                version = found,
                contextLength = context,
                vocabSize = vocabSize,
                bosToken = obj.string("bos_token"),
                eosToken = obj.string("eos_token"),
                padToken = obj.string("pad_token"),
                unkToken = obj.string("unk_token"),
                bosId = id("bos_id"),
                eosId = id("eos_id"),
                padId = id("pad_id"),
                unkId = id("unk_id"),
                addBos = obj.boolean("add_bos"),
                addEos = obj.boolean("add_eos"),
                preprocess = steps,
                prefix = obj.optionalString("prefix") ?: "",
                modelFile = fileReference(obj, "model_file", files),
            )
        }
        if (obj.has("unk_penalty") && obj.double("unk_penalty") != UnigramSegmenter.UNK_PENALTY) {
            fail(
                "${obj.child(
                    "unk_penalty",
                )} ${obj.double("unk_penalty")} is not this SDK's (${UnigramSegmenter.UNK_PENALTY}); update the app",
            )
        }
        return SentencePieceUnigramSpec(
            path = path,
            version = found,
            contextLength = context,
            vocabSize = vocabSize,
            eosToken = obj.string("eos_token"),
            padToken = obj.string("pad_token"),
            unkToken = obj.string("unk_token"),
            eosId = id("eos_id"),
            padId = id("pad_id"),
            unkId = id("unk_id"),
            extraIds = id("extra_ids"),
            preprocess = steps,
            modelFile = fileReference(obj, "model_file", files),
        )
    }

    private fun fileReference(
        obj: JsonFields,
        key: String,
        files: Map<String, FileEntry>,
    ): String {
        val name = obj.string(key)
        if (!ManifestParser.isSafeFileName(name)) fail("${obj.child(key)} '${name.take(80)}' is not a plain file name inside the bundle")
        if (name !in files) fail("${obj.child(key)} '${name.take(80)}' is not listed in files")
        return name
    }

    /** `conditioning`; its `context_rows` must lie within the [length] positions of the `tokens` input. */
    private fun parseConditioning(
        obj: JsonFields?,
        length: Int,
    ): ConditioningSpec {
        if (obj == null) return ConditioningSpec(Unconditional.EMPTY_PROMPT, emptyMap())
        val id = obj.optionalString("unconditional") ?: Unconditional.EMPTY_PROMPT.id
        val unconditional =
            Unconditional.parse(id) ?: fail("${obj.child("unconditional")} '$id' is unknown; choose from ${Unconditional.ids}")
        val constants = obj.optionalObj("constants")
        val values =
            constants?.obj?.fields?.mapValues { (name, v) ->
                ArrayList<Float>().also { flatten(v, constants.child(name), it) }
            } ?: emptyMap()
        return ConditioningSpec(unconditional, values, parseContextRows(obj, length))
    }

    /** `context_rows`: [start, stop) ranges, in order, within 0..[length] -> the positions (`read_context_rows`). */
    private fun parseContextRows(
        obj: JsonFields,
        length: Int,
    ): List<Int>? {
        val ranges = obj.optionalArray(CONTEXT_ROWS) ?: return null
        val where = obj.child(CONTEXT_ROWS)
        val rows = ArrayList<Int>()
        ranges.forEachIndexed { i, range ->
            val pair = (range as? JsonArray)?.items?.takeIf { it.size == 2 }
            if (pair == null) fail("$where[$i] must be a [start, stop) pair of integers, got ${JsonFields.describe(range)}")
            val (start, stop) = pair.mapIndexed { j, v -> JsonFields.asInt(v, "$where[$i][$j]", fail) }
            if (!(start in 0..stop && stop <= length)) {
                fail("$where[$i] [$start, $stop) must satisfy 0 <= start <= stop <= $length (the text encoder's positions)")
            }
            for (row in start until stop) rows += row
        }
        if (rows.isEmpty()) fail("$where selects no text-encoder position; list at least one non-empty [start, stop) range")
        return rows
    }

    /** Nested number arrays (numpy `tolist()`), row-major, as float32. */
    private fun flatten(
        value: JsonValue,
        where: String,
        out: MutableList<Float>,
    ) {
        when (value) {
            is JsonArray -> value.items.forEachIndexed { i, v -> flatten(v, "$where[$i]", out) }
            is JsonNumber -> out += value.toDouble().toFloat().also { if (!it.isFinite()) fail("$where must be a finite float32") }
            else -> fail("$where must be a number or an array of numbers, got ${JsonFields.describe(value)}")
        }
    }

    /** The signatures the runtime calls exist and chain: tokens [1, L], latent [1, C, h, h], image [1, S, S, 3], ... */
    private fun checkSignatures(
        spec: DiffusersSpec,
        image: ImageSpec,
        signatures: Map<String, SignatureSpec>,
    ) {
        val (text, denoise, vae) =
            REQUIRED.map { signatures[it] ?: fail("signatures.$it is missing; a diffusers bundle needs $REQUIRED") }
        for ((name, tokenizer) in spec.tokenizers) {
            expect(text, name, text.input(name), TensorSpec(name, listOf(1, tokenizer.contextLength), DType.INT32), "input")
        }
        val l = spec.tokenizers.getValue(TOKENS).contextLength // the prompt mask follows `tokens`
        val rows = spec.conditioning.contextRows?.size ?: l // denoise gets the mask at the context rows (Sana)
        text
            .input(
                ATTENTION_MASK,
            )?.let { expect(text, ATTENTION_MASK, it, TensorSpec(ATTENTION_MASK, listOf(1, l), DType.FLOAT32), "input") }
        val context = text.output(CONTEXT) ?: fail("signatures.text_encoder.outputs lacks ['$CONTEXT']")
        val latent = TensorSpec(LATENT, listOf(1, image.latentChannels, image.latentSize, image.latentSize), DType.FLOAT32)
        expect(denoise, LATENT, denoise.input(LATENT), latent, "input")
        expect(denoise, T, denoise.input(T), TensorSpec(T, listOf(1), DType.FLOAT32), "input")
        expect(denoise, PREDICTION, denoise.output(PREDICTION), latent.copy(name = PREDICTION), "output")
        expect(vae, LATENT, vae.input(LATENT), latent, "input")
        expect(vae, IMAGE, vae.output(IMAGE), TensorSpec(IMAGE, listOf(1, image.size, image.size, 3), DType.FLOAT32), "output")
        if (spec.sampler.guidance == GuidanceMode.EMBEDDED) {
            expect(denoise, GUIDANCE, denoise.input(GUIDANCE), TensorSpec(GUIDANCE, listOf(1), DType.FLOAT32), "input")
        }
        if (denoise.input(CONTEXT) == null) fail("signatures.denoise.inputs lacks ['$CONTEXT']")
        for (input in denoise.inputs) {
            val fed =
                when (input.name) {
                    LATENT, T, GUIDANCE -> {
                        true
                    }

                    CONTEXT_MASK -> {
                        input == TensorSpec(CONTEXT_MASK, listOf(1, rows), DType.FLOAT32)
                    }

                    in spec.conditioning.constants -> {
                        spec.conditioning.constants
                            .getValue(input.name)
                            .size == input.elementCount
                    }

                    else -> {
                        text.output(input.name)?.let { it.shape == input.shape && it.dtype == input.dtype } ?: false
                    }
                }
            if (!fed) {
                fail(
                    "signatures.denoise input '${input.name}' ${input.shape} is fed by nothing of that shape (a text_encoder " +
                        "output, context_mask [1, $rows], guidance, or a conditioning.constants entry)",
                )
            }
        }
        if (context.shape.size != 3) fail("signatures.text_encoder output context must be [1, L, Ct], got ${context.shape}")
    }

    private fun expect(
        sig: SignatureSpec,
        name: String,
        actual: TensorSpec?,
        want: TensorSpec,
        io: String,
    ) {
        if (actual == null) fail("signatures.${sig.name}.${io}s lacks ['$name']")
        if (actual != want) {
            fail("signatures.${sig.name} $io $name is ${actual.shape} ${actual.dtype.id}, expected ${want.shape} ${want.dtype.id}")
        }
    }

    companion object {
        const val MAX_TIMESTEPS = 100_000
        const val TOKENS = "tokens"
        const val INPUTS = "inputs"
        val TOKENIZER_KINDS = listOf(ClipTokenizer.KIND, SentencePieceUnigramTokenizer.KIND, SentencePieceBpeTokenizer.KIND)
        const val ATTENTION_MASK = "attention_mask"
        const val CONTEXT = "context"
        const val CONTEXT_MASK = "context_mask"
        const val CONTEXT_ROWS = "context_rows"
        const val LATENT = "latent"
        const val T = "t"
        const val GUIDANCE = "guidance"
        const val PREDICTION = "prediction"
        const val IMAGE = "image"
        val REQUIRED = listOf("text_encoder", "denoise", "vae_decode")
    }
}

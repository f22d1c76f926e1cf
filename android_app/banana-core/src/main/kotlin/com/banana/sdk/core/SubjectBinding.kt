package com.banana.sdk.core

/** The denoise signature's subject inputs for one prompt. */
class SubjectInputs(
    val subjects: Tensor.F32, // [1, slots, width]: slot k holds the k-th named subject's token, zeros after
    val mask: Tensor.F32, // [1, slots]: 1 for used slots, 0 otherwise (all zeros = no subjects)
    val names: List<String>, // the subject in each used slot, in slot order
) {
    /** The two denoise inputs by name. */
    val inputs: Map<String, Tensor> get() = mapOf(SUBJECTS to subjects, SUBJECT_MASK to mask)

    companion object {
        const val SUBJECTS = "subjects"
        const val SUBJECT_MASK = "subject_mask"
    }
}

/**
 * How subject names in a prompt bind to the denoiser's subject slots (`banana_sdk.subjects.binding` is normative):
 * 1. the prompt's words are its runs of ASCII letters and digits, lower-cased (the tokenizer's word rule);
 * 2. every subject must be named by a word of the prompt, each at most once, at most `slots` (5) of them;
 * 3. slot k holds the subject whose name occurs k-th in the prompt (first occurrence), mask 1; unused slots are
 *    zero with mask 0;
 * 4. a model without a learned reference encoder encodes the prompt unchanged;
 * 5. a model with one (manifest `model.config.subject_encoder`) encodes the prompt with every whole-word,
 *    case-insensitive occurrence of the subject in slot k replaced by the placeholder "sbjk" ([boundPrompt]).
 * A model with a learned reference encoder binds the subjects its own encoder made (source "encoder", same weights
 * sha256) and learned embeddings, no descriptor subject; a model without one binds no model-encoded subject
 * ([checkEncoder]).
 */
object SubjectBinding {
    private val WORD = Regex("[A-Za-z0-9]+")

    /** The placeholder word of slot k is "sbjk" (`banana_sdk.data.characters.placeholder`), k in 1..5. */
    const val PLACEHOLDER = "sbj"
    const val MAX_PLACEHOLDERS = 5

    /** The prompt's ASCII words, lower-cased, in order. */
    fun promptWords(prompt: String): List<String> = WORD.findAll(prompt).map { it.value.lowercase() }.toList()

    /** Refuses more subjects than slots before any file is read (`subject_inputs`, `bind`). */
    fun checkCount(
        names: List<String>,
        slots: Int,
    ) {
        if (names.size > slots) {
            throw TooManySubjectsException(
                "${names.size} subjects given (${names.joinToString(", ")}); the model has $slots subject slots: drop one",
            )
        }
    }

    /**
     * `binding.encoder_model`: the weights sha256 of a model with a learned reference encoder ([learnedEncoder]:
     * its config has `subject_encoder`), null for a model without one; [SubjectException] if the model has one but
     * its weights have no identity ([weightsSha256] null: a random-weight preset).
     */
    fun encoderModel(
        modelName: String,
        learnedEncoder: Boolean,
        weightsSha256: String?,
    ): String? {
        if (!learnedEncoder) return null
        if (weightsSha256.isNullOrEmpty()) {
            throw SubjectException(
                "model ${pythonRepr(modelName)} reads subjects made by its own learned encoder, but its weights have no " +
                    "identity (a random-weight preset): subjects need a trained checkpoint",
            )
        }
        return weightsSha256
    }

    /** [encoderModel] for a bundle: `model.config.subject_encoder` and `model.weights_sha256` of its manifest. */
    fun encoderModel(manifest: BundleManifest): String? =
        encoderModel(manifest.modelName, manifest.hasSubjectEncoder, manifest.weightsSha256)

    /**
     * `binding.check_encoder`: [SubjectException] unless every subject's token was made for this model's kind of
     * tokens; [encoderModel] is the weights sha256 of a model with a learned reference encoder, else null.
     */
    fun checkEncoder(
        subjects: List<Subject>,
        encoderModel: String?,
    ) {
        for (s in subjects) {
            if (s.source == SubjectSource.ENCODER && s.model != encoderModel) {
                val made = "the learned encoder of model sha256:${(s.model ?: "?").take(12)}"
                if (encoderModel == null) {
                    throw SubjectException(
                        "subject '${s.name}' was made by $made; this model has no learned reference encoder: " +
                            "re-add it from its images without --model",
                    )
                }
                throw SubjectException(
                    "subject '${s.name}' was made by $made, not this model (sha256:${encoderModel.take(12)}): " +
                        "re-add it from its images with `banana subject add ${s.name} --image ... --model` and this " +
                        "model's checkpoint",
                )
            }
            if (s.source == SubjectSource.REFERENCES && encoderModel != null) {
                throw SubjectException(
                    "subject '${s.name}' holds a colour-silhouette descriptor; this model reads subjects made by its own " +
                        "learned encoder: re-add it from its images with `banana subject add ${s.name} --image ... " +
                        "--model` and this model's checkpoint",
                )
            }
        }
    }

    /**
     * Binds [subjects] for [prompt] into [slots] slots of [width] floats (the denoise `subjects` input shape);
     * [encoderModel]: see [checkEncoder] ([encoderModel] of the bundle's manifest).
     */
    fun bind(
        prompt: String,
        subjects: List<Subject>,
        slots: Int,
        width: Int,
        encoderModel: String? = null,
    ): SubjectInputs {
        val names = subjects.map { it.name }
        checkCount(names, slots)
        names.groupingBy { it }.eachCount().entries.filter { it.value > 1 }.minOfOrNull { it.key }?.let {
            throw SubjectException("subject '$it' is given twice")
        }
        checkEncoder(subjects, encoderModel)
        val words = promptWords(prompt)
        names.firstOrNull { it !in words }?.let {
            throw SubjectException(
                "subject '$it' is not named in the prompt ${pythonRepr(prompt)}; refer to it by name " +
                    "(e.g. \"$it top left\") or leave it out",
            )
        }
        val ordered = subjects.sortedBy { words.indexOf(it.name) }
        val tokens = FloatArray(slots * width)
        val mask = FloatArray(slots)
        for ((k, subject) in ordered.withIndex()) {
            subject.tokenFor(width).copyInto(tokens, k * width)
            mask[k] = 1f
        }
        return SubjectInputs(
            Tensor.F32(intArrayOf(1, slots, width), tokens),
            Tensor.F32(intArrayOf(1, slots), mask),
            ordered.map { it.name },
        )
    }

    /**
     * `binding.placeholder_prompt` (rule 5): [prompt] with each whole-word, case-insensitive occurrence of
     * `slotNames[k - 1]` (words as [promptWords] finds them) replaced by the placeholder "sbjk"; other text, case and
     * punctuation unchanged. [SubjectException] for more than [MAX_PLACEHOLDERS] names (Python: IdentityError).
     */
    fun placeholderPrompt(
        prompt: String,
        slotNames: List<String>,
    ): String {
        if (slotNames.size > MAX_PLACEHOLDERS) {
            throw SubjectException("placeholder number must be in [1, $MAX_PLACEHOLDERS], got ${MAX_PLACEHOLDERS + 1}")
        }
        val slots = slotNames.withIndex().associate { (i, name) -> name to "$PLACEHOLDER${i + 1}" } // a repeated name: last
        return WORD.replace(prompt) { slots[it.value.lowercase()] ?: it.value }
    }

    /**
     * `binding.bound_prompt`: the prompt a model encodes once [slotNames] (in slot order, [SubjectInputs.names]) are
     * bound: rewritten by rule 5 ([placeholderPrompt]) when [hasLearnedEncoder]
     * ([BundleManifest.hasSubjectEncoder]), else unchanged (rule 4).
     */
    fun boundPrompt(
        prompt: String,
        slotNames: List<String>,
        hasLearnedEncoder: Boolean,
    ): String = if (hasLearnedEncoder) placeholderPrompt(prompt, slotNames) else prompt

    /** Python's repr() of a string for the messages above (quotes chosen as Python does; ASCII controls escaped). */
    fun pythonRepr(text: String): String {
        val quote = if ('\'' in text && '"' !in text) '"' else '\''
        val out = StringBuilder().append(quote)
        for (c in text) {
            when {
                c == quote || c == '\\' -> out.append('\\').append(c)
                c == '\n' -> out.append("\\n")
                c == '\r' -> out.append("\\r")
                c == '\t' -> out.append("\\t")
                c.code < 0x20 || c.code == 0x7F -> out.append("\\x%02x".format(c.code))
                else -> out.append(c)
            }
        }
        return out.append(quote).toString()
    }
}

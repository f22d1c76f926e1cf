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
 *    zero with mask 0. The prompt itself is passed on unchanged.
 */
object SubjectBinding {
    private val WORD = Regex("[A-Za-z0-9]+")

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

    /** Binds [subjects] for [prompt] into [slots] slots of [width] floats (the denoise `subjects` input shape). */
    fun bind(
        prompt: String,
        subjects: List<Subject>,
        slots: Int,
        width: Int,
    ): SubjectInputs {
        val names = subjects.map { it.name }
        checkCount(names, slots)
        names.groupingBy { it }.eachCount().entries.filter { it.value > 1 }.minOfOrNull { it.key }?.let {
            throw SubjectException("subject '$it' is given twice")
        }
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

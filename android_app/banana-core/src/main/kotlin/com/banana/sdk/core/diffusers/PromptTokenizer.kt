package com.banana.sdk.core.diffusers

import com.banana.sdk.core.PromptException
import java.util.Locale

/** Fixed-length ids of one prompt for one token input. */
class ClipEncoded(
    val ids: IntArray, // (L,) token ids, padded with the input's pad id
    val length: Int, // tokens before padding, incl. the framing tokens (BOS/EOS)
)

/**
 * A bundle tokenizer of one `text_encoder` token input (`banana_sdk/runtime/text_tokenizers.py`): CLIP BPE
 * ([ClipTokenizer]) or T5's SentencePiece ([SentencePieceUnigramTokenizer]), chosen by the manifest's `tokenizer.kind`.
 */
interface PromptTokenizer {
    val contextLength: Int // L: ids per prompt, padding included
    val padId: Int // fills the context after the prompt

    /** Fixed-length ids; [PromptException] if the prompt is empty (whitespace only) or too long. */
    fun encode(prompt: String): ClipEncoded

    /** The empty prompt: classifier-free guidance's unconditional input. */
    fun unconditional(): ClipEncoded
}

/** `tokenizer.preprocess` steps: the pipeline's own prompt preprocessing, applied first, in the spec's order. */
enum class Preprocess(
    val id: String,
) {
    LOWERCASE("lowercase"), // Python `str.lower()` (full Unicode)
    STRIP("strip"), // Python `str.strip()`
    ;

    fun apply(prompt: String): String =
        when (this) {
            LOWERCASE -> prompt.lowercase(Locale.ROOT)
            STRIP -> ClipText.strip(prompt)
        }

    companion object {
        fun parse(id: String): Preprocess? = entries.firstOrNull { it.id == id }

        val ids: List<String> get() = entries.map { it.id }
    }
}

/**
 * [ids] (the prompt's tokens with their framing tokens) padded with [padId] to [contextLength]; [PromptException]
 * naming the [framing] (e.g. "start/end tokens") when they do not fit: prompts are refused, never truncated
 * (`clip_tokenizer.fixed_length`).
 */
internal fun fixedLength(
    ids: List<Int>,
    contextLength: Int,
    padId: Int,
    framing: String,
): ClipEncoded {
    if (ids.size > contextLength) {
        throw PromptException("prompt is ${ids.size} tokens but the model's context holds $contextLength (incl. $framing); shorten it")
    }
    val out = IntArray(contextLength) { padId }
    ids.forEachIndexed { i, id -> out[i] = id }
    return ClipEncoded(out, ids.size)
}

/** [PromptException] unless the prompt has a non-space character (Python's `not prompt.strip()`). */
internal fun checkNotBlank(prompt: String) {
    if (ClipText.isBlank(prompt)) throw PromptException("prompt is empty; describe the image to generate")
}

/** [PromptException] for a lone surrogate (Python cannot UTF-8-encode it either). */
internal fun checkUnicode(prompt: String) {
    var i = 0
    while (i < prompt.length) {
        val c = prompt[i]
        if (Character.isHighSurrogate(c) && i + 1 < prompt.length && Character.isLowSurrogate(prompt[i + 1])) {
            i += 2
            continue
        }
        if (Character.isSurrogate(c)) throw PromptException("prompt holds a lone surrogate at index $i (not valid Unicode); remove it")
        i += 1
    }
}

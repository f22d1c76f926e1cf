package com.banana.sdk.core

/** Fixed-length tokenizer output for the text encoder. */
class Encoded(
    val ids: IntArray, // (L,) token ids, PAD-padded
    val segments: IntArray, // (L,) phrase index per token, -1 on padding
    val length: Int, // tokens before padding, incl. BOS and EOS
)

/**
 * The prompt tokenizer, a line-for-line mirror of `banana_sdk/tokenizer.py` (its module docstring
 * is normative): ASCII-only lower-casing, ASCII letters/digits form words, ASCII whitespace
 * separates, every other code point becomes its UTF-8 bytes (lone surrogates as 3 bytes, like
 * Python's "surrogatepass"), unknown words become their bytes; "and" and "," end a phrase.
 * Golden vectors (tests/golden/android/tokenizer.json) pin it to the Python implementation.
 */
class Tokenizer(
    words: List<String>,
    private val spec: TokenizerSpec,
) {
    private val wordIds: Map<String, Int> = words.withIndex().associate { (i, w) -> w to spec.wordOffset + i }
    private val separatorIds: Set<Int>

    init {
        if (spec.wordOffset + words.size > spec.vocabSize) {
            throw ManifestException(
                "vocabulary has ${words.size} words but vocab_size ${spec.vocabSize} leaves room for " +
                    "${spec.vocabSize - spec.wordOffset}; the bundle's vocab.txt does not match its model",
            )
        }
        val sepWords =
            spec.separatorWords.map { w ->
                wordIds[w] ?: throw ManifestException("separator word '$w' is not in the bundle's vocabulary")
            }
        separatorIds = (sepWords + spec.separatorBytes.map { spec.byteOffset + it }).toSet()
    }

    val contextLength: Int get() = spec.contextLength

    /** Token ids of [prompt] without BOS/EOS/padding. */
    fun tokens(prompt: String): IntArray {
        val out = ArrayList<Int>(prompt.length + 2)
        val word = StringBuilder()

        fun flush() {
            if (word.isEmpty()) return
            val text = word.toString()
            val id = wordIds[text]
            if (id != null) out.add(id) else text.forEach { out.add(spec.byteOffset + it.code) }
            word.setLength(0)
        }

        var i = 0
        while (i < prompt.length) {
            var cp = prompt.codePointAt(i)
            i += Character.charCount(cp)
            if (cp in 'A'.code..'Z'.code) cp += 32
            if (cp in 'a'.code..'z'.code || cp in '0'.code..'9'.code) {
                word.append(cp.toChar())
                continue
            }
            flush()
            if (cp !in ASCII_WHITESPACE) utf8(cp) { out.add(spec.byteOffset + it) }
        }
        flush()
        return out.toIntArray()
    }

    /** Fixed-length ids and segments; [PromptException] if the prompt is empty or too long. */
    fun encode(prompt: String): Encoded {
        if (isBlank(prompt)) throw PromptException("prompt is empty; describe the image to generate")
        val body = tokens(prompt)
        val length = body.size + 2
        if (length > spec.contextLength) {
            throw PromptException(
                "prompt is $length tokens but the model's context holds ${spec.contextLength} (incl. BOS/EOS); shorten it",
            )
        }
        val ids = IntArray(spec.contextLength) { spec.padId }
        val segments = IntArray(spec.contextLength) { -1 }
        ids[0] = spec.bosId
        segments[0] = 0
        var segment = 0
        body.forEachIndexed { n, token ->
            ids[n + 1] = token
            segments[n + 1] = segment
            if (token in separatorIds) segment++
        }
        ids[length - 1] = spec.eosId
        segments[length - 1] = segment
        return Encoded(ids, segments, length)
    }

    /** The empty prompt [BOS][EOS]: the unconditional input for classifier-free guidance. */
    fun unconditional(): Encoded {
        val ids = IntArray(spec.contextLength) { spec.padId }
        val segments = IntArray(spec.contextLength) { -1 }
        ids[0] = spec.bosId
        ids[1] = spec.eosId
        segments[0] = 0
        segments[1] = 0
        return Encoded(ids, segments, 2)
    }

    companion object {
        private val ASCII_WHITESPACE = setOf(0x20, 0x09, 0x0a, 0x0d, 0x0c, 0x0b)

        /** Code points Python's `str.isspace()` accepts: what `prompt.strip()` removes. */
        val PYTHON_WHITESPACE: Set<Int> =
            setOf(0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680) +
                (0x2000..0x200a) + setOf(0x2028, 0x2029, 0x202f, 0x205f, 0x3000)

        /** True when [prompt] has nothing but whitespace (the Python `not prompt.strip()` test). */
        fun isBlank(prompt: String): Boolean = prompt.all { it.code in PYTHON_WHITESPACE }

        /** The word list of a vocab.txt: stripped non-empty lines in file order. */
        fun parseVocabulary(text: String): List<String> =
            text
                .split("\r\n", "\n", "\r")
                .map { line -> line.trim { it.code in PYTHON_WHITESPACE } }
                .filter { it.isNotEmpty() }

        /** UTF-8 bytes of one code point; surrogate code points encode as 3 bytes ("surrogatepass"). */
        inline fun utf8(
            cp: Int,
            emit: (Int) -> Unit,
        ) {
            when {
                cp < 0x80 -> {
                    emit(cp)
                }

                cp < 0x800 -> {
                    emit(0xC0 or (cp shr 6))
                    emit(0x80 or (cp and 0x3F))
                }

                cp < 0x10000 -> {
                    emit(0xE0 or (cp shr 12))
                    emit(0x80 or ((cp shr 6) and 0x3F))
                    emit(0x80 or (cp and 0x3F))
                }

                else -> {
                    emit(0xF0 or (cp shr 18))
                    emit(0x80 or ((cp shr 12) and 0x3F))
                    emit(0x80 or ((cp shr 6) and 0x3F))
                    emit(0x80 or (cp and 0x3F))
                }
            }
        }
    }
}

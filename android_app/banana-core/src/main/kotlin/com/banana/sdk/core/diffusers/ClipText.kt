package com.banana.sdk.core.diffusers

import java.text.Normalizer
import java.util.Locale

/**
 * The text half of CLIP BPE (`banana_sdk/runtime/clip_tokenizer.py` steps 2-4, normative): normalize a prompt part,
 * split it into pre-tokens, map each pre-token's UTF-8 bytes to GPT-2's printable characters. Character classes are
 * spelled out (not `java.util.regex`, whose `\s` differs from Python's `regex` module): whitespace is Unicode's
 * White_Space property, letters are categories L*, numbers N*, all walked by code point (emoji are surrogate pairs).
 */
object ClipText {
    /** Python `regex` `\s` on str: the 25 White_Space code points. */
    private val WHITE_SPACE: Set<Int> =
        (
            listOf(0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680) + (0x2000..0x200a) +
                listOf(0x2028, 0x2029, 0x202f, 0x205f, 0x3000)
        ).toSet()

    /** Python `str.isspace()` adds the four information separators (the empty-prompt test uses it). */
    private val PY_SPACE: Set<Int> = WHITE_SPACE + (0x1c..0x1f)

    /** The contractions the pattern tries first, in its order. */
    private val CONTRACTIONS = listOf("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")

    /** GPT-2's byte -> character table: printable Latin-1 bytes map to themselves, the others to U+0100 on, in order. */
    val BYTE_TO_CHAR: CharArray =
        run {
            val keep = (0x21..0x7e) + (0xa1..0xac) + (0xae..0xff)
            var extra = 0
            CharArray(256) { b -> if (b in keep) b.toChar() else (256 + extra++).toChar() }
        }

    fun isWhiteSpace(cp: Int): Boolean = cp in WHITE_SPACE

    /** True when Python's `not prompt.strip()` holds: empty or only `str.isspace()` characters. */
    fun isBlank(text: String): Boolean = text.codePoints().allMatch { it in PY_SPACE }

    /** Python's `text.strip()`: `str.isspace()` characters (all in the BMP) removed from both ends. */
    fun strip(text: String): String = text.trim { it.code in PY_SPACE }

    fun isLetter(cp: Int): Boolean =
        when (Character.getType(cp).toByte()) {
            Character.UPPERCASE_LETTER, Character.LOWERCASE_LETTER, Character.TITLECASE_LETTER,
            Character.MODIFIER_LETTER, Character.OTHER_LETTER,
            -> true

            else -> false
        }

    fun isNumber(cp: Int): Boolean =
        when (Character.getType(cp).toByte()) {
            Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> true
            else -> false
        }

    /** Step 2: NFC, every whitespace run -> one space, full Unicode lower case (Python `str.lower()`). */
    fun normalize(part: String): String {
        val nfc = Normalizer.normalize(part, Normalizer.Form.NFC)
        val out = StringBuilder(nfc.length)
        var inSpace = false
        var i = 0
        while (i < nfc.length) {
            val cp = nfc.codePointAt(i)
            i += Character.charCount(cp)
            if (isWhiteSpace(cp)) {
                if (!inSpace) out.append(' ')
                inSpace = true
            } else {
                out.appendCodePoint(cp)
                inSpace = false
            }
        }
        return out.toString().lowercase(Locale.ROOT)
    }

    /**
     * Step 3: the matches of `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+` in order (Python
     * `findall`); whitespace between them is dropped.
     */
    fun preTokens(text: String): List<String> {
        val out = ArrayList<String>()
        var i = 0
        while (i < text.length) {
            val contraction = CONTRACTIONS.firstOrNull { text.startsWith(it, i) }
            val cp = text.codePointAt(i)
            val end =
                when {
                    contraction != null -> i + contraction.length
                    isLetter(cp) -> run(text, i) { isLetter(it) }
                    isNumber(cp) -> i + Character.charCount(cp)
                    !isWhiteSpace(cp) -> run(text, i) { !isWhiteSpace(it) && !isLetter(it) && !isNumber(it) }
                    else -> -1
                }
            if (end < 0) {
                i += Character.charCount(cp)
            } else {
                out += text.substring(i, end)
                i = end
            }
        }
        return out
    }

    /** Step 4: the piece's UTF-8 bytes as GPT-2 characters, one string per byte. */
    fun byteSymbols(piece: String): List<String> = piece.toByteArray(Charsets.UTF_8).map { BYTE_TO_CHAR[it.toInt() and 0xff].toString() }

    /** End (exclusive) of the longest run of code points from [start] that satisfy [accept] (at least one). */
    private inline fun run(
        text: String,
        start: Int,
        accept: (Int) -> Boolean,
    ): Int {
        var i = start
        while (i < text.length) {
            val cp = text.codePointAt(i)
            if (!accept(cp)) break
            i += Character.charCount(cp)
        }
        return i
    }
}

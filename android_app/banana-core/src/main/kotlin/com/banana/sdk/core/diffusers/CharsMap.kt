package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ManifestException
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * SentencePiece's precompiled normalization map (`normalizer_spec.precompiled_charsmap`, nmt_nfkc for T5), as
 * `sentencepiece_tokenizer.CharsMap` applies it (`tokenizers`' Precompiled normalizer, quirks included): a Darts
 * double-array trie over UTF-8 keys whose values are offsets of NUL-terminated replacements. Blob layout: trie size
 * in bytes (u32 LE), the trie units (u32 LE), the replacements. [file] names the model in errors.
 */
class CharsMap(
    blob: ByteArray,
    private val file: String,
) {
    private val units: IntArray // u32 values, read with `toLong() and MASK`
    private val replacements: ByteArray

    init {
        if (blob.isEmpty()) {
            units = IntArray(0)
            replacements = ByteArray(0)
        } else {
            val buffer = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN)
            val size = if (blob.size >= 4) buffer.int.toLong() and MASK else -1L
            if (size < 0 || size % 4 != 0L || size > blob.size - 4) corrupt("its trie size $size does not fit ${blob.size} bytes")
            units = IntArray((size / 4).toInt()) { buffer.int }
            replacements = blob.copyOfRange(4 + size.toInt(), blob.size)
        }
    }

    /**
     * Per extended grapheme cluster: if it is shorter than 6 UTF-8 bytes and some prefix of it is a key, the whole
     * cluster becomes the value of the shortest such key; otherwise each code point becomes its value, or stays.
     */
    fun normalize(text: String): String {
        if (units.isEmpty()) return text
        val out = StringBuilder(text.length)
        for (match in GRAPHEME.findAll(text)) {
            val grapheme = match.value
            if (grapheme.toByteArray(Charsets.UTF_8).size < 6) {
                val whole = transform(grapheme)
                if (whole != null) {
                    out.append(whole)
                    continue
                }
            }
            var i = 0
            while (i < grapheme.length) {
                val n = Character.charCount(grapheme.codePointAt(i))
                val char = grapheme.substring(i, i + n)
                out.append(transform(char) ?: char)
                i += n
            }
        }
        return out.toString()
    }

    /** The replacement of the shortest key that is a prefix of [chunk]'s UTF-8 bytes, or null. */
    private fun transform(chunk: String): String? {
        val value = firstValue(chunk.toByteArray(Charsets.UTF_8)) ?: return null
        var end = value
        while (end < replacements.size && replacements[end] != 0.toByte()) end++
        if (end >= replacements.size) corrupt("replacement offset $value has no terminating NUL")
        return try {
            SentencePieceModel.utf8(replacements.copyOfRange(value, end))
        } catch (e: ProtobufException) {
            corrupt("replacement offset $value is not UTF-8")
        }
    }

    /** Darts-clone `commonPrefixSearch`, stopped at the first key: its value (the replacement offset), or null. */
    private fun firstValue(key: ByteArray): Int? {
        if (units.isEmpty()) return null
        var unit = unit(0)
        var pos = offset(unit)
        for (b in key) {
            val c = b.toLong() and 0xff
            if (c == 0L) break
            pos = pos xor c
            if (pos >= units.size) return null
            unit = unit(pos.toInt())
            if (unit and (LEAF_LABEL_MASK) != c) return null // label
            pos = pos xor offset(unit)
            if ((unit shr 8) and 1L == 1L) { // has a leaf: a key ends here
                if (pos >= units.size) corrupt("a leaf lies outside the trie")
                return (unit(pos.toInt()) and VALUE_MASK).toInt()
            }
        }
        return null
    }

    private fun unit(i: Int): Long = units[i].toLong() and MASK

    private fun offset(unit: Long): Long = (unit shr 10) shl ((unit and (1L shl 9)) shr 6).toInt()

    private fun corrupt(why: String): Nothing =
        throw ManifestException("tokenizer $file: normalizer_spec.precompiled_charsmap is corrupt ($why); copy the bundle again")

    companion object {
        private const val MASK = 0xffffffffL
        private const val LEAF_LABEL_MASK = (1L shl 31) or 0xff
        private const val VALUE_MASK = (1L shl 31) - 1

        /** Extended grapheme clusters (Python `regex` `\X`; ICU's on Android). */
        private val GRAPHEME = Regex("\\X")
    }
}

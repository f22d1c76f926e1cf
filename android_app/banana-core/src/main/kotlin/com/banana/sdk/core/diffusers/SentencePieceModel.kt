package com.banana.sdk.core.diffusers

import com.banana.sdk.core.ManifestException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction

/** `ModelProto.SentencePiece.Type`: what a piece is. */
enum class PieceType(
    val id: Int,
) {
    NORMAL(1),
    UNKNOWN(2),
    CONTROL(3),
    USER_DEFINED(4),
    UNUSED(5),
    BYTE(6),
    ;

    companion object {
        fun parse(id: Int): PieceType? = entries.firstOrNull { it.id == id }
    }
}

/** `TrainerSpec.model_type`: how the pieces segment a word (each type needs its own segmenter). */
enum class SentencePieceModelType(
    val id: Int,
    val label: String,
) {
    UNIGRAM(1, "unigram"), // Viterbi over piece log-probabilities (T5): [UnigramSegmenter]
    BPE(2, "bpe"), // merges by piece score (Gemma)
    WORD(3, "word"),
    CHAR(4, "char"),
    ;

    companion object {
        fun parse(id: Int): SentencePieceModelType? = entries.firstOrNull { it.id == id }
    }
}

/** How one piece of text becomes ids under a model type: [UnigramSegmenter] (T5), [BpeSegmenter] (Gemma). */
fun interface Segmenter {
    fun segment(piece: String): List<Int>
}

/** One vocabulary entry; its id is its index. */
class Piece(
    val text: String, // the piece, `▁` marking a word start
    val score: Double, // log-probability (unigram) or merge priority (BPE), a float32 widened exactly
    val type: PieceType,
)

/**
 * A SentencePiece `ModelProto` (`spiece.model`) read with a minimal protocol-buffer reader, as
 * `banana_sdk/runtime/sentencepiece_tokenizer.read_model` does: pieces (field 1: piece 1, score 2, type 3),
 * `trainer_spec.model_type` (2.3) and `normalizer_spec.precompiled_charsmap` (3.2); everything else is skipped.
 */
class SentencePieceModel(
    val pieces: List<Piece>, // by id
    val charsmap: ByteArray, // Darts trie + replacements ([CharsMap]); empty: no normalization
    val type: SentencePieceModelType, // the segmentation algorithm
) {
    /** Piece text -> id; the last piece of a text wins (Python's dict). */
    val ids: Map<String, Int> by lazy { HashMap<String, Int>().also { m -> pieces.forEachIndexed { i, p -> m[p.text] = i } } }

    /** The id of the special piece [token]; [ManifestException] naming the bundle's [file] if the model lacks it. */
    fun specialId(
        token: String,
        file: String,
    ): Int = ids[token] ?: throw ManifestException("tokenizer $file lacks the special piece '$token'")

    /** [ManifestException] unless this is a [want] model, as the [kind] tokenizer of the bundle's [file] needs. */
    fun requireType(
        want: SentencePieceModelType,
        kind: String,
        file: String,
    ) {
        if (type != want) {
            throw ManifestException(
                "tokenizer $file is a SentencePiece ${type.label} model (trainer_spec.model_type ${type.id}); " +
                    "a $kind tokenizer needs a ${want.label} model (type ${want.id})",
            )
        }
    }

    companion object {
        /** Parses [data] (the bundle's [file]); [ManifestException] naming the file if it is not a SentencePiece model. */
        fun parse(
            data: ByteArray,
            file: String,
        ): SentencePieceModel {
            val pieces = ArrayList<Piece>()
            var charsmap = ByteArray(0)
            var typeId = SentencePieceModelType.UNIGRAM.id.toLong()
            try {
                for (field in Protobuf.fields(data)) {
                    when (field.number) {
                        1 -> pieces += piece(field.bytes())
                        2 -> Protobuf.fields(field.bytes()).lastOrNull { it.number == 3 }?.let { typeId = it.varint() }
                        3 -> Protobuf.fields(field.bytes()).lastOrNull { it.number == 2 }?.let { charsmap = it.bytes() }
                    }
                }
            } catch (e: ProtobufException) {
                throw ManifestException("tokenizer $file is not a SentencePiece model (${e.message}); copy the bundle again")
            }
            if (pieces.isEmpty()) throw ManifestException("tokenizer $file is not a SentencePiece model (no pieces); copy the bundle again")
            val type =
                SentencePieceModelType.parse(typeId.toInt()).takeIf { typeId in 1..4 }
                    ?: throw ManifestException("tokenizer $file: trainer_spec.model_type $typeId is unknown (1-4)")
            return SentencePieceModel(pieces, charsmap, type)
        }

        private fun piece(data: ByteArray): Piece {
            val fields = Protobuf.fields(data).associateBy { it.number } // the last of a repeated field wins
            val text = fields[1]?.bytes()?.let { utf8(it) } ?: ""
            val score =
                fields[2]?.let {
                    ByteBuffer
                        .wrap(it.fixed32())
                        .order(ByteOrder.LITTLE_ENDIAN)
                        .float
                        .toDouble()
                } ?: 0.0
            val typeId = fields[3]?.varint() ?: PieceType.NORMAL.id.toLong()
            val type = PieceType.parse(typeId.toInt()).takeIf { typeId in 1..6 } ?: throw ProtobufException("piece type $typeId is unknown")
            return Piece(text, score, type)
        }

        /** Strict UTF-8 (Python's `bytes.decode("utf-8")`). */
        internal fun utf8(data: ByteArray): String =
            try {
                Charsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(data))
                    .toString()
            } catch (e: CharacterCodingException) {
                throw ProtobufException("a piece is not UTF-8")
            }
    }
}

internal class ProtobufException(
    message: String,
) : Exception(message)

/** The protocol-buffer wire format, enough for `ModelProto`: varint, fixed64, length-delimited and fixed32 fields. */
internal object Protobuf {
    class Field(
        val number: Int,
        private val wire: Int,
        private val value: Long, // varint value, or the payload offset
        private val data: ByteArray,
        private val size: Int, // payload bytes (fixed and length-delimited fields)
    ) {
        fun varint(): Long = if (wire == 0) value else throw ProtobufException("field $number is not a varint")

        fun bytes(): ByteArray =
            if (wire == 2) data.copyOfRange(value.toInt(), value.toInt() + size) else throw ProtobufException("field $number is not bytes")

        fun fixed32(): ByteArray =
            if (wire == 5) data.copyOfRange(value.toInt(), value.toInt() + 4) else throw ProtobufException("field $number is not fixed32")
    }

    fun fields(data: ByteArray): List<Field> {
        val out = ArrayList<Field>()
        var pos = 0
        while (pos < data.size) {
            val (key, afterKey) = varint(data, pos)
            pos = afterKey
            val number = (key ushr 3).toInt()
            val field =
                when (val wire = (key and 7).toInt()) {
                    0 -> {
                        varint(data, pos).let { (v, next) -> Field(number, wire, v, data, 0).also { pos = next } }
                    }

                    1, 5 -> {
                        Field(number, wire, pos.toLong(), data, if (wire == 1) 8 else 4).also { pos += if (wire == 1) 8 else 4 }
                    }

                    2 -> {
                        val (size, start) = varint(data, pos)
                        if (size > data.size - start) throw ProtobufException("truncated protobuf message")
                        pos = start + size.toInt()
                        Field(number, wire, start.toLong(), data, size.toInt())
                    }

                    else -> {
                        throw ProtobufException("unsupported protobuf wire type $wire")
                    }
                }
            if (pos > data.size) throw ProtobufException("truncated protobuf message")
            out += field
        }
        return out
    }

    private fun varint(
        data: ByteArray,
        start: Int,
    ): Pair<Long, Int> {
        var value = 0L
        var shift = 0
        var pos = start
        while (true) {
            if (pos >= data.size || shift > 63) throw ProtobufException("truncated protobuf message")
            val byte = data[pos++].toInt() and 0xff
            value = value or ((byte and 0x7f).toLong() shl shift)
            if (byte < 0x80) return value to pos
            shift += 7
        }
    }
}

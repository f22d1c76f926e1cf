package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonFields
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.json.JsonSyntaxException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.charset.CharacterCodingException
import java.nio.charset.CodingErrorAction

/** Element types [Safetensors] decodes; each widens to float32 exactly (I8: int8 codes of an int8 peel). */
enum class SafetensorsDType(
    val id: String, // the header's "dtype"
    val bytes: Int, // bytes per element, little-endian
) {
    F32("F32", 4),
    F16("F16", 2),
    I8("I8", 1),
}

/** One tensor of a safetensors file: its stored type, its shape and its values widened to float32, row-major. */
class SafetensorsTensor(
    val dtype: SafetensorsDType,
    val shape: List<Int>,
    val data: FloatArray, // shape.product() values
)

/** A parsed safetensors file: the string metadata (`__metadata__`, empty if none) and every tensor by name. */
class SafetensorsFile(
    val metadata: Map<String, String>,
    val tensors: Map<String, SafetensorsTensor>,
)

/** The bytes are not a well-formed safetensors file (the message says what is wrong, in one line). */
class SafetensorsException(
    message: String,
) : Exception(message)

/**
 * A pure-Kotlin reader of the safetensors format (what `safetensors.numpy.save` writes): an unsigned 64-bit
 * little-endian header length N, N bytes of UTF-8 JSON (padded with spaces)
 * `{"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}`,
 * then the byte buffer. Offsets are relative to the buffer, and the tensors must cover it exactly (no gap, no
 * overlap), as the reference implementation requires. Only little-endian F32, F16 and I8 are decoded.
 */
object Safetensors {
    /** Largest header accepted (the reference implementation's limit). */
    const val MAX_HEADER_BYTES = 100_000_000L

    private fun fail(message: String): Nothing = throw SafetensorsException(message)

    /** Parses a whole file held in memory; [SafetensorsException] if anything is malformed. */
    fun parse(bytes: ByteArray): SafetensorsFile {
        if (bytes.size < 8) fail("header too small: the file has ${bytes.size} bytes, the length field alone needs 8")
        val length = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).long
        if (length < 0 || length > MAX_HEADER_BYTES || length > bytes.size - 8L) {
            fail("header length ${java.lang.Long.toUnsignedString(length)} does not fit in the ${bytes.size}-byte file")
        }
        val header = headerObject(bytes, length.toInt())
        val fields = JsonFields(header, "", ::fail)
        val metadata = fields.optionalObj("__metadata__")?.let(::metadata).orEmpty()
        val bufferStart = 8 + length.toInt()
        val entries =
            header.fields.keys
                .filter { it != "__metadata__" }
                .map { entry(fields.obj(it), it) }
        checkCoverage(entries, bytes.size - bufferStart)
        val tensors = entries.associate { it.name to decode(it, bytes, bufferStart) }
        return SafetensorsFile(metadata, tensors)
    }

    private class Entry(
        val name: String,
        val dtype: SafetensorsDType,
        val shape: List<Int>,
        val begin: Long,
        val end: Long,
    )

    private fun headerObject(
        bytes: ByteArray,
        length: Int,
    ): JsonObject {
        val text =
            try {
                Charsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes, 8, length))
                    .toString()
            } catch (e: CharacterCodingException) {
                fail("header is not UTF-8")
            }
        if (!text.startsWith("{")) fail("header must be a JSON object")
        val root =
            try {
                Json.parse(text)
            } catch (e: JsonSyntaxException) {
                fail("header is not valid JSON (${e.message})")
            }
        return root as? JsonObject ?: fail("header must be a JSON object")
    }

    private fun metadata(obj: JsonFields): Map<String, String> =
        obj.obj.fields.mapValues { (key, value) ->
            (value as? JsonString)?.value ?: fail("${obj.child(key)} must be a string, got ${JsonFields.describe(value)}")
        }

    private fun entry(
        obj: JsonFields,
        name: String,
    ): Entry {
        val dtypeId = obj.string("dtype")
        val dtype =
            SafetensorsDType.entries.firstOrNull { it.id == dtypeId }
                ?: fail("tensor '$name' has dtype $dtypeId; only ${SafetensorsDType.entries.map { it.id }} are supported")
        val shape = obj.ints("shape")
        if (shape.any { it < 0 }) fail("tensor '$name' has a negative dimension in shape $shape")
        val offsets = obj.array("data_offsets").mapIndexed { n, v -> JsonFields.asLong(v, "$name.data_offsets[$n]", ::fail) }
        if (offsets.size != 2 || offsets[0] < 0 || offsets[1] < offsets[0]) {
            fail("tensor '$name' data_offsets $offsets must be [begin, end] with 0 <= begin <= end")
        }
        val count = shape.fold(1L) { acc, d -> if (acc > Int.MAX_VALUE) acc else acc * d }
        if (count > Int.MAX_VALUE) fail("tensor '$name' shape $shape is too large")
        if (offsets[1] - offsets[0] != count * dtype.bytes) {
            fail(
                "tensor '$name' shape $shape needs ${count * dtype.bytes} bytes of $dtypeId, data_offsets $offsets span ${offsets[1] - offsets[0]}",
            )
        }
        return Entry(name, dtype, shape, offsets[0], offsets[1])
    }

    /** The tensors, in offset order, must tile the byte buffer exactly. */
    private fun checkCoverage(
        entries: List<Entry>,
        bufferBytes: Int,
    ) {
        var position = 0L
        for (e in entries.sortedWith(compareBy({ it.begin }, { it.end }))) {
            if (e.begin != position) {
                fail("tensor '${e.name}' starts at byte ${e.begin} of the buffer, expected $position (tensors overlap or leave a gap)")
            }
            position = e.end
        }
        if (position != bufferBytes.toLong()) {
            fail("the tensors cover $position bytes but the buffer after the header has $bufferBytes (truncated or padded file)")
        }
    }

    private fun decode(
        e: Entry,
        bytes: ByteArray,
        bufferStart: Int,
    ): SafetensorsTensor {
        val count = ((e.end - e.begin) / e.dtype.bytes).toInt()
        val buffer = ByteBuffer.wrap(bytes, bufferStart + e.begin.toInt(), count * e.dtype.bytes).order(ByteOrder.LITTLE_ENDIAN)
        val data =
            when (e.dtype) {
                SafetensorsDType.F32 -> FloatArray(count).also { buffer.asFloatBuffer().get(it) }
                SafetensorsDType.F16 -> FloatArray(count) { halfToFloat(buffer.short.toInt() and 0xFFFF) }
                SafetensorsDType.I8 -> FloatArray(count) { buffer.get().toFloat() }
            }
        return SafetensorsTensor(e.dtype, e.shape, data)
    }

    /** IEEE 754 binary16 bits -> the float32 of the same value (exact: every half is a float). */
    fun halfToFloat(bits: Int): Float {
        val sign = (bits ushr 15) shl 31
        val exponent = (bits ushr 10) and 0x1F
        val mantissa = bits and 0x3FF
        val out =
            when {
                exponent == 0 && mantissa == 0 -> {
                    sign
                }

                exponent == 0 -> {
                    // subnormal: mantissa * 2^-24; shift the leading one into the implicit bit
                    var e = -14
                    var m = mantissa
                    while (m and 0x400 == 0) {
                        m = m shl 1
                        e--
                    }
                    sign or ((e + 127) shl 23) or ((m and 0x3FF) shl 13)
                }

                exponent == 0x1F -> {
                    sign or (0xFF shl 23) or (mantissa shl 13)
                }

                else -> {
                    sign or ((exponent - 15 + 127) shl 23) or (mantissa shl 13)
                }
            }
        return Float.fromBits(out)
    }
}

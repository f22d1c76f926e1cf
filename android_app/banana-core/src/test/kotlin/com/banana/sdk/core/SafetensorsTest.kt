package com.banana.sdk.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** The safetensors reader on hand-made files (the golden peels.json covers files Python wrote). */
class SafetensorsTest {
    /** A safetensors file with [header] (JSON text, padded to 8 bytes) and [buffer]. */
    private fun file(
        header: String,
        buffer: ByteArray,
    ): ByteArray {
        val text = header.padEnd((header.length + 7) / 8 * 8, ' ').toByteArray(Charsets.UTF_8)
        return ByteBuffer
            .allocate(8 + text.size + buffer.size)
            .order(ByteOrder.LITTLE_ENDIAN)
            .putLong(text.size.toLong())
            .put(text)
            .put(buffer)
            .array()
    }

    @Test
    fun readsF32AndF16InOffsetOrderWithMetadata() {
        val buffer = floatArrayOf(1.5f, -2f).littleEndianBytes() + byteArrayOf(0x00, 0x3C, 0x00, 0xC0.toByte()) // halves 1, -2
        val parsed =
            Safetensors.parse(
                file(
                    "{\"b\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[8,12]}," +
                        "\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                    buffer,
                ),
            )
        assertEquals(mapOf("k" to "v"), parsed.metadata)
        assertEquals(listOf(2, 1), parsed.tensors.getValue("b").shape)
        assertBitsEqual("a", floatArrayOf(1.5f, -2f), parsed.tensors.getValue("a").data)
        assertBitsEqual("b", floatArrayOf(1f, -2f), parsed.tensors.getValue("b").data)
        assertEquals(SafetensorsDType.F16, parsed.tensors.getValue("b").dtype)
        assertEquals(0, Safetensors.parse(file("{}", ByteArray(0))).tensors.size)
    }

    @Test
    fun malformedFilesGetOneLineReasons() {
        val two = floatArrayOf(1f, 2f).littleEndianBytes()
        val cases =
            listOf(
                file("{\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}", two) to "dtype BF16; only [F32, F16, I8]",
                file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"__metadata__\":{\"k\":1}}", two) to
                    "__metadata__.k must be a string",
                file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", two) to "negative dimension",
                file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", two) to "must be [begin, end]",
                file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", two) to "starts at byte 4",
                file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", two) to "cover 4 bytes but the buffer",
                file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", two) to "missing field a.data_offsets",
                file("[1, 2]", two) to "header must be a JSON object",
                file("{\"a\": 1}", two) to "a must be an object",
                file("{\"a\":", two) to "header is not valid JSON",
                byteArrayOf(-1, -1, -1, -1, -1, -1, -1, -1, 0) to "header length 18446744073709551615 does not fit",
                byteArrayOf(1, 2, 3) to "header too small",
                ByteBuffer
                    .allocate(
                        10,
                    ).order(ByteOrder.LITTLE_ENDIAN)
                    .putLong(2)
                    .put(byteArrayOf(-61, 40))
                    .array() to "header is not UTF-8",
            )
        for ((bytes, expected) in cases) {
            val e = assertThrows(expected, SafetensorsException::class.java) { Safetensors.parse(bytes) }
            assertTrue("'${e.message}' should contain '$expected'", e.message!!.contains(expected))
            assertTrue('\n' !in e.message!!)
        }
    }
}

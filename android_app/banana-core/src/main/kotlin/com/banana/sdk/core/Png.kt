package com.banana.sdk.core

import java.io.ByteArrayOutputStream
import java.io.DataOutputStream
import java.util.zip.CRC32
import java.util.zip.Deflater
import java.util.zip.DeflaterOutputStream

/**
 * Minimal PNG encoder (8-bit RGB, filter 0, zlib) in plain JVM code, so a given image gives the
 * same bytes — and the same sha256 in the run result — on every phone, unlike Bitmap.compress.
 */
object Png {
    private val SIGNATURE = byteArrayOf(0x89.toByte(), 'P'.code.toByte(), 'N'.code.toByte(), 'G'.code.toByte(), 13, 10, 26, 10)

    fun encode(image: RgbImage): ByteArray {
        val raw = ByteArrayOutputStream(image.height * (image.width * 3 + 1))
        for (y in 0 until image.height) {
            raw.write(0) // filter type: none
            raw.write(image.rgb, y * image.width * 3, image.width * 3)
        }
        val compressed = ByteArrayOutputStream()
        val deflater = Deflater(Deflater.DEFAULT_COMPRESSION)
        try {
            DeflaterOutputStream(compressed, deflater).use { it.write(raw.toByteArray()) }
        } finally {
            deflater.end()
        }
        val header = ByteArrayOutputStream()
        DataOutputStream(header).apply {
            writeInt(image.width)
            writeInt(image.height)
            writeByte(8) // bit depth
            writeByte(2) // colour type: truecolour RGB
            writeByte(0) // compression: deflate
            writeByte(0) // filter method
            writeByte(0) // no interlace
        }
        val out = ByteArrayOutputStream()
        out.write(SIGNATURE)
        chunk(out, "IHDR", header.toByteArray())
        chunk(out, "IDAT", compressed.toByteArray())
        chunk(out, "IEND", ByteArray(0))
        return out.toByteArray()
    }

    private fun chunk(
        out: ByteArrayOutputStream,
        type: String,
        data: ByteArray,
    ) {
        val typeBytes = type.toByteArray(Charsets.US_ASCII)
        val crc =
            CRC32().apply {
                update(typeBytes)
                update(data)
            }
        DataOutputStream(out).apply {
            writeInt(data.size)
            write(typeBytes)
            write(data)
            writeInt(crc.value.toInt())
        }
    }
}

package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.json.JsonValue
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import java.io.File
import kotlin.math.abs
import kotlin.math.max

/** Access to the repository's shared golden vectors (tests/golden/android, written by Python). */
object Golden {
    /** The repository root: -Dbanana.repo.root, else the nearest parent holding docs/DESIGN.md. */
    val repoRoot: File by lazy {
        System.getProperty("banana.repo.root")?.let { return@lazy File(it) }
        generateSequence(File("").absoluteFile) { it.parentFile }
            .firstOrNull { File(it, "docs/DESIGN.md").isFile }
            ?: error("cannot find the repository root; pass -Dbanana.repo.root=<path>")
    }

    val dir: File get() = File(repoRoot, "tests/golden/android")

    val vocabFile: File get() = File(repoRoot, "banana_sdk/assets/vocab.txt")

    fun load(name: String): JsonObject = Json.parse(File(dir, name).readText(Charsets.UTF_8)) as JsonObject
}

fun JsonValue?.obj(): JsonObject = this as JsonObject

fun JsonValue?.arr(): List<JsonValue> = (this as JsonArray).items

fun JsonValue?.str(): String = (this as JsonString).value

fun JsonValue?.int(): Int = (this as JsonNumber).toLongOrNull()!!.toInt()

fun JsonValue?.long(): Long = (this as JsonNumber).toLongOrNull()!!

fun JsonValue?.double(): Double = (this as JsonNumber).toDouble()

fun JsonValue?.ints(): IntArray = arr().map { it.int() }.toIntArray()

fun JsonValue?.floats(): FloatArray = arr().map { it.double().toFloat() }.toFloatArray()

fun JsonValue?.doubles(): DoubleArray = arr().map { it.double() }.toDoubleArray()

/** Bytes stored as base64 (files, little-endian tensors). */
fun JsonValue?.base64(): ByteArray =
    java.util.Base64
        .getDecoder()
        .decode(str())

/** float32 values stored as base64 of their little-endian bytes (exact). */
fun JsonValue?.base64Floats(): FloatArray {
    val buffer =
        java.nio.ByteBuffer
            .wrap(base64())
            .order(java.nio.ByteOrder.LITTLE_ENDIAN)
            .asFloatBuffer()
    return FloatArray(buffer.remaining()).also { buffer.get(it) }
}

/** Little-endian bytes of float32 values (for sha256 against the golden files). */
fun FloatArray.littleEndianBytes(): ByteArray {
    val buffer =
        java.nio.ByteBuffer
            .allocate(size * 4)
            .order(java.nio.ByteOrder.LITTLE_ENDIAN)
    buffer.asFloatBuffer().put(this)
    return buffer.array()
}

/** Asserts the float32 values are identical bit for bit (-0 and +0 differ), naming the first difference. */
fun assertBitsEqual(
    what: String,
    expected: FloatArray,
    actual: FloatArray,
) {
    assertEquals("$what: length", expected.size, actual.size)
    for (i in expected.indices) {
        if (expected[i].toRawBits() != actual[i].toRawBits()) {
            throw AssertionError("$what[$i]: expected ${expected[i]}, got ${actual[i]} (bit-exact)")
        }
    }
}

/** Asserts |a - b| <= tol * max(1, |b|) elementwise, naming the first offending index. */
fun assertClose(
    what: String,
    expected: FloatArray,
    actual: FloatArray,
    tol: Double,
) {
    assertEquals("$what: length", expected.size, actual.size)
    for (i in expected.indices) {
        val e = expected[i].toDouble()
        val a = actual[i].toDouble()
        assertTrue("$what[$i]: expected $e, got $a (tolerance $tol)", abs(a - e) <= tol * max(1.0, abs(e)))
    }
}

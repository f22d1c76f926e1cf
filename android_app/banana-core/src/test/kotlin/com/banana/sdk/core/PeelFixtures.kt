package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonString
import java.io.File

/** The runtime peels of tests/golden/android/peels.json, and the bundle fixture extended to take them. */
object PeelFixtures {
    val golden by lazy { Golden.load("peels.json") }

    private val bundle: JsonObject get() = golden["bundle"].obj()

    val section: JsonObject get() = bundle["peels"].obj()

    val layout: PeelLayout by lazy { PeelLayout.parse(section) }

    /** The bytes of golden peel file [name] (a full file, or a sparse one of the `sparse` section). */
    fun bytes(name: String): ByteArray = (golden["files"].obj()[name] ?: golden["sparse"].obj()["files"].obj()[name]).base64()

    fun peel(name: String): RuntimePeel = RuntimePeelReader.parse(bytes(name), name)

    /** Golden peel file [name] written into [dir]. */
    fun write(
        name: String,
        dir: File = TestBundles.tempDir("peels"),
    ): File = File(dir, name).also { it.writeBytes(bytes(name)) }

    /**
     * [manifest] as a bundle converted with runtime peels: the golden base hash, the `peels` section and one
     * `denoise_r{R}` signature per bucket (the denoise inputs plus `lora_a` / `lora_b`, in denoise.tflite).
     */
    fun withRuntimePeels(manifest: JsonObject): JsonObject {
        var m = TestBundles.set(manifest, listOf("model", "weights_sha256"), bundle["weights_sha256"])
        m = TestBundles.set(m, listOf(PeelLayout.SECTION), section)
        val denoise = m["signatures"].obj()["denoise"].obj()
        for (bucket in layout.buckets) {
            val (a, b) = layout.flatSizes(bucket)
            val inputs = denoise["inputs"].arr() + spec("lora_a", a.toInt()) + spec("lora_b", b.toInt())
            m = TestBundles.set(m, listOf("signatures", "denoise_r$bucket"), TestBundles.set(denoise, listOf("inputs"), JsonArray(inputs)))
        }
        return m
    }

    private fun spec(
        name: String,
        size: Int,
    ) = Json.obj("name" to JsonString(name), "shape" to JsonArray(listOf(JsonNumber.of(size))), "dtype" to JsonString("float32"))
}

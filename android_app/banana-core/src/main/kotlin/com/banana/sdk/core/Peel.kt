package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonFields
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonSyntaxException
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * A LoRA "peel": low-rank A/B tensors for one base model, bound at run time to denoise-signature
 * inputs of the same names, and scaled by [weight] (applied to each B tensor, so the low-rank
 * update w * B A needs no graph change).
 */
class Peel(
    val name: String, // shown in the picker and in errors
    val baseWeightsSha256: String, // the base model it was trained on (manifest model.weights_sha256)
    val tensors: Map<String, Tensor.F32>, // denoise input name -> value; B tensors end in "_b"
    val weight: Float = 1f, // strength; 0 disables, 1 as trained
) {
    init {
        if (!weight.isFinite() || weight < 0f || weight > MAX_WEIGHT) {
            throw PeelException("peel '$name' weight must be in [0, $MAX_WEIGHT], got $weight")
        }
    }

    fun withWeight(weight: Float): Peel = Peel(name, baseWeightsSha256, tensors, weight)

    /** The tensors as fed to the signature: B tensors scaled by [weight]. */
    fun boundInputs(): Map<String, Tensor> =
        tensors.mapValues { (key, t) ->
            if (key.endsWith("_b") && weight != 1f) Tensor.F32(t.shape, FloatArray(t.data.size) { t.data[it] * weight }) else t
        }

    companion object {
        const val MAX_WEIGHT = 2f
    }
}

/**
 * Reads a peel directory: `peel.json` plus one raw little-endian float32 file per tensor, each
 * with its sha256 (the bundle's integrity rules, applied to peels):
 * `{"format": "banana-peel", "schema_version": 1, "name": "...", "base_weights_sha256": "...",
 *   "tensors": {"<input>": {"file": "...", "shape": [..], "dtype": "float32", "sha256": "..."}}}`.
 */
object PeelReader {
    const val FORMAT = "banana-peel"
    const val SCHEMA_VERSION = 1
    const val FILE_NAME = "peel.json"

    private fun fail(message: String): Nothing = throw PeelException("peel.json: $message")

    fun read(
        directory: File,
        weight: Float = 1f,
    ): Peel {
        val file = File(directory, FILE_NAME)
        if (!file.isFile) throw PeelException("no $FILE_NAME in $directory: not a peel")
        val root =
            try {
                Json.parse(file.readText(Charsets.UTF_8))
            } catch (e: JsonSyntaxException) {
                throw PeelException("$file is not valid JSON (${e.message})", e)
            }
        val doc = JsonFields(root as? JsonObject ?: fail("the top level must be an object"), "", ::fail)
        val version = doc.int("schema_version")
        if (version > SCHEMA_VERSION) fail("schema_version $version is newer than this SDK reads ($SCHEMA_VERSION)")
        if (doc.string("format") != FORMAT) fail("format must be '$FORMAT'")
        val tensorsObj = doc.obj("tensors")
        val tensors =
            tensorsObj.obj.fields.keys.associateWith { input ->
                val t = tensorsObj.obj(input)
                if (t.string("dtype") != DType.FLOAT32.id) fail("${t.child("dtype")} must be float32")
                val shape = t.ints("shape")
                if (shape.isEmpty() || shape.any { it < 1 }) fail("${t.child("shape")} must be positive dimensions")
                val name = t.string("file")
                if (!ManifestParser.isSafeFileName(name)) fail("${t.child("file")} '$name' is not a plain file name")
                readTensor(File(directory, name), shape, t.string("sha256"))
            }
        if (tensors.isEmpty()) fail("tensors is empty")
        return Peel(doc.string("name"), doc.string("base_weights_sha256"), tensors, weight)
    }

    private fun readTensor(
        file: File,
        shape: List<Int>,
        sha256: String,
    ): Tensor.F32 {
        if (!file.isFile) throw PeelException("peel file missing: ${file.name}")
        val bytes = file.readBytes()
        val actual = Sha256.of(bytes)
        if (actual != sha256) throw PeelException("sha256 mismatch for peel file ${file.name}; copy the peel again")
        val count = shape.fold(1L) { acc, d -> acc * d }
        if (bytes.size.toLong() != count * 4) {
            throw PeelException("${file.name} has ${bytes.size} bytes, shape $shape needs ${count * 4}")
        }
        val data = FloatArray(count.toInt())
        ByteBuffer
            .wrap(bytes)
            .order(ByteOrder.LITTLE_ENDIAN)
            .asFloatBuffer()
            .get(data)
        return Tensor.F32(shape.toIntArray(), data)
    }

    /** Parses the runner extra `peels`: "path:weight,path:weight" (weight optional, default 1). */
    fun parseList(spec: String): List<Pair<String, Float>> =
        spec.split(',').map { it.trim() }.filter { it.isNotEmpty() }.map { item ->
            val colon = item.lastIndexOf(':')
            if (colon < 0) return@map item to 1f
            val weight =
                item.substring(colon + 1).toFloatOrNull()
                    ?: throw PeelException("peel weight in '$item' is not a number; use path:weight, e.g. /sdcard/p:0.8")
            item.substring(0, colon) to weight
        }
}

/** Peels attached to one model, validated against its manifest and denoise signature. */
class PeelSet(
    private val manifest: BundleManifest,
) {
    private val attached = LinkedHashMap<String, Peel>()

    val peels: List<Peel> get() = attached.values.toList()

    /** Attaches [peel] (replacing one of the same name). Throws [PeelException] if it does not fit. */
    fun attach(peel: Peel) {
        val base =
            manifest.weightsSha256
                ?: throw PeelException(
                    "this bundle records no base weights hash (converted from a random-weight preset), so peel " +
                        "'${peel.name}' cannot be checked against it; convert from a checkpoint",
                )
        if (peel.baseWeightsSha256 != base) {
            throw PeelException(
                "peel '${peel.name}' was made for base model ${peel.baseWeightsSha256.take(12)}, but this bundle is " +
                    "${manifest.modelName} ${base.take(12)}; use a peel trained on this model",
            )
        }
        val denoise = manifest.signature("denoise")
        for ((input, tensor) in peel.tensors) {
            val spec =
                denoise.input(input)
                    ?: throw PeelException(
                        "this bundle's denoise signature has no input '$input' for peel '${peel.name}'; " +
                            "convert the bundle with peel inputs",
                    )
            if (spec.dtype != DType.FLOAT32 || spec.shape != tensor.shape.toList()) {
                throw PeelException(
                    "peel '${peel.name}' tensor '$input' has shape ${tensor.shape.toList()}, the bundle expects ${spec.shape}",
                )
            }
        }
        val clash = attached.values.firstOrNull { other -> other.name != peel.name && other.tensors.keys.any { it in peel.tensors } }
        if (clash != null) throw PeelException("peel '${peel.name}' uses the same inputs as attached peel '${clash.name}'; detach it first")
        attached[peel.name] = peel
    }

    fun detach(name: String): Boolean = attached.remove(name) != null

    /** Inputs the attached peels bind (empty when none). */
    fun boundInputs(): Map<String, Tensor> = attached.values.fold(emptyMap()) { acc, p -> acc + p.boundInputs() }
}

package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.json.JsonSyntaxException
import java.io.File
import java.io.IOException

/**
 * A runtime peel (docs/DESIGN.md §7; `banana peel export --bundle`, banana_sdk/peels/device.py): one LoRA add-on
 * laid out for a bundle's peel layout at the peel's own rank r, its scale alpha / r folded into B, weight 1.
 * For each slot i it covers (in layout order): A_i is (r, in_i) and B_i is (out_i, r), both row-major. A sparse
 * file (metadata `slots`, what `banana peel export` writes by default) covers only the slots it names; a file
 * without `slots` covers every slot of the layout, with zeros where the peel adapts nothing.
 */
class RuntimePeel(
    val name: String, // metadata "name": shown in the picker and in errors
    val baseHash: String, // metadata "base_hash": sha256 of the base weights (manifest model.weights_sha256)
    val baseModel: String, // metadata "base_model": the base model's name, for messages
    val rank: Int, // metadata "rank": r >= 1
    val loraA: FloatArray, // r * sum(in_i) values over the covered slots: concat_i A_i
    val loraB: FloatArray, // r * sum(out_i) values over the covered slots: concat_i B_i * alpha / r
    val slots: List<String>? = null, // metadata "slots": names of the layout slots covered; null = every slot
)

/**
 * Reads runtime peel files: safetensors holding flat `lora_a` and `lora_b` (F32, F16 widened exactly, or I8 codes
 * with F16 `lora_a.scale` / `lora_b.scale`, one per [INT8_BLOCK] values: value k = code[k] * scale[k / 64]) and
 * string metadata `format=banana-runtime-peel`, `rank`, `name`, `base_hash`, `base_model` and optionally `slots`
 * (a JSON list of layer names) (as `banana_sdk.peels.device.load_runtime`, whose messages these mirror). Which
 * layout slots the names are is checked against a bundle's layout when the peel is stacked ([PeelStacker]).
 * The SDK reads only this runtime form: a PEFT / diffusers / kohya LoRA of a diffusers bundle's UNet is exported on
 * the host first (`banana peel export --peel LORA --bundle SD_BUNDLE --out X.safetensors`), and is refused here.
 */
object RuntimePeelReader {
    const val FORMAT = "banana-runtime-peel"
    const val SCHEMA_VERSION = 2 // 2: int8 A/B with float16 scales per block of INT8_BLOCK values (1: float only)
    const val INT8_BLOCK = 64 // values per scale in an int8 file (banana_sdk/peels/quant.py BLOCK)
    const val SUFFIX = ".safetensors"

    /** Reads the runtime peel at [file]; [PeelException] says what is wrong. */
    fun read(file: File): RuntimePeel {
        if (!file.isFile) throw PeelException("peel file '${file.path}' does not exist")
        val bytes =
            try {
                file.readBytes()
            } catch (e: IOException) {
                throw PeelException("$file is not a readable runtime peel (${e.message})", e)
            }
        return parse(bytes, file.path)
    }

    /** Parses the bytes of a runtime peel file; [what] names it in messages (its path). */
    fun parse(
        bytes: ByteArray,
        what: String,
    ): RuntimePeel {
        val file =
            try {
                Safetensors.parse(bytes)
            } catch (e: SafetensorsException) {
                throw PeelException("$what is not a readable runtime peel (${e.message})", e)
            }
        if ("lora_a" !in file.tensors && file.tensors.keys.any { key -> LORA_KEY.containsMatchIn(key) }) {
            throw PeelException(
                "$what is a PEFT / diffusers / kohya LoRA file, not a runtime peel; export it for the bundle on the host " +
                    "with `banana peel export --peel LORA --bundle BUNDLE --out PEEL.safetensors`",
            )
        }
        val a = flat(file, "lora_a", what)
        val b = flat(file, "lora_b", what)
        val meta = file.metadata
        if (meta["format"] != FORMAT) throw PeelException("$what is not a runtime peel; export it with `banana peel export --bundle`")
        meta["schema_version"]?.let { v ->
            val version = v.trim().toIntOrNull() ?: throw PeelException("$what: metadata schema_version '$v' is not an integer")
            if (version > SCHEMA_VERSION) {
                throw PeelException("$what has runtime peel schema $version, newer than this SDK reads ($SCHEMA_VERSION); update the app")
            }
        }
        if (!(a.all { it.isFinite() } && b.all { it.isFinite() })) throw PeelException("$what: peel weights are not finite")
        val rankText =
            meta["rank"] ?: throw PeelException("$what: metadata has no rank; export it again with `banana peel export --bundle`")
        val rank =
            rankText.trim().toIntOrNull()?.takeIf { it >= 1 }
                ?: throw PeelException("$what: metadata rank '$rankText' is not a positive integer")
        return RuntimePeel(
            meta["name"] ?: File(what).name.removeSuffix(SUFFIX),
            meta["base_hash"] ?: "",
            meta["base_model"] ?: "",
            rank,
            a,
            b,
            meta["slots"]?.let { slotNames(it, what) },
        )
    }

    /** Keys of the LoRA files `banana peel export` imports on the host (banana_sdk/peels/diffusers_lora.py). */
    private val LORA_KEY = Regex("\\.lora_[AB]\\.|\\.lora\\.(down|up)\\.|_lora\\.(down|up)\\.|\\.lora_(down|up)\\.")

    /** The metadata `slots` text: a JSON list of layer names (`json.loads` in device.py), else [PeelException]. */
    private fun slotNames(
        text: String,
        what: String,
    ): List<String> {
        val value =
            try {
                Json.parse(text)
            } catch (e: JsonSyntaxException) {
                null
            }
        val names = (value as? JsonArray)?.items?.map { (it as? JsonString)?.value }
        if (names == null || null in names) {
            throw PeelException(
                "$what: metadata slots is not a JSON list of layer names; export it again with `banana peel export --bundle`",
            )
        }
        return names.filterNotNull()
    }

    private fun flat(
        file: SafetensorsFile,
        key: String,
        what: String,
    ): FloatArray {
        val t = file.tensors[key] ?: throw PeelException("$what is not a readable runtime peel (it holds no tensor $key)")
        if (t.shape.size != 1) throw PeelException("$what: $key must be a flat (1-D) tensor, got shape ${t.shape}")
        if (t.dtype != SafetensorsDType.I8) return t.data
        val scales =
            file.tensors["$key.scale"]
                ?: throw PeelException("$what is not a readable runtime peel (int8 tensor $key has no $key.scale)")
        val blocks = (t.data.size + INT8_BLOCK - 1) / INT8_BLOCK
        if (scales.dtype != SafetensorsDType.F16 || scales.shape != listOf(blocks)) {
            throw PeelException(
                "$what is not a readable runtime peel (int8 tensor of ${t.data.size} values needs $blocks F16 scales " +
                    "(one per $INT8_BLOCK), got ${scales.dtype} ${scales.shape})",
            )
        }
        return FloatArray(t.data.size) { k -> t.data[k] * scales.data[k / INT8_BLOCK] }
    }

    /**
     * "path[:weight]" -> (path, weight), as `banana_sdk.peels.commands.parse_weighted`: the weight follows the
     * last ':'; without one (or with nothing before it) the whole text is the path and the weight is 1.
     */
    fun parseWeighted(spec: String): Pair<String, Double> {
        val colon = spec.lastIndexOf(':')
        if (colon <= 0) return spec to 1.0
        val weight =
            parsePythonFloat(spec.substring(colon + 1))
                ?: throw PeelException("peel weight in '$spec' is not a number (use PATH:0.8)")
        return spec.substring(0, colon) to weight
    }

    /** The runner extra `peels`: "path:weight,path:weight" (weight optional, default 1) -> (path, float32 weight). */
    fun parseList(spec: String): List<Pair<String, Float>> =
        spec.split(',').map { it.trim() }.filter { it.isNotEmpty() }.map { item ->
            val (path, weight) = parseWeighted(item)
            path to weight.toFloat()
        }

    private val PYTHON_FLOAT =
        Regex("[+-]?(?:(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", RegexOption.IGNORE_CASE)

    /** Python's float(text) for the forms people type (no digit-group underscores); null where Python refuses. */
    private fun parsePythonFloat(text: String): Double? {
        val t = text.trim()
        if (!PYTHON_FLOAT.matches(t)) return null
        val body = t.trimStart('+', '-').lowercase()
        val negative = t.startsWith('-')
        return when (body) {
            "inf", "infinity" -> if (negative) Double.NEGATIVE_INFINITY else Double.POSITIVE_INFINITY
            "nan" -> Double.NaN
            else -> t.toDouble()
        }
    }
}

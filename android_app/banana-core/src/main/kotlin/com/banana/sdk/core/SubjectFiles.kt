package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.json.JsonSyntaxException
import com.banana.sdk.core.json.JsonValue
import java.io.File
import java.io.IOException
import kotlin.math.abs

/**
 * Reads subject files `<name>.subject.json` (docs/DESIGN.md §7) with the checks of
 * `banana_sdk.subjects.store.read_subject`, in the same order and with the same messages:
 * `{"format": "banana-subject", "schema_version": 1, "name", "source": "references" | "embedding" | "encoder",
 *   "encoder": {"kind": "colour-silhouette", "version": 1, ...}, "width", "token": [width floats], ...}`;
 * source "encoder" (`banana subject add NAME --image ... --model M`) has
 * `"encoder": {"kind": "learned", "version": 1, "reference_size": 128, "model": "<M's weights sha256>"}`.
 */
object SubjectFiles {
    const val FORMAT = "banana-subject"
    const val SCHEMA_VERSION = 1
    const val SUFFIX = ".subject.json"
    const val ENCODER_KIND = "colour-silhouette"
    const val ENCODER_VERSION = 1
    const val LEARNED_KIND = "learned" // `encoder.kind` of a subject made by a model's own learned reference encoder
    const val LEARNED_VERSION = 1
    const val MAX_TOKEN_ABS = 1.0e3 // a larger token entry means a corrupt or foreign file
    private val NAME = Regex("[a-z][a-z0-9]{0,31}") // one tokenizer word
    private val RESERVED = setOf("and") // phrase separators cannot name a subject
    private val SHA256 = Regex("[0-9a-f]{64}") // `encoder.model`: a model's weights sha256

    /** [name] if it can name a subject (one lower-case word, not "and"), else [SubjectException]. */
    fun checkName(name: String): String {
        if (!NAME.matches(name) || name in RESERVED) {
            throw SubjectException(
                "subject name '$name' must be one lower-case word of ASCII letters and digits " +
                    "(starting with a letter, at most 32 characters, not 'and')",
            )
        }
        return name
    }

    /** Reads and validates the subject file at [file]. */
    fun read(file: File): Subject {
        if (!file.isFile) throw SubjectException("subject file '${file.path}' does not exist")
        val text =
            try {
                file.readText(Charsets.UTF_8)
            } catch (e: IOException) {
                throw SubjectException("subject file $file is unreadable (${e.message})", e)
            }
        return parse(text, file.path)
    }

    /** Parses subject file text; [what] names the file in messages. */
    fun parse(
        text: String,
        what: String,
    ): Subject {
        val meta =
            try {
                Json.parse(text)
            } catch (e: JsonSyntaxException) {
                throw SubjectException("subject file $what is not valid JSON (${e.message})", e)
            }
        if (meta !is JsonObject || (meta["format"] as? JsonString)?.value != FORMAT) {
            throw SubjectException("$what is not a $FORMAT file")
        }
        val version = (meta["schema_version"] as? JsonNumber)?.toLongOrNull()
        if (version == null || version > SCHEMA_VERSION) {
            throw SubjectException("$what has schema_version ${show(meta["schema_version"])}; upgrade the app")
        }
        val source = (meta["source"] as? JsonString)?.value
        val encoder = header(meta["encoder"], what)
        val encoderKind = (encoder?.get("kind") as? JsonString)?.value
        val encoderVersion = (encoder?.get("version") as? JsonNumber)?.toLongOrNull()
        val shown = encoder?.let { Json.write(it, null) } ?: "{}"
        if (source == SubjectSource.REFERENCES.id && !(encoderKind == ENCODER_KIND && encoderVersion == ENCODER_VERSION.toLong())) {
            throw SubjectException("$what was made by reference encoder $shown; re-add the subject from its images")
        }
        val model = (encoder?.get("model") as? JsonString)?.value
        if (source == SubjectSource.ENCODER.id &&
            !(encoderKind == LEARNED_KIND && encoderVersion == LEARNED_VERSION.toLong() && model != null && SHA256.matches(model))
        ) {
            throw SubjectException(
                "$what was made by reference encoder $shown; re-add the subject from its images " +
                    "with `banana subject add NAME --image ... --model M`",
            )
        }
        val token = token(meta["token"], what)
        val nameValue = meta["name"] ?: throw SubjectException("$what is incomplete ('name')")
        val name = checkName((nameValue as? JsonString)?.value ?: throw SubjectException("$what is incomplete (name must be a string)"))
        val sourceValue = source ?: meta["source"]?.let { show(it) } ?: throw SubjectException("$what is incomplete ('source')")
        val width = (meta["width"] as? JsonNumber)?.toLongOrNull()
        val kind = SubjectSource.parse(sourceValue)
        if (width != token.size.toLong() || kind == null) {
            throw SubjectException(
                "$what: token of ${token.size} values, width ${show(meta["width"])} and source '$sourceValue' do not agree",
            )
        }
        if (token.any { !it.isFinite() || abs(it) > MAX_TOKEN_ABS }) {
            throw SubjectException("$what: token values are non-finite or larger than $MAX_TOKEN_ABS")
        }
        return Subject(name, token, kind, if (kind == SubjectSource.ENCODER) model else null)
    }

    /**
     * The `encoder` header: `meta.get("encoder") or {}` (absent or a falsy value: null, false, 0, "", [] read as no
     * header), else it must be an object (`'encoder' must be an object, got str` with Python's type name).
     * Its `version` counts only as a JSON integer (`_is_int`: not 1.0, not true), which [JsonNumber.toLongOrNull] gives.
     */
    private fun header(
        value: JsonValue?,
        what: String,
    ): JsonObject? {
        val falsy =
            when (value) {
                null, JsonNull -> true
                is JsonBool -> !value.value
                is JsonNumber -> value.toDouble() == 0.0
                is JsonString -> value.value.isEmpty()
                is JsonArray -> value.items.isEmpty()
                is JsonObject -> value.fields.isEmpty()
            }
        if (falsy) return null
        if (value is JsonObject) return value
        val type =
            when (value) {
                is JsonString -> "str"
                is JsonArray -> "list"
                is JsonBool -> "bool"
                is JsonNumber -> if (value.isInteger) "int" else "float"
                else -> "dict"
            }
        throw SubjectException("$what: 'encoder' must be an object, got $type")
    }

    private fun token(
        value: JsonValue?,
        what: String,
    ): FloatArray {
        if (value == null) throw SubjectException("$what is incomplete ('token')")
        val items = (value as? JsonArray)?.items ?: throw SubjectException("$what is incomplete (token must be an array of numbers)")
        return FloatArray(items.size) { i ->
            (items[i] as? JsonNumber)?.toDouble()?.toFloat()
                ?: throw SubjectException("$what is incomplete (token[$i] is not a number)")
        }
    }

    private fun show(value: JsonValue?): String =
        when (value) {
            null -> "None"
            is JsonString -> value.value
            else -> Json.write(value, null)
        }
}

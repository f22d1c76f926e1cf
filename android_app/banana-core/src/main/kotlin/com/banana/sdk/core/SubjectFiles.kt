package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
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
 * `{"format": "banana-subject", "schema_version": 1, "name", "source": "references" | "embedding",
 *   "encoder": {"kind": "colour-silhouette", "version": 1, ...}, "width", "token": [width floats], ...}`.
 */
object SubjectFiles {
    const val FORMAT = "banana-subject"
    const val SCHEMA_VERSION = 1
    const val SUFFIX = ".subject.json"
    const val ENCODER_KIND = "colour-silhouette"
    const val ENCODER_VERSION = 1
    const val MAX_TOKEN_ABS = 1.0e3 // a larger token entry means a corrupt or foreign file
    private val NAME = Regex("[a-z][a-z0-9]{0,31}") // one tokenizer word
    private val RESERVED = setOf("and") // phrase separators cannot name a subject

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
        val encoder = meta["encoder"] as? JsonObject
        val kindKnown = (encoder?.get("kind") as? JsonString)?.value == ENCODER_KIND
        val versionKnown = (encoder?.get("version") as? JsonNumber)?.toLongOrNull() == ENCODER_VERSION.toLong()
        if (source == SubjectSource.REFERENCES.id && !(kindKnown && versionKnown)) {
            throw SubjectException(
                "$what was made by reference encoder ${encoder?.let { Json.write(it, null) } ?: "{}"}; re-add the subject from its images",
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
        return Subject(name, token, kind)
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

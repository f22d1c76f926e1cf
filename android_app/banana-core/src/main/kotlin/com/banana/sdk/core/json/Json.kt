package com.banana.sdk.core.json

/**
 * A small strict JSON reader/writer (RFC 8259) for manifests, peels and run results.
 *
 * Plain Kotlin so the same code runs on the JVM tests and on the phone (no org.json, which the
 * plain JVM lacks). Numbers keep their source text, so 64-bit seeds and float64 schedule values
 * round-trip exactly. Duplicate keys: the last one wins (as Python's json module does).
 */
sealed interface JsonValue

data class JsonObject(
    val fields: Map<String, JsonValue>,
) : JsonValue {
    operator fun get(key: String): JsonValue? = fields[key]
}

data class JsonArray(
    val items: List<JsonValue>,
) : JsonValue

data class JsonString(
    val value: String,
) : JsonValue

/** A number as written; [text] follows the JSON number grammar. */
data class JsonNumber(
    val text: String,
) : JsonValue {
    /** True when the literal has no fraction or exponent. */
    val isInteger: Boolean get() = text.none { it == '.' || it == 'e' || it == 'E' }

    fun toDouble(): Double = text.toDouble()

    /** The exact value when the literal is an integer that fits a Long, else null. */
    fun toLongOrNull(): Long? = if (isInteger) text.toLongOrNull() else null

    companion object {
        fun of(value: Long): JsonNumber = JsonNumber(value.toString())

        fun of(value: Int): JsonNumber = JsonNumber(value.toString())

        /** Finite doubles only; callers map NaN/infinity to [JsonNull]. */
        fun of(value: Double): JsonNumber {
            require(value.isFinite()) { "JSON has no NaN or infinity" }
            return JsonNumber(value.toString())
        }
    }
}

data class JsonBool(
    val value: Boolean,
) : JsonValue

data object JsonNull : JsonValue

/** Malformed JSON text; [offset] is the character index where reading stopped. */
class JsonSyntaxException(
    message: String,
    val offset: Int,
) : Exception("$message at character $offset")

object Json {
    /** Deepest nesting accepted; protects the stack from hostile input. */
    const val MAX_DEPTH = 64

    fun parse(text: String): JsonValue = Parser(text).parseDocument()

    /** Serialises [value]; [indent] spaces per level, or compact when null. */
    fun write(
        value: JsonValue,
        indent: Int? = 2,
    ): String = StringBuilder().also { Writer(it, indent).write(value, 0) }.toString()

    fun string(value: String?): JsonValue = if (value == null) JsonNull else JsonString(value)

    fun number(value: Double?): JsonValue = if (value == null || !value.isFinite()) JsonNull else JsonNumber.of(value)

    fun obj(vararg pairs: Pair<String, JsonValue>): JsonObject = JsonObject(linkedMapOf(*pairs))
}

private class Parser(
    private val s: String,
) {
    private var i = 0

    fun parseDocument(): JsonValue {
        skipSpace()
        val value = parseValue(0)
        skipSpace()
        if (i != s.length) fail("unexpected text after the JSON value")
        return value
    }

    private fun fail(message: String): Nothing = throw JsonSyntaxException(message, i)

    private fun skipSpace() {
        while (i < s.length && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++
    }

    private fun parseValue(depth: Int): JsonValue {
        if (depth > Json.MAX_DEPTH) fail("nesting deeper than ${Json.MAX_DEPTH}")
        if (i >= s.length) fail("unexpected end of text")
        return when (val c = s[i]) {
            '{' -> parseObject(depth)
            '[' -> parseArray(depth)
            '"' -> JsonString(parseString())
            't' -> literal("true", JsonBool(true))
            'f' -> literal("false", JsonBool(false))
            'n' -> literal("null", JsonNull)
            else -> if (c == '-' || c in '0'..'9') parseNumber() else fail("unexpected character '$c'")
        }
    }

    private fun literal(
        word: String,
        value: JsonValue,
    ): JsonValue {
        if (!s.startsWith(word, i)) fail("invalid literal")
        i += word.length
        return value
    }

    private fun parseObject(depth: Int): JsonObject {
        i++ // '{'
        val fields = LinkedHashMap<String, JsonValue>()
        skipSpace()
        if (i < s.length && s[i] == '}') {
            i++
            return JsonObject(fields)
        }
        while (true) {
            skipSpace()
            if (i >= s.length || s[i] != '"') fail("expected a quoted key")
            val key = parseString()
            skipSpace()
            if (i >= s.length || s[i] != ':') fail("expected ':' after a key")
            i++
            skipSpace()
            fields[key] = parseValue(depth + 1)
            skipSpace()
            if (i >= s.length) fail("unterminated object")
            when (s[i++]) {
                ',' -> {
                    continue
                }

                '}' -> {
                    return JsonObject(fields)
                }

                else -> {
                    i--
                    fail("expected ',' or '}'")
                }
            }
        }
    }

    private fun parseArray(depth: Int): JsonArray {
        i++ // '['
        val items = ArrayList<JsonValue>()
        skipSpace()
        if (i < s.length && s[i] == ']') {
            i++
            return JsonArray(items)
        }
        while (true) {
            skipSpace()
            items.add(parseValue(depth + 1))
            skipSpace()
            if (i >= s.length) fail("unterminated array")
            when (s[i++]) {
                ',' -> {
                    continue
                }

                ']' -> {
                    return JsonArray(items)
                }

                else -> {
                    i--
                    fail("expected ',' or ']'")
                }
            }
        }
    }

    private fun parseString(): String {
        i++ // opening quote
        val out = StringBuilder()
        while (true) {
            if (i >= s.length) fail("unterminated string")
            val c = s[i++]
            when {
                c == '"' -> {
                    return out.toString()
                }

                c == '\\' -> {
                    out.append(parseEscape())
                }

                c < ' ' -> {
                    i--
                    fail("control character in a string")
                }

                else -> {
                    out.append(c)
                }
            }
        }
    }

    private fun parseEscape(): Char {
        if (i >= s.length) fail("unterminated escape")
        return when (val e = s[i++]) {
            '"' -> {
                '"'
            }

            '\\' -> {
                '\\'
            }

            '/' -> {
                '/'
            }

            'b' -> {
                '\b'
            }

            'f' -> {
                '\u000c'
            }

            'n' -> {
                '\n'
            }

            'r' -> {
                '\r'
            }

            't' -> {
                '\t'
            }

            'u' -> {
                if (i + 4 > s.length) fail("short \\u escape")
                val hex = s.substring(i, i + 4)
                if (!hex.all { it in '0'..'9' || it in 'a'..'f' || it in 'A'..'F' }) fail("bad \\u escape")
                i += 4
                hex.toInt(16).toChar()
            }

            else -> {
                i--
                fail("unknown escape '\\$e'")
            }
        }
    }

    private fun parseNumber(): JsonNumber {
        val start = i
        if (s[i] == '-') i++
        when {
            i < s.length && s[i] == '0' -> i++
            i < s.length && s[i] in '1'..'9' -> while (i < s.length && s[i] in '0'..'9') i++
            else -> fail("bad number")
        }
        if (i < s.length && s[i] == '.') {
            i++
            if (i >= s.length || s[i] !in '0'..'9') fail("bad fraction")
            while (i < s.length && s[i] in '0'..'9') i++
        }
        if (i < s.length && (s[i] == 'e' || s[i] == 'E')) {
            i++
            if (i < s.length && (s[i] == '+' || s[i] == '-')) i++
            if (i >= s.length || s[i] !in '0'..'9') fail("bad exponent")
            while (i < s.length && s[i] in '0'..'9') i++
        }
        return JsonNumber(s.substring(start, i))
    }
}

private class Writer(
    private val out: StringBuilder,
    private val indent: Int?,
) {
    fun write(
        value: JsonValue,
        level: Int,
    ) {
        when (value) {
            is JsonNull -> {
                out.append("null")
            }

            is JsonBool -> {
                out.append(value.value)
            }

            is JsonNumber -> {
                out.append(value.text)
            }

            is JsonString -> {
                quote(value.value)
            }

            is JsonArray -> {
                container('[', ']', value.items, level) { item -> write(item, level + 1) }
            }

            is JsonObject -> {
                container('{', '}', value.fields.entries.toList(), level) { (key, item) ->
                    quote(key)
                    out.append(if (indent == null) ":" else ": ")
                    write(item, level + 1)
                }
            }
        }
    }

    private fun <T> container(
        open: Char,
        close: Char,
        items: List<T>,
        level: Int,
        each: (T) -> Unit,
    ) {
        out.append(open)
        items.forEachIndexed { n, item ->
            if (n > 0) out.append(',')
            newline(level + 1)
            each(item)
        }
        if (items.isNotEmpty()) newline(level)
        out.append(close)
    }

    private fun newline(level: Int) {
        if (indent == null) return
        out.append('\n')
        repeat(level * indent) { out.append(' ') }
    }

    private fun quote(text: String) {
        out.append('"')
        for (c in text) {
            when {
                c == '"' -> out.append("\\\"")
                c == '\\' -> out.append("\\\\")
                c == '\n' -> out.append("\\n")
                c == '\r' -> out.append("\\r")
                c == '\t' -> out.append("\\t")
                c < ' ' -> out.append("\\u").append(c.code.toString(16).padStart(4, '0'))
                else -> out.append(c)
            }
        }
        out.append('"')
    }
}

package com.banana.sdk.core.json

/**
 * Typed, path-aware reads from a JSON object: every failure names the full field path
 * (`image.size must be an integer, got string "64"`) through [fail], which throws the caller's
 * own exception type.
 */
class JsonFields(
    val obj: JsonObject,
    val path: String,
    private val fail: (String) -> Nothing,
) {
    fun has(key: String): Boolean = obj[key] != null && obj[key] !is JsonNull

    fun child(key: String): String = if (path.isEmpty()) key else "$path.$key"

    private fun required(key: String): JsonValue = obj[key]?.takeUnless { it is JsonNull } ?: fail("missing field ${child(key)}")

    fun string(key: String): String = asString(required(key), child(key))

    fun optionalString(key: String): String? = if (has(key)) string(key) else null

    fun int(key: String): Int = asInt(required(key), child(key), fail)

    fun optionalInt(key: String): Int? = if (has(key)) int(key) else null

    fun long(key: String): Long = asLong(required(key), child(key), fail)

    fun double(key: String): Double {
        val value = required(key)
        return (value as? JsonNumber)?.toDouble() ?: fail("${child(key)} must be a number, got ${describe(value)}")
    }

    fun boolean(key: String): Boolean {
        val value = required(key)
        return (value as? JsonBool)?.value ?: fail("${child(key)} must be true or false, got ${describe(value)}")
    }

    fun obj(key: String): JsonFields {
        val value = required(key)
        val o = value as? JsonObject ?: fail("${child(key)} must be an object, got ${describe(value)}")
        return JsonFields(o, child(key), fail)
    }

    fun optionalObj(key: String): JsonFields? = if (has(key)) obj(key) else null

    fun array(key: String): List<JsonValue> {
        val value = required(key)
        return (value as? JsonArray)?.items ?: fail("${child(key)} must be an array, got ${describe(value)}")
    }

    fun optionalArray(key: String): List<JsonValue>? = if (has(key)) array(key) else null

    fun ints(key: String): List<Int> = array(key).mapIndexed { n, v -> asInt(v, "${child(key)}[$n]", fail) }

    fun strings(key: String): List<String> = array(key).mapIndexed { n, v -> asString(v, "${child(key)}[$n]") }

    /** Each element of array [key] as an object. */
    fun objects(key: String): List<JsonFields> =
        array(key).mapIndexed { n, v ->
            JsonFields(v as? JsonObject ?: fail("${child(key)}[$n] must be an object"), "${child(key)}[$n]", fail)
        }

    private fun asString(
        value: JsonValue,
        where: String,
    ): String = (value as? JsonString)?.value ?: fail("$where must be a string, got ${describe(value)}")

    companion object {
        fun describe(value: JsonValue): String =
            when (value) {
                is JsonString -> "string \"${value.value.take(40)}\""
                is JsonNumber -> "number ${value.text}"
                is JsonBool -> "boolean ${value.value}"
                is JsonArray -> "an array"
                is JsonObject -> "an object"
                JsonNull -> "null"
            }

        fun asLong(
            value: JsonValue,
            where: String,
            fail: (String) -> Nothing,
        ): Long = (value as? JsonNumber)?.toLongOrNull() ?: fail("$where must be an integer, got ${describe(value)}")

        fun asInt(
            value: JsonValue,
            where: String,
            fail: (String) -> Nothing,
        ): Int {
            val long = asLong(value, where, fail)
            if (long < Int.MIN_VALUE || long > Int.MAX_VALUE) fail("$where is out of range: $long")
            return long.toInt()
        }
    }
}

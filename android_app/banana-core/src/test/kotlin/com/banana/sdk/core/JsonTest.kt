package com.banana.sdk.core

import com.banana.sdk.core.json.Json
import com.banana.sdk.core.json.JsonArray
import com.banana.sdk.core.json.JsonBool
import com.banana.sdk.core.json.JsonNull
import com.banana.sdk.core.json.JsonNumber
import com.banana.sdk.core.json.JsonObject
import com.banana.sdk.core.json.JsonString
import com.banana.sdk.core.json.JsonSyntaxException
import org.junit.Assert.assertEquals
import org.junit.Assert.assertThrows
import org.junit.Assert.assertTrue
import org.junit.Test

class JsonTest {
    @Test
    fun parsesEveryKindOfValue() {
        val v = Json.parse(""" {"a": [1, -2.5e3, true, false, null], "b": {"c": "x\"y\\z\n\u00e9\ud83c\udf4c"}} """).obj()
        assertEquals(listOf(JsonNumber("1"), JsonNumber("-2.5e3"), JsonBool(true), JsonBool(false), JsonNull), v["a"].arr())
        assertEquals("x\"y\\z\n\u00e9\uD83C\uDF4C", v["b"].obj()["c"].str())
        assertEquals(-2500.0, v["a"].arr()[1].double(), 0.0)
    }

    @Test
    fun keepsLargeIntegersAndDoublesExact() {
        val v = Json.parse("[9223372036854775807, 0.1, 0.30000000000000004]").arr()
        assertEquals(Long.MAX_VALUE, v[0].long())
        assertEquals(0.30000000000000004, v[2].double(), 0.0)
        assertEquals(null, JsonNumber("1.5").toLongOrNull())
        assertEquals(null, JsonNumber("9223372036854775808").toLongOrNull())
    }

    @Test
    fun writeThenParseRoundTrips() {
        val doc =
            Json.obj(
                "s" to JsonString("tab\tquote\"ctl\u0001 \uD83C\uDF4C"),
                "n" to JsonNumber.of(1.0E-7),
                "l" to JsonNumber.of(Long.MIN_VALUE),
                "a" to JsonArray(listOf(JsonNull, JsonBool(true), JsonObject(emptyMap()), JsonArray(emptyList()))),
            )
        for (indent in listOf(null, 2)) assertEquals(doc, Json.parse(Json.write(doc, indent)))
        assertEquals("""{"k":[1,"v"]}""", Json.write(Json.obj("k" to JsonArray(listOf(JsonNumber("1"), JsonString("v")))), null))
    }

    @Test
    fun duplicateKeysKeepTheLast() {
        assertEquals(2, Json.parse("""{"a": 1, "a": 2}""").obj()["a"].int())
    }

    @Test
    fun rejectsMalformedText() {
        val bad =
            listOf(
                "",
                "{",
                "[1,]",
                "{\"a\":1,}",
                "{'a':1}",
                "01",
                "1.",
                "-",
                "1e",
                "tru",
                "\"a\nb\"",
                "\"\\x\"",
                "\"\\u12\"",
                "[1] 2",
                "{\"a\" 1}",
                "NaN",
                "[".repeat(Json.MAX_DEPTH + 2),
            )
        for (text in bad) {
            val e = assertThrows("should reject <$text>", JsonSyntaxException::class.java) { Json.parse(text) }
            assertTrue(e.message!!.contains("at character"))
        }
    }

    @Test
    fun nonFiniteNumbersBecomeNull() {
        assertEquals(JsonNull, Json.number(Double.NaN))
        assertEquals(JsonNull, Json.number(Double.POSITIVE_INFINITY))
        assertEquals(JsonNumber("2.5"), Json.number(2.5))
    }
}

package org.ondevice.json

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class JsonTest {
    @Test
    fun `parses every kind of value`() {
        val doc = JsonValue.parse(""" { "a": [1, -2.5e3, true, false, null, "x"], "b": {}, "c": [] } """)
        val obj = doc.asObject("doc")
        assertEquals(listOf("a", "b", "c"), obj.keys.toList())
        val a = obj.required("a", "doc").asArray("a")
        assertEquals(1L, a[0].asLong("a[0]"))
        assertEquals(-2500.0, a[1].asDouble("a[1]"))
        assertEquals(listOf(true, false), listOf(a[2].asBoolean("a[2]"), a[3].asBoolean("a[3]")))
        assertEquals(JsonNull, a[4])
        assertEquals("x", a[5].asString("a[5]"))
        assertEquals(JsonObject(emptyMap()), obj["b"])
        assertEquals(JsonArray(emptyList()), obj["c"])
    }

    @Test
    fun `decodes escapes and surrogate pairs`() {
        val s = JsonValue.parse(""""q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00"""").asString("s")
        assertEquals("q\" b\\ s/ \b\u000c\n\r\t \u00e9 \ud83d\ude00", s)
        assertEquals("\uD83D\uDE00".codePointAt(0), s.codePointAt(s.length - 2))
    }

    @Test
    fun `numbers parse to the correctly rounded double and integers stay exact`() {
        val cases = mapOf(
            "0.1" to 0.1,
            "-0" to -0.0,
            "1e-3" to 0.001,
            "1E+2" to 100.0,
            "5e-324" to Double.MIN_VALUE,
            "1.7976931348623157e308" to Double.MAX_VALUE,
            "0.7999999999999999" to Math.nextDown(0.8),
            "193.38" to 193.38,
        )
        for ((text, expected) in cases) {
            assertEquals(expected.toRawBits(), JsonValue.parse(text).asDouble(text).toRawBits(), text)
        }
        assertEquals(17_580_000_000L, JsonValue.parse("17580000000").asLong("flops"))
        assertNull((JsonValue.parse("1.5") as JsonNumber).toLongOrNull())
        assertThrows(JsonException::class.java) { JsonValue.parse("1e3").asLong("n") }
    }

    @Test
    fun `written doubles read back bit for bit`() {
        val values = listOf(0.1, 1.0 / 3.0, 5801.4, Math.nextDown(0.15), Double.MIN_VALUE, 1e-7, 123456789.123, -0.0)
        for (x in values) {
            val text = JsonNumber.of(x).toJson()
            assertEquals(x.toRawBits(), JsonValue.parse(text).asDouble(text).toRawBits(), text)
        }
        assertThrows(IllegalArgumentException::class.java) { JsonNumber.of(Double.NaN) }
        assertThrows(IllegalArgumentException::class.java) { JsonNumber.of(Double.POSITIVE_INFINITY) }
    }

    @Test
    fun `writer output parses back to the same value, compact and indented`() {
        val value = jsonObject(
            "name" to JsonString("tab\t quote\" nl\n ctl\u0001 \u00e9"),
            "list" to JsonArray(listOf(JsonNumber.of(1.5), JsonNull, JsonBoolean(true), JsonArray(emptyList()))),
            "empty" to JsonObject(emptyMap()),
        )
        for (indent in listOf(0, 2)) assertEquals(value, JsonValue.parse(value.toJson(indent)))
        assertTrue(value.toJson(2).contains("\n  \"list\": [\n    1.5,"))
        assertTrue(value.toJson().contains("\\u0001"))
    }

    @Test
    fun `refuses what is not strict JSON, saying where`() {
        val bad = listOf(
            "NaN", "Infinity", "-Infinity", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "+1", "'a'", "[1] // c",
            "{\"a\":1,\"a\":2}", "\"open", "\"a\u0001\"", "[1] 2", "", "tru", "{1:2}", "\"\\x\"", "\"\\u12G4\"",
        )
        for (text in bad) assertThrows(JsonException::class.java, { JsonValue.parse(text) }, text)
        val error = assertThrows(JsonException::class.java) { JsonValue.parse("{\n  \"a\": [1,\n  ]\n}", "f.json") }
        assertEquals("f.json: not valid JSON at line 3, column 3: unexpected ']', expected a value", error.message)
        assertThrows(JsonException::class.java) { JsonValue.parse("[".repeat(300) + "]".repeat(300)) }
    }

    @Test
    fun `typed access names the place and the value`() {
        val obj = JsonValue.parse("""{"x": "1", "n": null}""").asObject("f")
        val error = assertThrows(JsonException::class.java) { obj.required("x", "f").asDouble("f: x") }
        assertEquals("f: x: expected a number, got a string \"1\"", error.message)
        assertEquals("f: missing key \"y\"", assertThrows(JsonException::class.java) { obj.required("y", "f") }.message)
        assertNull(obj.optional("n"))
        assertNull(obj.optional("missing"))
        assertThrows(JsonException::class.java) { JsonValue.parse("3000000000").asInt("i") }
    }
}

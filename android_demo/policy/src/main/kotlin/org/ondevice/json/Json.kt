package org.ondevice.json

/**
 * A small, strict JSON (RFC 8259) reader and writer for the bundle's files, with no dependencies.
 *
 * The JVM has no JSON parser and Android's `org.json` is not on a plain JVM; this one is enough for
 * `manifest.json`, `policy.json`, the test vectors and the latency file. Numbers keep their text:
 * [JsonNumber.toDouble] parses it once with [String.toDouble] (correctly rounded, so every double
 * Python wrote comes back bit for bit) and [JsonNumber.toLong] keeps large integers such as FLOPs exact.
 * `NaN`, `Infinity`, comments, trailing commas and duplicate keys are refused.
 */
sealed class JsonValue {
    /** "an object", "a number", ...: what this value is, for error messages. */
    abstract val kind: String

    /** This value as JSON text; [indent] > 0 pretty-prints with that many spaces per level. */
    fun toJson(indent: Int = 0): String = StringBuilder().also { JsonWriter(it, indent).write(this, 0) }.toString()

    companion object {
        /** Parses one JSON document; [source] names it in errors ("manifest.json: ..."). */
        fun parse(text: String, source: String = "JSON"): JsonValue = JsonParser(text, source).document()
    }
}

class JsonObject(val members: Map<String, JsonValue>) : JsonValue() {
    override val kind: String get() = "an object"
    val keys: Set<String> get() = members.keys
    operator fun get(key: String): JsonValue? = members[key]
    operator fun contains(key: String): Boolean = key in members
    override fun equals(other: Any?): Boolean = other is JsonObject && other.members == members
    override fun hashCode(): Int = members.hashCode()
    override fun toString(): String = toJson()
}

class JsonArray(val items: List<JsonValue>) : JsonValue(), List<JsonValue> by items {
    override val kind: String get() = "an array"
    override fun equals(other: Any?): Boolean = other is JsonArray && other.items == items
    override fun hashCode(): Int = items.hashCode()
    override fun toString(): String = toJson()
}

data class JsonString(val value: String) : JsonValue() {
    override val kind: String get() = "a string"
}

/** A number as written; [text] follows the JSON grammar. */
data class JsonNumber(val text: String) : JsonValue() {
    override val kind: String get() = "a number"

    fun toDouble(): Double = text.toDouble()

    /** The exact integer, or null when the text is not an integer (has a fraction or exponent, or overflows). */
    fun toLongOrNull(): Long? = text.toLongOrNull()

    companion object {
        /** A finite double, written so that it parses back to the same bits. */
        fun of(value: Double): JsonNumber {
            require(value.isFinite()) { "JSON has no NaN or infinity, got $value" }
            return JsonNumber(value.toString())
        }

        fun of(value: Long): JsonNumber = JsonNumber(value.toString())
    }
}

data class JsonBoolean(val value: Boolean) : JsonValue() {
    override val kind: String get() = "a boolean"
}

data object JsonNull : JsonValue() {
    override val kind: String get() = "null"
}

/** A document that is not JSON, or JSON that does not have the expected shape; the message says where. */
class JsonException(message: String) : IllegalArgumentException(message)

// ---------------------------------------------------------------------------------------------------
// Typed access with errors that name the place ("policy.json: thermal.energy[2]: expected a number, got null").

fun JsonValue.asObject(where: String): JsonObject = this as? JsonObject ?: mismatch(where, "an object")

fun JsonValue.asArray(where: String): JsonArray = this as? JsonArray ?: mismatch(where, "an array")

fun JsonValue.asString(where: String): String = (this as? JsonString)?.value ?: mismatch(where, "a string")

fun JsonValue.asBoolean(where: String): Boolean = (this as? JsonBoolean)?.value ?: mismatch(where, "true or false")

fun JsonValue.asDouble(where: String): Double = (this as? JsonNumber)?.toDouble() ?: mismatch(where, "a number")

fun JsonValue.asLong(where: String): Long =
    (this as? JsonNumber)?.toLongOrNull() ?: mismatch(where, "an integer")

fun JsonValue.asInt(where: String): Int {
    val value = asLong(where)
    if (value !in Int.MIN_VALUE..Int.MAX_VALUE) throw JsonException("$where: $value does not fit an Int")
    return value.toInt()
}

/** A member that must be present (its value may still be null). */
fun JsonObject.required(key: String, where: String): JsonValue =
    this[key] ?: throw JsonException("$where: missing key ${key.quoted()}")

/** A member that may be absent or null: both read as Kotlin null. */
fun JsonObject.optional(key: String): JsonValue? = this[key]?.takeUnless { it == JsonNull }

private fun JsonValue.mismatch(where: String, expected: String): Nothing =
    throw JsonException("$where: expected $expected, got ${if (this is JsonNull) "null" else "$kind ${toJson()}"}")

private fun String.quoted(): String = JsonString(this).toJson()

// ---------------------------------------------------------------------------------------------------

private class JsonParser(private val text: String, private val source: String) {
    private var pos = 0

    fun document(): JsonValue {
        val value = value(depth = 0)
        skipWhitespace()
        if (pos != text.length) fail("unexpected ${describe()} after the document")
        return value
    }

    private fun value(depth: Int): JsonValue {
        if (depth > MAX_DEPTH) fail("nested deeper than $MAX_DEPTH levels")
        skipWhitespace()
        if (pos >= text.length) fail("unexpected end of input, expected a value")
        return when (val c = text[pos]) {
            '{' -> obj(depth)
            '[' -> array(depth)
            '"' -> JsonString(string())
            't' -> literal("true", JsonBoolean(true))
            'f' -> literal("false", JsonBoolean(false))
            'n' -> literal("null", JsonNull)
            else -> if (c == '-' || c in '0'..'9') number() else fail("unexpected ${describe()}, expected a value")
        }
    }

    private fun obj(depth: Int): JsonObject {
        pos++ // {
        val members = LinkedHashMap<String, JsonValue>()
        skipWhitespace()
        if (peek() == '}') {
            pos++
            return JsonObject(members)
        }
        while (true) {
            skipWhitespace()
            if (peek() != '"') fail("unexpected ${describe()}, expected a key in double quotes")
            val keyAt = pos
            val key = string()
            if (key in members) fail("duplicate key ${text.substring(keyAt, pos)}", keyAt)
            skipWhitespace()
            expect(':')
            members[key] = value(depth + 1)
            skipWhitespace()
            when (peek()) {
                ',' -> pos++
                '}' -> {
                    pos++
                    return JsonObject(members)
                }
                else -> fail("unexpected ${describe()}, expected ',' or '}'")
            }
        }
    }

    private fun array(depth: Int): JsonArray {
        pos++ // [
        val items = ArrayList<JsonValue>()
        skipWhitespace()
        if (peek() == ']') {
            pos++
            return JsonArray(items)
        }
        while (true) {
            items += value(depth + 1)
            skipWhitespace()
            when (peek()) {
                ',' -> pos++
                ']' -> {
                    pos++
                    return JsonArray(items)
                }
                else -> fail("unexpected ${describe()}, expected ',' or ']'")
            }
        }
    }

    private fun string(): String {
        val start = pos
        pos++ // opening quote
        val out = StringBuilder()
        while (true) {
            if (pos >= text.length) fail("unterminated string", start)
            val c = text[pos++]
            when {
                c == '"' -> return out.toString()
                c == '\\' -> out.append(escape())
                c < ' ' -> fail("control character U+%04X in a string (escape it)".format(c.code), pos - 1)
                else -> out.append(c)
            }
        }
    }

    private fun escape(): Char {
        if (pos >= text.length) fail("unterminated escape")
        return when (val c = text[pos++]) {
            '"' -> '"'
            '\\' -> '\\'
            '/' -> '/'
            'b' -> '\b'
            'f' -> '\u000c'
            'n' -> '\n'
            'r' -> '\r'
            't' -> '\t'
            'u' -> {
                if (pos + 4 > text.length) fail("truncated \\u escape")
                val hex = text.substring(pos, pos + 4)
                if (!hex.all { it in '0'..'9' || it in 'a'..'f' || it in 'A'..'F' }) fail("bad \\u escape \\u$hex")
                pos += 4
                hex.toInt(16).toChar() // surrogate pairs arrive as two escapes, i.e. two UTF-16 units
            }
            else -> fail("unknown escape \\$c", pos - 2)
        }
    }

    private fun number(): JsonNumber {
        val start = pos
        if (peek() == '-') pos++
        when {
            peek() == '0' -> pos++
            peek() in '1'..'9' -> digits()
            else -> fail("bad number ${text.substring(start, minOf(pos + 1, text.length))}", start)
        }
        if (peek() == '.') {
            pos++
            if (peek() !in '0'..'9') fail("bad number: a digit must follow '.'", start)
            digits()
        }
        if (peek() == 'e' || peek() == 'E') {
            pos++
            if (peek() == '+' || peek() == '-') pos++
            if (peek() !in '0'..'9') fail("bad number: a digit must follow the exponent", start)
            digits()
        }
        return JsonNumber(text.substring(start, pos))
    }

    private fun digits() {
        while (peek() in '0'..'9') pos++
    }

    private fun literal(word: String, value: JsonValue): JsonValue {
        if (!text.startsWith(word, pos)) fail("unexpected ${describe()}, expected a value")
        pos += word.length
        return value
    }

    private fun expect(c: Char) {
        if (peek() != c) fail("unexpected ${describe()}, expected '$c'")
        pos++
    }

    private fun peek(): Char = if (pos < text.length) text[pos] else END

    private fun skipWhitespace() {
        while (pos < text.length && text[pos].let { it == ' ' || it == '\t' || it == '\n' || it == '\r' }) pos++
    }

    private fun describe(): String {
        if (pos >= text.length) return "end of input"
        val word = text.substring(pos).takeWhile { it.isLetterOrDigit() || it == '.' || it == '-' }.take(20)
        return if (word.isEmpty()) "'${text[pos]}'" else "'$word'"
    }

    private fun fail(message: String, at: Int = pos): Nothing {
        val before = text.substring(0, minOf(at, text.length))
        val line = before.count { it == '\n' } + 1
        val column = at - (before.lastIndexOf('\n') + 1) + 1
        throw JsonException("$source: not valid JSON at line $line, column $column: $message")
    }

    private companion object {
        const val MAX_DEPTH = 256
        const val END = '\u0000'
    }
}

private class JsonWriter(private val out: StringBuilder, private val indent: Int) {
    fun write(value: JsonValue, level: Int) {
        when (value) {
            is JsonObject -> block('{', '}', value.members.entries, level) { (key, member) ->
                string(key)
                out.append(if (indent > 0) ": " else ":")
                write(member, level + 1)
            }
            is JsonArray -> block('[', ']', value.items, level) { write(it, level + 1) }
            is JsonString -> string(value.value)
            is JsonNumber -> out.append(value.text)
            is JsonBoolean -> out.append(value.value)
            JsonNull -> out.append("null")
        }
    }

    private fun <T> block(open: Char, close: Char, items: Collection<T>, level: Int, item: (T) -> Unit) {
        out.append(open)
        if (items.isEmpty()) {
            out.append(close)
            return
        }
        items.forEachIndexed { i, it ->
            if (i > 0) out.append(',')
            newline(level + 1)
            item(it)
        }
        newline(level)
        out.append(close)
    }

    private fun newline(level: Int) {
        if (indent > 0) out.append('\n').append(" ".repeat(indent * level))
    }

    private fun string(s: String) {
        out.append('"')
        for (c in s) {
            when {
                c == '"' -> out.append("\\\"")
                c == '\\' -> out.append("\\\\")
                c == '\n' -> out.append("\\n")
                c == '\r' -> out.append("\\r")
                c == '\t' -> out.append("\\t")
                c < ' ' -> out.append("\\u%04x".format(c.code))
                else -> out.append(c)
            }
        }
        out.append('"')
    }
}

/** Builds a [JsonObject] in insertion order: `jsonObject("a" to JsonNumber.of(1.0))`. */
fun jsonObject(vararg members: Pair<String, JsonValue>): JsonObject = JsonObject(linkedMapOf(*members))

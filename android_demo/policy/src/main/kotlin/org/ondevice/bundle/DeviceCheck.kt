package org.ondevice.bundle

import kotlin.math.abs
import org.ondevice.json.JsonException
import org.ondevice.json.JsonValue
import org.ondevice.json.asArray
import org.ondevice.json.asDouble
import org.ondevice.json.asInt
import org.ondevice.json.asObject
import org.ondevice.json.asString
import org.ondevice.json.required

/**
 * `device_check.json` in a bundle (written by `ondevice export`, `ondevice/contract/device_check.py`): the logits
 * the exporting machine's ExecuTorch runtime gave for every sub-network on a fixed input, so that the first run on a
 * phone proves the program. The input needs no file: element `i` of the flattened NCHW input is
 * `float32((i * 7919 + 13) % 256) / 127.5 - 1` in float32 arithmetic ([input]); the file holds its first values
 * and its sum to check that first. A logit matches when `|got - expected| <= atol`.
 */
class DeviceCheck(
    val program: String,
    val shape: List<Int>,
    val head: List<Double>,
    val sum: Double,
    val atol: Double,
    val logits: Map<String, FloatArray>,
) {
    /** The check input for [shape]. */
    fun input(): FloatArray = input(shape.fold(1L) { a, b -> a * b }.toInt())

    /** Why [input] is not the input the file describes (first values, sum), or null when it is. */
    fun inputMismatch(input: FloatArray): String? {
        val first = input.take(head.size).map { it.toDouble() }
        if (first != head) return "the check input starts $first; $FILE_NAME says $head"
        val total = input.sumOf { it.toDouble() }
        return if (abs(total - sum) <= 1e-9 * maxOf(1.0, abs(sum))) null else "the check input sums to $total, not $sum"
    }

    /** Why [got] does not match the expected logits of [gates], or null when it does (NaN never matches). */
    fun mismatch(gates: String, got: FloatArray): String? {
        val expected = logits[gates] ?: return "$FILE_NAME has no logits for $gates"
        if (got.size != expected.size) return "$gates: ${got.size} logits, expected ${expected.size}"
        val errors = FloatArray(got.size) { abs(got[it] - expected[it]) }
        val worst = errors.indices.firstOrNull { errors[it].isNaN() } ?: errors.indices.maxBy { errors[it] }
        if (errors[worst] <= atol) return null
        return "$gates: logit $worst is ${got[worst]}, expected ${expected[worst]} (tolerance $atol)"
    }

    companion object {
        const val FILE_NAME = "device_check.json"
        const val FORMAT = "ondevice-device-check"
        const val VERSION = 1

        /** `float32((i * 7919 + 13) % 256) / 127.5 - 1` for `i` in `0 until size`, in float32 as Python computes it. */
        fun input(size: Int): FloatArray = FloatArray(size) { i -> ((i * 7919L + 13) % 256).toFloat() / 127.5f - 1f }

        fun parse(text: String, source: String = FILE_NAME): DeviceCheck {
            val root = JsonValue.parse(text, source).asObject(source)
            val format = root.required("format", source).asString("$source: format")
            val version = root.required("version", source).asInt("$source: version")
            if (format != FORMAT || version != VERSION) {
                throw JsonException("$source is \"$format\" version $version; this app reads \"$FORMAT\" $VERSION")
            }
            val input = root.required("input", source).asObject("$source: input")
            return DeviceCheck(
                program = root.required("program", source).asString("$source: program"),
                shape = input.required("shape", "$source: input").asArray("$source: input.shape")
                    .mapIndexed { i, v -> v.asInt("$source: input.shape[$i]") },
                head = input.required("head", "$source: input").asArray("$source: input.head")
                    .mapIndexed { i, v -> v.asDouble("$source: input.head[$i]") },
                sum = input.required("sum", "$source: input").asDouble("$source: input.sum"),
                atol = root.required("atol", source).asDouble("$source: atol"),
                logits = root.required("logits", source).asObject("$source: logits").members.mapValues { (g, v) ->
                    val where = "$source: logits.$g"
                    v.asArray(where).mapIndexed { i, x -> x.asDouble("$where[$i]").toFloat() }.toFloatArray()
                },
            )
        }
    }
}

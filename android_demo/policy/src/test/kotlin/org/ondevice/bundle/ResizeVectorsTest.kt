package org.ondevice.bundle

import java.io.File
import kotlin.math.abs
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestFactory
import org.ondevice.json.JsonObject
import org.ondevice.json.JsonValue
import org.ondevice.json.asArray
import org.ondevice.json.asDouble
import org.ondevice.json.asInt
import org.ondevice.json.asObject
import org.ondevice.json.asString
import org.ondevice.json.required

/**
 * Every case of `tests/resize_vectors.json` (torch's antialiased resize, written by tests/make_resize_vectors.py)
 * through the app's own preprocessing: pixels as packed ARGB at the image's size -> [ImageNormalizer]. Both the
 * values before normalization and the normalized ones must agree within the file's `tolerance` (absolute).
 *
 * The file is found through the system property `ondevice.resize_vectors`, the environment variable
 * `ONDEVICE_RESIZE_VECTORS`, or by walking up from the working directory to `tests/resize_vectors.json`.
 */
class ResizeVectorsTest {
    private val vectors: JsonObject = load()
    private val tolerance = vectors.required("tolerance", FILE).asDouble("tolerance")

    @TestFactory
    fun cases(): List<DynamicTest> = vectors.required("cases", FILE).asArray("cases").map {
        val case = it.asObject("case")
        dynamicTest("resize: ${case.required("name", FILE).asString("name")}") { check(case) }
    }

    @Test
    fun `the file's tolerance is tight enough to tell an antialiased resize from a plain one`() {
        assertTrue(tolerance in 0.0..1e-4, "tolerance $tolerance")
    }

    private fun check(case: JsonObject) {
        fun int(key: String) = case.required(key, FILE).asInt(key)
        fun doubles(key: String) = case.required(key, FILE).asArray(key).mapIndexed { i, v -> v.asDouble("$key[$i]") }
        val (channels, height, width) = Triple(int("channels"), int("height"), int("width"))
        val pixels = case.required("pixels", FILE).asArray("pixels").mapIndexed { i, v -> v.asInt("pixels[$i]") }
        assertEquals(channels * height * width, pixels.size, "pixels")
        val argb = IntArray(height * width) { i ->
            val rgb = if (channels == 1) List(3) { pixels[i] } else pixels.subList(3 * i, 3 * i + 3)
            (0xFF shl 24) or (rgb[0] shl 16) or (rgb[1] shl 8) or rgb[2] // gray as R = G = B: PIL's L gives it back
        }
        val shape = listOf(1, channels, int("out_height"), int("out_width"))
        val spec = InputSpec("image", shape, doubles("mean"), doubles("std"))
        val normalizer = ImageNormalizer(spec)
        assertClose(doubles("resized"), normalizer.resized(argb, width, height), "resized")
        assertClose(doubles("normalized"), normalizer.normalize(argb, width, height), "normalized")
    }

    private fun assertClose(expected: List<Double>, actual: FloatArray, what: String) {
        assertEquals(expected.size, actual.size, "$what: number of values")
        val worst = expected.indices.maxBy { abs(actual[it] - expected[it]) }
        val error = abs(actual[worst] - expected[worst])
        assertTrue(error <= tolerance) {
            "$what[$worst]: got ${actual[worst]}, torch ${expected[worst]} (|error| $error > $tolerance)"
        }
    }

    private companion object {
        const val FILE = "resize_vectors.json"

        fun load(): JsonObject {
            val file = System.getProperty("ondevice.resize_vectors")?.let(::File)
                ?: System.getenv("ONDEVICE_RESIZE_VECTORS")?.let(::File)
                ?: generateSequence(File("").absoluteFile) { it.parentFile }
                    .map { File(it, "tests/$FILE") }.firstOrNull { it.isFile }
                ?: error("tests/$FILE not found: pass -Dondevice.resize_vectors=PATH")
            return JsonValue.parse(file.readText(), file.path).asObject(file.path)
        }
    }
}

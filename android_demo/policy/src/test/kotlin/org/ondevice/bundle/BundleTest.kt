package org.ondevice.bundle

import java.io.File
import java.nio.file.Files
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.ondevice.json.JsonException
import org.ondevice.json.JsonObject
import org.ondevice.json.JsonValue
import org.ondevice.json.asArray
import org.ondevice.json.asObject
import org.ondevice.json.asString
import org.ondevice.policy.PolicyVectorsTest
import org.ondevice.power.PowerEstimate
import org.ondevice.power.PowerMethod

class BundleTest {
    private val vectors = PolicyVectorsTest.loadVectors()

    /** A manifest as `ondevice export` writes it: the vectors' sub-networks plus model, input and formats. */
    private fun manifestText(
        executorch: String = """{"file": "model.pte", "method": "forward", "inputs": ["image", "gates"],
            "gates_input": {"dtype": "int32", "shape": [4]}, "backend": "xnnpack"}""",
        version: Int = 1,
        shape: String = "[1, 3, 2, 2]",
    ): String {
        val policyPart = vectors["manifest"] as JsonObject
        val extra = JsonValue.parse(
            """{"manifest_version": $version,
            "model": {"name": "tiny", "num_classes": 2, "class_names": ["cat", "dog"]},
            "input": {"name": "image", "shape": $shape, "dtype": "float32", "layout": "NCHW",
                      "mean": [0.5, 0.25, 0.125], "std": [0.5, 0.5, 2.0]},
            "formats": {"executorch": $executorch}}""",
        ).asObject("extra")
        return JsonObject(extra.members + policyPart.members).toJson(indent = 2)
    }

    @Test
    fun `reads what the app needs from the manifest`() {
        val manifest = Manifest.parse(manifestText())
        assertEquals(listOf("cat", "dog"), manifest.classNames)
        val input = InputSpec("image", listOf(1, 3, 2, 2), listOf(0.5, 0.25, 0.125), listOf(0.5, 0.5, 2.0))
        assertEquals(input, manifest.input)
        val executorch = ExecutorchFormat("model.pte", "forward", listOf("image", "gates"), GateDType.INT32, "xnnpack")
        assertEquals(executorch, manifest.executorch)
        assertEquals(4, manifest.catalog.numStages)
        assertArrayEquals(intArrayOf(1, 0, 1, 0), manifest.gateValues("TFTF"))
        assertThrows(IllegalArgumentException::class.java) { manifest.gateValues("TFT") }
    }

    @Test
    fun `the backend comes from the manifest, and without one it is XNNPACK, what the exporter lowers to`() {
        val coreml = """{"file": "model.pte", "method": "forward", "inputs": ["image", "gates"],
            "gates_input": {"dtype": "int32", "shape": [4]}, "backend": "coreml"}"""
        assertEquals("coreml", Manifest.parse(manifestText(executorch = coreml)).executorch?.backend)
        val none = """{"file": "model.pte", "method": "forward", "inputs": ["image", "gates"],
            "gates_input": {"dtype": "int32", "shape": [4]}}"""
        val default = Manifest.parse(manifestText(executorch = none)).executorch?.backend
        assertEquals(ExecutorchFormat.DEFAULT_BACKEND, default)
        assertEquals("xnnpack", ExecutorchFormat.DEFAULT_BACKEND)
    }

    @Test
    fun `the benchmark times every sub-network the manifest lists, since the one program runs them all`() {
        val manifest = Manifest.parse(manifestText())
        val listed = (vectors["manifest"] as JsonObject)["subnets"]!!.asArray("subnets")
            .map { it.asObject("subnet")["gates"]!!.asString("gates") }
        assertEquals(listed, manifest.runnableGates())
        assertTrue(listed.size >= 4 && listed.toSet().size == listed.size)
        assertThrows(IllegalStateException::class.java) { manifest.copy(executorch = null).runnableGates() }
    }

    @Test
    fun `another version, an unknown gates dtype or a bad shape is refused`() {
        assertThrows(JsonException::class.java) { Manifest.parse(manifestText(version = 2)) }.also {
            assertTrue(it.message!!.contains("ondevice export"), it.message)
        }
        val float = """{"file": "m.pte", "method": "forward", "inputs": ["image", "gates"],
            "gates_input": {"dtype": "float32", "shape": [4]}}"""
        assertThrows(JsonException::class.java) { Manifest.parse(manifestText(executorch = float)) }
        assertThrows(JsonException::class.java) { Manifest.parse(manifestText(shape = "[3, 2, 2]")) }
    }

    @Test
    fun `a bundle directory loads manifest and policy, and says what is missing`() {
        val dir = Files.createTempDirectory("bundle").toFile()
        try {
            File(dir, "manifest.json").writeText(manifestText())
            assertThrows(java.io.FileNotFoundException::class.java) { Bundle.load(dir) }.also {
                assertTrue(it.message!!.contains("ondevice policy init"), it.message)
            }
            File(dir, "policy.json").writeText((vectors["policy"] as JsonObject).toJson())
            val bundle = Bundle.load(dir)
            assertEquals(File(dir, "model.pte"), bundle.programFile)
            assertEquals("FFFF", bundle.policy("example-phone").frontGates.last())
        } finally {
            dir.deleteRecursively()
        }
    }

    @Test
    fun `normalizes RGB with the manifest's mean and std, in float32`() {
        val spec = InputSpec("image", listOf(1, 3, 1, 2), listOf(0.5, 0.25, 0.125), listOf(0.5, 0.5, 2.0))
        val pixels = intArrayOf(0xFF_FF_00_80.toInt(), 0x00_00_FF_00)
        val out = ImageNormalizer(spec).normalize(pixels, width = 2, height = 1)
        val expected = floatArrayOf(
            (1f - 0.5f) / 0.5f, (0f - 0.5f) / 0.5f, // R plane
            (0f - 0.25f) / 0.5f, (1f - 0.25f) / 0.5f, // G plane
            (128f / 255f - 0.125f) / 2f, (0f - 0.125f) / 2f, // B plane
        )
        assertArrayEquals(expected, out)
        assertArrayEquals(longArrayOf(1, 3, 1, 2), ImageNormalizer(spec).shape)
        assertThrows(IllegalArgumentException::class.java) { ImageNormalizer(spec).normalize(IntArray(3), 2, 1) }
    }

    @Test
    fun `one channel gets PIL's luma`() {
        val spec = InputSpec("image", listOf(1, 1, 1, 3), listOf(0.0), listOf(1.0))
        val out = ImageNormalizer(spec).normalize(intArrayOf(0xFFFFFF, 0xFF0000, 0x123456), width = 3, height = 1)
        // PIL: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
        assertArrayEquals(floatArrayOf(255f / 255f, 76f / 255f, 46f / 255f), out)
    }

    @Test
    fun `latency statistics match ondevice profile`() {
        val stats = LatencyStats.of(listOf(4.0, 1.0, 3.0, 2.0))
        assertEquals(LatencyStats(2.5, 3.7, 1.0), stats.copy(p90Ms = Math.round(stats.p90Ms * 1e9) / 1e9))
        assertEquals(LatencyStats(7.0, 7.0, 7.0), LatencyStats.of(listOf(7.0)))
        assertThrows(IllegalArgumentException::class.java) { LatencyStats.of(emptyList()) }
    }

    @Test
    fun `measures interleaved, rotating the order each round`() {
        var now = 0L
        val order = mutableListOf<String>()
        val cost = mapOf("FF" to 3_000_000L, "TT" to 1_000_000L, "FT" to 2_000_000L)
        val stats = measureInterleaved(listOf("FF", "FT", "TT"), runs = 3, warmup = 1, clockNs = { now }) { g ->
            order += g
            now += cost.getValue(g)
        }
        assertEquals(listOf("FF", "FT", "TT", "FF", "FT", "TT", "FT", "TT", "FF", "TT", "FF", "FT"), order)
        assertEquals(LatencyStats(3.0, 3.0, 3.0), stats["FF"])
        assertEquals(LatencyStats(1.0, 1.0, 1.0), stats["TT"])
    }

    @Test
    fun `a timed run is the whole logits call, tensors and output included`() {
        var now = 0L
        val calls = mutableListOf<String>()
        // a fake program whose tensor creation, forward and output read each take time on the fake clock
        val program = LogitsProgram { input, gates ->
            calls += gates
            now += 1_000_000L // input tensors
            now += if (gates == "FF") 4_000_000L else 2_000_000L // forward
            now += 500_000L // reading the logits
            floatArrayOf(input[0], 1f)
        }
        val one = program.timed(floatArrayOf(7f), "FF", clockNs = { now })
        assertEquals(5.5, one.latencyMs)
        assertArrayEquals(floatArrayOf(7f, 1f), one.logits)
        val stats = program.measure(floatArrayOf(7f), listOf("FF", "TT"), runs = 2, warmup = 1, clockNs = { now })
        assertEquals(LatencyStats(5.5, 5.5, 5.5), stats["FF"])
        assertEquals(LatencyStats(3.5, 3.5, 3.5), stats["TT"])
        assertEquals(listOf("FF", "FF", "TT", "FF", "TT", "TT", "FF"), calls)
    }

    @Test
    fun `the device check, its generated input, and a match within atol`() {
        // element i: float32((i * 7919 + 13) % 256) / 127.5 - 1, with (i * 7919 + 13) % 256 = 13, 252, 235
        val input = DeviceCheck.input(3)
        assertArrayEquals(floatArrayOf(13f / 127.5f - 1f, 252f / 127.5f - 1f, 235f / 127.5f - 1f), input)
        val head = input.take(2).joinToString { it.toDouble().toString() }
        val sum = input.sumOf { it.toDouble() }
        val text = """{"format": "ondevice-device-check", "version": 1, "program": "model.pte", "sha256": "00",
            "input": {"shape": [1, 1, 1, 3], "rule": "...", "head": [$head], "sum": $sum},
            "atol": 0.1, "logits": {"FF": [1.0, -2.0], "TT": [0.5, 0.25]}}"""
        val check = DeviceCheck.parse(text)
        assertEquals(null, check.inputMismatch(check.input()))
        assertTrue(check.inputMismatch(DeviceCheck.input(4))!!.contains("sums to"))
        assertTrue(check.inputMismatch(floatArrayOf(0f, 0f, 0f))!!.contains("starts"))
        assertEquals(null, check.mismatch("FF", floatArrayOf(1.09f, -2.09f)))
        assertTrue(check.mismatch("FF", floatArrayOf(1.0f, -2.2f))!!.contains("logit 1"))
        assertTrue(check.mismatch("FF", floatArrayOf(Float.NaN, -2.0f))!!.contains("logit 0"))
        assertTrue(check.mismatch("FF", floatArrayOf(1.0f))!!.contains("1 logits"))
        assertTrue(check.mismatch("FT", floatArrayOf(1.0f, 2.0f))!!.contains("no logits for FT"))
        assertThrows(JsonException::class.java) { DeviceCheck.parse(text.replace("device-check", "other")) }
    }

    @Test
    fun `the latency file has the format ondevice profile --merge reads`() {
        val report = LatencyReport(
            device = "Pixel 8 (Android 15)", model = "tiny", backend = "xnnpack", threads = 4, runs = 3, warmup = 1,
            measuredAt = "2025-01-01T00:00:00Z", app = "ondevice-demo 0.1.0",
            subnets = mapOf("FF" to LatencyStats(2.123456, 3.0, 1.0)),
        )
        val json = JsonValue.parse(report.toJsonText()).asObject("latency.json")
        assertEquals("\"ondevice-latency\"", json["format"]!!.toJson())
        assertEquals("1", json["version"]!!.toJson())
        val row = json["subnets"]!!.asObject("subnets")["FF"]!!.toJson()
        assertEquals("{\"median_ms\":2.1235,\"p90_ms\":3.0,\"min_ms\":1.0}", row)
        val badGates = mapOf("FX" to LatencyStats(1.0, 1.0, 1.0))
        assertThrows(IllegalArgumentException::class.java) { report.copy(subnets = badGates) }
        assertEquals(null, json["power"], "no power measured, no power written")
    }

    @Test
    fun `the latency file carries the measured power, rounded like the latencies`() {
        // 500 mA and 1200 mA at 3.9 V: 1.95 W idle, 4.68 W busy, 2.73 W active (ulps off, rounded away)
        val estimate =
            PowerEstimate(PowerMethod.CURRENT_VOLTAGE, 1.9500000000000002, 4.680000049, 10.00004, 19.99996, 302)
        val report = LatencyReport(
            device = "Google Pixel 8", model = "tiny", backend = "xnnpack", threads = null, runs = 3, warmup = 1,
            measuredAt = "2025-01-01T00:00:00Z", app = "ondevice-demo 0.1.0",
            subnets = mapOf("FF" to LatencyStats(2.0, 3.0, 1.0), "TF" to LatencyStats(1.0, 1.5, 0.5)),
            power = LatencyPower("FF", estimate),
        )
        val expected = """{
          |  "format": "ondevice-latency",
          |  "version": 1,
          |  "device": "Google Pixel 8",
          |  "model": "tiny",
          |  "backend": "xnnpack",
          |  "runs": 3,
          |  "warmup": 1,
          |  "measured_at": "2025-01-01T00:00:00Z",
          |  "app": "ondevice-demo 0.1.0",
          |  "power": {
          |    "method": "current-voltage",
          |    "idle_w": 1.95,
          |    "busy_w": 4.68,
          |    "active_w": 2.73,
          |    "idle_s": 10.0,
          |    "busy_s": 20.0,
          |    "samples": 302,
          |    "gates": "FF"
          |  },
          |  "subnets": {
          |    "FF": {
          |      "median_ms": 2.0,
          |      "p90_ms": 3.0,
          |      "min_ms": 1.0
          |    },
          |    "TF": {
          |      "median_ms": 1.0,
          |      "p90_ms": 1.5,
          |      "min_ms": 0.5
          |    }
          |  }
          |}
          |""".trimMargin()
        assertEquals(expected, report.toJsonText())
        val counter = PowerEstimate(PowerMethod.ENERGY_COUNTER, 1.8, 1.7, 9.0, 19.0, 302)
        val power = report.copy(power = LatencyPower("FF", counter)).toJson()["power"]!!.asObject("power")
        assertEquals("\"energy-counter\"", power["method"]!!.toJson())
        assertEquals("0.0", power["active_w"]!!.toJson()) // busy below idle: nothing added, never negative
        assertThrows(IllegalArgumentException::class.java) { report.copy(power = LatencyPower("FFF", estimate)) }
        assertThrows(IllegalArgumentException::class.java) { LatencyPower("F1", estimate) }
    }

    @Test
    fun `the super-net runs every stage`() {
        assertEquals("FFFF", Manifest.parse(manifestText()).superNetGates())
    }
}

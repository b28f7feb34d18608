package org.ondevice.tools

import java.io.File
import kotlin.system.exitProcess
import org.ondevice.bundle.Bundle
import org.ondevice.bundle.ImageNormalizer
import org.ondevice.bundle.LatencyReport
import org.ondevice.bundle.LatencyStats
import org.ondevice.bundle.Manifest
import org.ondevice.bundle.toJsonText
import org.ondevice.json.JsonArray
import org.ondevice.json.JsonBoolean
import org.ondevice.json.JsonNumber
import org.ondevice.json.JsonString
import org.ondevice.json.JsonValue
import org.ondevice.json.asArray
import org.ondevice.json.asDouble
import org.ondevice.json.asInt
import org.ondevice.json.asObject
import org.ondevice.json.jsonObject
import org.ondevice.policy.PolicySession
import org.ondevice.policy.PolicyVectorsTest

/**
 * Runs the app's plain-Kotlin code on files that Python wrote, for `tests/test_apps.py` to compare with Python:
 *
 *     decide BUNDLE_DIR CASES_JSON DEVICE|-      every case's decisions from the bundle's policy.json + manifest.json
 *     normalize MANIFEST_JSON PIXELS_JSON W H    ARGB ints of a W x H image -> the normalized input tensor
 *     latency OUT_JSON DEVICE MODEL SAMPLES_JSON timed samples per gates -> the latency file the benchmark writes
 */
fun main(args: Array<String>) {
    when (args.firstOrNull()) {
        "decide" -> decide(File(args[1]), File(args[2]), args[3].takeUnless { it == "-" })
        "normalize" -> normalize(File(args[1]), File(args[2]), args[3].toInt(), args[4].toInt())
        "latency" -> latency(File(args[1]), args[2], args[3], File(args[4]))
        else -> {
            System.err.println("usage: decide BUNDLE CASES DEVICE|- | normalize MANIFEST PIXELS W H | latency OUT ...")
            exitProcess(2)
        }
    }
}

private fun read(file: File): JsonValue = JsonValue.parse(file.readText(), file.path)

private fun decide(bundleDir: File, casesFile: File, device: String?) {
    val policy = Bundle.load(bundleDir).policy(device)
    val out = read(casesFile).asArray("cases").map { c ->
        val case = c.asObject("case")
        val session = PolicySession(policy)
        val steps = case["steps"]!!.asArray("steps").map { s ->
            val step = s.asObject("step")
            val d = session.decide(
                PolicyVectorsTest.stateFromJson(step["state"]!!.asObject("state")),
                step["t_s"]!!.asDouble("t_s"),
            )
            jsonObject(
                "gates" to JsonString(d.gates),
                "target" to JsonString(d.target),
                "level" to JsonNumber.of(d.level.ordinal.toLong()),
                "switched" to JsonBoolean(d.switched),
                "energy" to JsonNumber.of(d.energy),
                "cap_ms" to JsonNumber.of(d.capMs),
            )
        }
        jsonObject("name" to case["name"]!!, "steps" to JsonArray(steps))
    }
    println(JsonArray(out).toJson())
}

private fun normalize(manifestFile: File, pixelsFile: File, width: Int, height: Int) {
    val manifest = Manifest.parse(manifestFile.readText(), manifestFile.path)
    val pixels = read(pixelsFile).asArray("pixels").mapIndexed { i, v -> v.asInt("pixels[$i]") }.toIntArray()
    val values = ImageNormalizer(manifest.input).normalize(pixels, width, height)
    println(JsonArray(values.map { JsonNumber.of(it.toDouble()) }).toJson())
}

private fun latency(out: File, device: String, model: String, samplesFile: File) {
    val samples = read(samplesFile).asObject("samples").members.mapValues { (g, v) ->
        v.asArray(g).mapIndexed { i, x -> x.asDouble("$g[$i]") }
    }
    val report = LatencyReport(
        device = device,
        model = model,
        backend = "xnnpack",
        threads = 4,
        runs = samples.values.first().size,
        warmup = 0,
        measuredAt = "2025-01-01T00:00:00Z",
        app = "parity-tool",
        subnets = samples.mapValues { LatencyStats.of(it.value) },
    )
    out.writeText(report.toJsonText())
}

package org.ondevice.tools

import java.io.File
import kotlin.system.exitProcess
import org.ondevice.bundle.Bundle
import org.ondevice.bundle.LatencyByThermal
import org.ondevice.bundle.ImageNormalizer
import org.ondevice.bundle.LatencyPower
import org.ondevice.bundle.LatencyReport
import org.ondevice.bundle.LatencyStats
import org.ondevice.bundle.Manifest
import org.ondevice.bundle.TimedRound
import org.ondevice.bundle.toJsonText
import org.ondevice.json.JsonArray
import org.ondevice.json.JsonBoolean
import org.ondevice.json.JsonNull
import org.ondevice.json.JsonNumber
import org.ondevice.json.JsonString
import org.ondevice.json.JsonValue
import org.ondevice.json.asArray
import org.ondevice.json.asDouble
import org.ondevice.json.asInt
import org.ondevice.json.asLong
import org.ondevice.json.asObject
import org.ondevice.json.asString
import org.ondevice.json.jsonObject
import org.ondevice.policy.PolicySession
import org.ondevice.policy.PolicyVectorsTest
import org.ondevice.policy.Thermal
import org.ondevice.power.PowerResult
import org.ondevice.power.PowerSample
import org.ondevice.power.estimatePower

/**
 * Runs the app's plain-Kotlin code on files that Python wrote, for `tests/test_apps.py` to compare with Python:
 *
 *     decide BUNDLE_DIR CASES_JSON DEVICE|-      every case's decisions from the bundle's policy.json + manifest.json
 *     normalize MANIFEST_JSON PIXELS_JSON W H    ARGB ints of a W x H image -> the normalized input tensor
 *     latency OUT_JSON DEVICE MODEL SAMPLES_JSON [POWER_JSON]
 *                                                timed samples per gates (and battery readings: {"gates", "idle",
 *                                                "busy"}, each reading [time_ms, current_ua, voltage_mv, energy_nwh],
 *                                                null for unknown) -> the latency file the benchmark writes; a refused
 *                                                power measurement prints its reason and writes no power
 *     rounds OUT_JSON DEVICE MODEL ROUNDS_JSON   timed rounds, each {"status": Android thermal status or null,
 *                                                "samples": {gates: ms}} -> the latency file with the cool table
 *                                                and the thermal tables (LatencyByThermal); prints its note
 */
fun main(args: Array<String>) {
    when (args.firstOrNull()) {
        "decide" -> decide(File(args[1]), File(args[2]), args[3].takeUnless { it == "-" })
        "normalize" -> normalize(File(args[1]), File(args[2]), args[3].toInt(), args[4].toInt())
        "latency" -> latency(File(args[1]), args[2], args[3], File(args[4]), args.getOrNull(5)?.let(::File))
        "rounds" -> rounds(File(args[1]), args[2], args[3], File(args[4]))
        else -> {
            System.err.println(
                "usage: decide BUNDLE CASES DEVICE|- | normalize MANIFEST PIXELS W H | latency|rounds OUT ...",
            )
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

private fun latency(out: File, device: String, model: String, samplesFile: File, powerFile: File?) {
    val samples = read(samplesFile).asObject("samples").members.mapValues { (g, v) ->
        v.asArray(g).mapIndexed { i, x -> x.asDouble("$g[$i]") }
    }
    val power = powerFile?.let { file ->
        val json = read(file).asObject("power")
        fun window(key: String) = json[key]!!.asArray(key).map { r ->
            val row = r.asArray(key)
            fun long(i: Int) = row[i].takeUnless { it == JsonNull }?.asLong("$key[$i]")
            PowerSample(long(0)!!, long(1), long(2)?.toInt(), long(3))
        }
        when (val result = estimatePower(window("idle"), window("busy"))) {
            is PowerResult.Measured -> LatencyPower(json["gates"]!!.asString("gates"), result.estimate)
            is PowerResult.Refused -> null.also { println("refused ${result.reason}: ${result.message}") }
        }
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
        power = power,
    )
    out.writeText(report.toJsonText())
}

private fun rounds(out: File, device: String, model: String, roundsFile: File) {
    val rounds = read(roundsFile).asArray("rounds").mapIndexed { i, r ->
        val round = r.asObject("rounds[$i]")
        val status = round["status"]?.takeUnless { it == JsonNull }?.asInt("rounds[$i].status")
        TimedRound(
            status = status?.let(Thermal::fromStatus),
            samplesMs = round["samples"]!!.asObject("rounds[$i].samples").members
                .mapValues { (g, v) -> v.asDouble("rounds[$i].samples.$g") },
        )
    }
    val tables = LatencyByThermal.of(rounds)
    val report = LatencyReport(
        device = device,
        model = model,
        backend = "xnnpack",
        threads = 4,
        runs = tables.runs,
        warmup = 0,
        measuredAt = "2025-01-01T00:00:00Z",
        app = "parity-tool",
        subnets = tables.subnets,
        thermal = tables.thermal,
    )
    out.writeText(report.toJsonText())
    println(tables.note)
}

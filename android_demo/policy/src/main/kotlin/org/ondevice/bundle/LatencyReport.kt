package org.ondevice.bundle

import java.math.BigDecimal
import java.math.RoundingMode
import org.ondevice.json.JsonNumber
import org.ondevice.json.JsonObject
import org.ondevice.json.JsonString
import org.ondevice.json.JsonValue
import org.ondevice.json.jsonObject
import org.ondevice.policy.Thermal
import org.ondevice.power.PowerEstimate

/** Median, p90 and min of one sub-network's timed runs, in ms, computed as `ondevice profile` does. */
data class LatencyStats(val medianMs: Double, val p90Ms: Double, val minMs: Double) {
    companion object {
        fun of(samplesMs: List<Double>): LatencyStats {
            require(samplesMs.isNotEmpty()) { "no timed runs" }
            require(samplesMs.all { it.isFinite() && it >= 0.0 }) { "latencies must be finite and >= 0 ms" }
            val sorted = samplesMs.sorted()
            val n = sorted.size
            val median = if (n % 2 == 1) sorted[n / 2] else (sorted[n / 2 - 1] + sorted[n / 2]) / 2 // statistics.median
            return LatencyStats(median, percentile(sorted, 0.9), sorted.first())
        }

        /** Linear interpolation between closest ranks, the formula of `ondevice profile` (numpy's default). */
        private fun percentile(sorted: List<Double>, q: Double): Double {
            val k = (sorted.size - 1) * q
            val lo = k.toInt()
            val hi = minOf(lo + 1, sorted.size - 1)
            return sorted[lo] + (sorted[hi] - sorted[lo]) * (k - lo)
        }
    }
}

/** The battery power measured while the sub-network [gates] (the super-net, all F) ran back to back. */
data class LatencyPower(val gates: String, val estimate: PowerEstimate) {
    init {
        require(gates.isNotEmpty() && gates.all { it == 'T' || it == 'F' }) { "gates must be T/F, got \"$gates\"" }
    }
}

/**
 * The latency file the app's benchmark writes and `ondevice profile BUNDLE --merge FILE` reads
 * (`ondevice/contract/latency.schema.json`, format "ondevice-latency", version 1). Its [device] becomes the latency
 * table's name in the manifest; the policy then finds it under the same name on this phone. [power], when the phone
 * could measure it (on battery), becomes the file's `power` object, from which `--merge` fits the device's power
 * constants. [subnets] is the cool table and [runs] its rounds; [thermal] the tables timed at hotter statuses
 * ([LatencyByThermal]), which become the file's `thermal` (`{"severe": {"runs": 30, "subnets": {...}}}`), each
 * timing exactly the sub-networks of [subnets].
 */
data class LatencyReport(
    val device: String,
    val model: String,
    val backend: String,
    val threads: Int?,
    val runs: Int,
    val warmup: Int,
    val measuredAt: String,
    val app: String,
    val subnets: Map<String, LatencyStats>,
    val power: LatencyPower? = null,
    val thermal: Map<Thermal, ThermalLatency> = emptyMap(),
) {
    init {
        require(device.isNotEmpty()) { "device name is empty" }
        require(subnets.isNotEmpty()) { "no sub-network was measured" }
        require(subnets.keys.all { g -> g.isNotEmpty() && g.all { it == 'T' || it == 'F' } }) { "gates must be T/F" }
        require(runs >= 1 && warmup >= 0) { "need runs >= 1 and warmup >= 0, got $runs and $warmup" }
        require(threads == null || threads >= 1) { "threads must be >= 1, got $threads" }
        require(power == null || subnets.keys.all { it.length == power.gates.length }) {
            "power gates \"${power?.gates}\" do not have as many stages as the sub-networks"
        }
        require(Thermal.NONE !in thermal) { "the NONE table is the cool one (subnets), not a thermal table" }
        thermal.forEach { (status, table) ->
            require(table.subnets.keys == subnets.keys) {
                "the ${status.tableKey} table times ${table.subnets.keys}, the cool table ${subnets.keys}: " +
                    "a thermal table must time the same sub-networks"
            }
        }
    }

    fun toJson(): JsonObject {
        val members = linkedMapOf<String, JsonValue>(
            "format" to JsonString(FORMAT),
            "version" to JsonNumber.of(VERSION.toLong()),
            "device" to JsonString(device),
            "model" to JsonString(model),
            "backend" to JsonString(backend),
        )
        threads?.let { members["threads"] = JsonNumber.of(it.toLong()) }
        members["runs"] = JsonNumber.of(runs.toLong())
        members["warmup"] = JsonNumber.of(warmup.toLong())
        members["measured_at"] = JsonString(measuredAt)
        members["app"] = JsonString(app)
        power?.let { members["power"] = powerJson(it) }
        members["subnets"] = entriesJson(subnets)
        if (thermal.isNotEmpty()) {
            members["thermal"] = JsonObject(
                thermal.toSortedMap().entries.associate { (status, table) ->
                    status.tableKey to jsonObject(
                        "runs" to JsonNumber.of(table.runs.toLong()),
                        "subnets" to entriesJson(table.subnets),
                    )
                },
            )
        }
        return JsonObject(members)
    }

    companion object {
        private fun entriesJson(subnets: Map<String, LatencyStats>): JsonObject = JsonObject(
            subnets.mapValues { (_, s) ->
                jsonObject(
                    "median_ms" to JsonNumber.of(round4(s.medianMs)),
                    "p90_ms" to JsonNumber.of(round4(s.p90Ms)),
                    "min_ms" to JsonNumber.of(round4(s.minMs)),
                )
            },
        )

        /** `power`: exactly the keys of latency.schema.json, numbers rounded like the latency numbers. */
        private fun powerJson(power: LatencyPower): JsonObject {
            val e = power.estimate
            return jsonObject(
                "method" to JsonString(e.method.key),
                "idle_w" to JsonNumber.of(round4(e.idleW)),
                "busy_w" to JsonNumber.of(round4(e.busyW)),
                "active_w" to JsonNumber.of(round4(e.activeW)),
                "idle_s" to JsonNumber.of(round4(e.idleS)),
                "busy_s" to JsonNumber.of(round4(e.busyS)),
                "samples" to JsonNumber.of(e.samples.toLong()),
                "gates" to JsonString(power.gates),
            )
        }

        const val FORMAT = "ondevice-latency"
        const val VERSION = 1
        const val FILE_NAME = "latency.json"

        /** 4 decimals (0.1 us; 0.1 mW, 0.1 ms), as `ondevice profile` writes its tables: Python's round(x, 4). */
        private fun round4(ms: Double): Double = BigDecimal(ms).setScale(4, RoundingMode.HALF_EVEN).toDouble()
    }
}

/**
 * Times every sub-network interleaved, as `ondevice profile` does: [warmup] untimed rounds, then [runs] rounds in
 * which each sub-network runs once, in an order rotated by one each round, so that heat and background load spread
 * evenly over them. [run] executes one sub-network; [clockNs] is a monotonic clock (`System.nanoTime`). The
 * statistics of all rounds together; [measureRounds] keeps them apart by thermal status.
 */
fun measureInterleaved(
    gates: List<String>,
    runs: Int,
    warmup: Int,
    clockNs: () -> Long = System::nanoTime,
    run: (String) -> Unit,
): Map<String, LatencyStats> {
    require(runs >= 1 && warmup >= 0) { "need runs >= 1 and warmup >= 0, got $runs and $warmup" }
    val rounds = measureRounds(gates, RoundSchedule(runs), warmup, clockNs, run = run)
    return gates.associateWith { g -> LatencyStats.of(rounds.map { it.samplesMs.getValue(g) }) }
}

/**
 * The interleaved rounds of [measureInterleaved], each with the thermal status [thermalStatus] read just before it
 * (not before the warm-up), for as long as [schedule] says: at least its runs, then until its sustained time has
 * passed. [LatencyByThermal.of] turns them into the cool table and the thermal tables of the latency file.
 */
fun measureRounds(
    gates: List<String>,
    schedule: RoundSchedule,
    warmup: Int,
    clockNs: () -> Long = System::nanoTime,
    thermalStatus: () -> Thermal? = { null },
    run: (String) -> Unit,
): List<TimedRound> {
    require(gates.isNotEmpty()) { "no sub-networks to measure" }
    require(warmup >= 0) { "need warmup >= 0, got $warmup" }
    repeat(warmup) { gates.forEach(run) }
    val rounds = ArrayList<TimedRound>(schedule.runs)
    val begin = clockNs()
    while (schedule.more(rounds.size, clockNs() - begin)) {
        val status = thermalStatus()
        val shift = rounds.size % gates.size
        val samples = LinkedHashMap<String, Double>()
        for (g in gates.drop(shift) + gates.take(shift)) {
            val start = clockNs()
            run(g)
            samples[g] = (clockNs() - start) / 1e6
        }
        rounds += TimedRound(status, gates.associateWith { samples.getValue(it) })
    }
    return rounds
}

/** The latency file as text (pretty-printed JSON). */
fun LatencyReport.toJsonText(): String = toJson().toJson(indent = 2) + "\n"

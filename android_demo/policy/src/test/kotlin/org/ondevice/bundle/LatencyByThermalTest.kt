package org.ondevice.bundle

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.ondevice.json.JsonValue
import org.ondevice.json.asObject
import org.ondevice.policy.Thermal

/** The benchmark's rounds grouped by the thermal status read before each, and the latency file they give. */
class LatencyByThermalTest {
    private fun round(status: Thermal?, ff: Double, tt: Double) = TimedRound(status, mapOf("FF" to ff, "TT" to tt))

    /**
     * 21 rounds at NONE (10, then 11 after the phone cooled again), 5 at MODERATE, 21 at SEVERE. With 21 samples the
     * median is the 11th smallest and the p90 the 19th ((21 - 1) * 0.9 = 18 exactly: no interpolation).
     */
    private val rounds: List<TimedRound> = run {
        // NONE: FF 100..120 and TT 50..60 in steps of 0.5, each in a shuffled order (8i and 5i mod 21 permute 0..20)
        val none = (0 until 21).map { i -> round(Thermal.NONE, 100.0 + (8 * i) % 21, 50.0 + (5 * i) % 21 * 0.5) }
        val moderate = List(5) { round(Thermal.MODERATE, 150.0, 70.0) }
        // SEVERE: FF 200..240 in steps of 2, TT 90 down to 70
        val severe = (0 until 21).map { i -> round(Thermal.SEVERE, 200.0 + 2.0 * ((4 * i) % 21), 90.0 - i) }
        none.take(10) + moderate + severe + none.drop(10)
    }

    @Test
    fun `the coolest status is the table, hotter ones with at least 20 rounds are thermal tables`() {
        val tables = LatencyByThermal.of(rounds)
        assertEquals(Thermal.NONE, tables.coolStatus)
        assertEquals(21, tables.runs)
        assertEquals(
            mapOf("FF" to LatencyStats(110.0, 118.0, 100.0), "TT" to LatencyStats(55.0, 59.0, 50.0)),
            tables.subnets,
        )
        val severe = mapOf("FF" to LatencyStats(220.0, 236.0, 200.0), "TT" to LatencyStats(80.0, 88.0, 70.0))
        assertEquals(mapOf(Thermal.SEVERE to ThermalLatency(21, severe)), tables.thermal)
        assertEquals(mapOf(Thermal.MODERATE to 5), tables.dropped)
        assertEquals(0, tables.unknownRounds)
        assertEquals(
            "cool table: 21 rounds at NONE; severe: 21 rounds; " +
                "dropped moderate (5): fewer than 20 rounds, a p90 of so few runs is unreliable",
            tables.note,
        )
    }

    @Test
    fun `a warm start, the 20-round boundary and rounds without a status`() {
        val critical = (1..20).map { round(Thermal.CRITICAL, it.toDouble(), 21.0 - it) }
        val emergency = List(19) { round(Thermal.EMERGENCY, 50.0, 40.0) }
        val light = listOf(3.0, 5.0, 4.0).map { round(Thermal.LIGHT, it, 1.0) }
        val unknown = List(2) { round(null, 9.0, 9.0) }
        val tables = LatencyByThermal.of(unknown + light + critical + emergency)
        assertEquals(Thermal.LIGHT, tables.coolStatus)
        assertEquals(3, tables.runs)
        assertEquals(LatencyStats(4.0, 4.8, 3.0), tables.subnets["FF"]!!.let { it.copy(p90Ms = round9(it.p90Ms)) })
        assertEquals(listOf(Thermal.CRITICAL), tables.thermal.keys.toList()) // exactly 20 rounds: kept
        assertEquals(20, tables.thermal.getValue(Thermal.CRITICAL).runs)
        val ff = tables.thermal.getValue(Thermal.CRITICAL).subnets.getValue("FF")
        assertEquals(LatencyStats.of((1..20).map { it.toDouble() }), ff) // computed exactly as LatencyStats.of
        assertEquals(LatencyStats(10.5, 18.1, 1.0), ff.copy(p90Ms = round9(ff.p90Ms)))
        assertEquals(mapOf(Thermal.EMERGENCY to 19), tables.dropped) // 19: dropped
        assertEquals(2, tables.unknownRounds)
        val note = tables.note
        val parts = listOf("3 rounds at LIGHT", "fewer than 20 cool", "critical: 20", "emergency (19)", "2 rounds")
        for (part in parts) assertTrue(part in note, "note \"$note\" lacks \"$part\"")
    }

    @Test
    fun `without any thermal status every round is in the one table`() {
        val tables = LatencyByThermal.of(List(3) { round(null, 1.0 + it, 0.5) })
        assertEquals(null, tables.coolStatus)
        assertEquals(3, tables.runs)
        assertEquals(LatencyStats(2.0, 2.8, 1.0), tables.subnets["FF"]!!.let { it.copy(p90Ms = round9(it.p90Ms)) })
        assertEquals(emptyMap<Thermal, ThermalLatency>(), tables.thermal)
        assertEquals("thermal status unknown: one table from all 3 rounds", tables.note)
        assertThrows(IllegalArgumentException::class.java) { LatencyByThermal.of(emptyList()) }
        val uneven = listOf(round(Thermal.NONE, 1.0, 1.0), TimedRound(Thermal.NONE, mapOf("FF" to 1.0)))
        assertThrows(IllegalArgumentException::class.java) { LatencyByThermal.of(uneven) }
    }

    @Test
    fun `the latency file carries the thermal tables, by ascending status`() {
        val tables = LatencyByThermal.of(rounds)
        val hot = mapOf("FF" to LatencyStats(300.0, 310.0, 290.0), "TT" to LatencyStats(1.0, 2.0, 0.5))
        val report = LatencyReport(
            device = "Google Pixel 8", model = "tiny", backend = "xnnpack", threads = null, runs = tables.runs,
            warmup = 0, measuredAt = "2025-01-01T00:00:00Z", app = "ondevice-demo 0.1.0", subnets = tables.subnets,
            thermal = mapOf(Thermal.CRITICAL to ThermalLatency(20, hot)) + tables.thermal,
        )
        val json = JsonValue.parse(report.toJsonText()).asObject("latency.json")
        assertEquals("21", json["runs"]!!.toJson())
        val keys = listOf("format", "version", "device", "model", "backend", "runs", "warmup", "measured_at", "app")
        assertEquals(keys + listOf("subnets", "thermal"), json.members.keys.toList())
        val thermal = json["thermal"]!!.asObject("thermal")
        assertEquals(listOf("severe", "critical"), thermal.members.keys.toList())
        assertEquals(
            """{"runs":21,"subnets":{"FF":{"median_ms":220.0,"p90_ms":236.0,"min_ms":200.0},""" +
                """"TT":{"median_ms":80.0,"p90_ms":88.0,"min_ms":70.0}}}""",
            thermal["severe"]!!.toJson(),
        )
        assertEquals(null, report.copy(thermal = emptyMap()).toJson()["thermal"], "no thermal table, no thermal")
        val none = mapOf(Thermal.NONE to ThermalLatency(20, hot))
        assertThrows(IllegalArgumentException::class.java) { report.copy(thermal = none) }
        val fewer = mapOf(Thermal.SEVERE to ThermalLatency(20, mapOf("FF" to LatencyStats(1.0, 1.0, 1.0))))
        assertThrows(IllegalArgumentException::class.java) { report.copy(thermal = fewer) }
    }

    @Test
    fun `rounds read the status before each round and a sustained run goes on until its time has passed`() {
        var now = 0L
        val statuses = ArrayDeque(listOf(Thermal.NONE, Thermal.NONE, Thermal.LIGHT, Thermal.MODERATE, Thermal.SEVERE))
        val order = mutableListOf<String>()
        val cost = mapOf("FF" to 3_000_000L, "TT" to 1_000_000L)
        // 2 rounds at least, then until 10 ms of rounds have passed: 4 ms a round, so 3 rounds (0, 4, 8 ms < 10)
        val rounds = measureRounds(
            listOf("FF", "TT"), RoundSchedule(runs = 2, sustainedMs = 10), warmup = 1, clockNs = { now },
            thermalStatus = { order += "status"; statuses.removeFirst() },
        ) { g ->
            order += g
            now += cost.getValue(g)
        }
        assertEquals(listOf(Thermal.NONE, Thermal.NONE, Thermal.LIGHT), rounds.map { it.status })
        assertEquals(
            listOf("FF", "TT", "status", "FF", "TT", "status", "TT", "FF", "status", "FF", "TT"), // warm-up unread
            order,
        )
        assertTrue(rounds.all { it.samplesMs == mapOf("FF" to 3.0, "TT" to 1.0) })
        assertTrue(RoundSchedule(2).more(1, Long.MAX_VALUE) && !RoundSchedule(2).more(2, 0))
        assertThrows(IllegalArgumentException::class.java) { RoundSchedule(0) }
    }

    private fun round9(x: Double) = Math.round(x * 1e9) / 1e9
}

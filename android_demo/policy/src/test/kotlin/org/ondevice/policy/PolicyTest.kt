package org.ondevice.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.ondevice.json.JsonException
import org.ondevice.json.JsonObject
import org.ondevice.json.JsonValue

/** Behaviour the vectors do not spell out: any number of stages, errors, the session's memory. */
class PolicyTest {
    private val config = PolicyConfig.fromJson(PolicyVectorsTest.loadVectors()["policy"] as JsonObject)

    private fun subnet(gates: String, gflops: Double, top1: Double) =
        SubnetInfo(gates, gates, (gflops * 1e9).toLong(), 0, mapOf("fp32" to top1))

    /** A 2-stage model with no latency table: the FLOPs estimate; a dominated sub-network is not on the front. */
    private val catalog = SubnetCatalog(
        numStages = 2,
        precision = "fp32",
        subnets = listOf(
            subnet("FF", 4.0, 0.9), subnet("FT", 3.0, 0.85), subnet("TF", 3.5, 0.84), subnet("TT", 2.0, 0.8),
        ),
        latency = emptyMap(),
    )

    @Test
    fun `front comes from the manifest, whatever the stage count`() {
        val policy = Policy.create(config, catalog, device = "any-phone")
        assertEquals(LatencySource.FlopsEstimate, policy.table.source)
        assertEquals(listOf("TT", "FT", "FF"), policy.frontGates) // TF costs more than FT and is less accurate
        val cool = DeviceState(1.0, charging = false, powerSave = false, thermal = Thermal.NONE, latencyBudgetMs = 1e6)
        val decision = policy.decide(cool, nowS = 0.0)
        assertEquals("FF", decision.gates)
        assertEquals(Limit.ENERGY, decision.limit)
        assertFalse(decision.switched)
    }

    @Test
    fun `a session carries the memory and downgrades after the dwell`() {
        val session = PolicySession(Policy.create(config, catalog, null))
        val cool = DeviceState(thermal = Thermal.NONE, latencyBudgetMs = 1e6)
        assertEquals("FF", session.decide(cool, 0.0).gates)
        val hot = cool.copy(thermal = Thermal.CRITICAL) // energy 0: only the cheapest
        val early = session.decide(hot, 0.5)
        assertEquals("FF", early.gates)
        assertTrue(early.held)
        val later = session.decide(hot, 0.5 + config.hysteresis.minDwellDownS)
        assertEquals("TT", later.gates)
        assertTrue(later.switched)
        assertEquals(PolicyMemory("TT", 0.5 + config.hysteresis.minDwellDownS, null), session.memory)
    }

    @Test
    fun `headroom NaN is unknown and a headroom alone sets the level`() {
        val policy = Policy.create(config, catalog, null)
        assertEquals(config.thermal.unknownLevel, policy.thermalLevel(null, Double.NaN))
        assertEquals(Thermal.MODERATE, policy.thermalLevel(null, config.thermal.headroomThresholds[1]))
        assertEquals(Thermal.SEVERE, policy.thermalLevel(Thermal.SEVERE, 0.0))
    }

    @Test
    fun `time must be finite and a bundle must be usable`() {
        val policy = Policy.create(config, catalog, null)
        assertThrows(IllegalArgumentException::class.java) { policy.decide(DeviceState(), Double.NaN) }
        val noFp32 = catalog.copy(precision = "int8", subnets = catalog.subnets.map { it.copy(accuracy = mapOf()) })
        val error = assertThrows(SubnetTableException::class.java) { Policy.create(config, noFp32, null) }
        assertTrue(error.message!!.contains("re-export"), error.message)
        val unknownGates = mapOf("XX" to LatencyEntry(1.0, null, null))
        val foreign = catalog.copy(latency = mapOf("p" to LatencyTable("xnnpack", null, unknownGates)))
        assertThrows(SubnetTableException::class.java) { Policy.create(config, foreign, "p") }
    }

    @Test
    fun `table names compare by code point, as Python does`() {
        // U+FF5E (one UTF-16 unit) < U+1F600 (a surrogate pair starting 0xD83D): code points and UTF-16 disagree
        val entry = LatencyEntry(1.0, null, null)
        val tables = listOf("\uFF5E", "\uD83D\uDE00").associateWith { LatencyTable("b", null, mapOf("FF" to entry)) }
        val table = SubnetTable.build(catalog.copy(latency = tables), config, device = null)
        assertEquals(LatencySource.FallbackTable("\uD83D\uDE00", "b"), table.source)
    }

    @Test
    fun `thermal tables are read by status name and refused unless they time the cool table's sub-networks`() {
        val text = """{"p": {"backend": "xnnpack", "subnets": {"FF": {"median_ms": 4.0}, "TT": {"median_ms": 2.0}},
            "thermal": {"severe": {"runs": 30, "subnets": {"FF": {"median_ms": 9.0}, "TT": {"median_ms": 3.0}}},
                        "light": {"subnets": {"FF": {"median_ms": 5.0}, "TT": {"median_ms": 2.5}}}}}}"""
        fun parse(json: String) = SubnetCatalog.latencyTables(JsonValue.parse(json) as JsonObject)
        val table = parse(text).getValue("p")
        assertEquals(listOf(Thermal.LIGHT, Thermal.SEVERE), table.thermal.keys.toList())
        assertEquals(LatencyEntry(9.0, null, null), table.thermal.getValue(Thermal.SEVERE)["FF"])
        val renamed = text.replace("\"TT\": {\"median_ms\": 3.0}", "\"FT\": {\"median_ms\": 3.0}")
        val other = assertThrows(JsonException::class.java) { parse(renamed) }
        val expected = "latency table \"p\": the \"severe\" thermal table lists [FF, FT], the cool table [FF, TT]"
        assertTrue(other.message!!.contains(expected), other.message)
        val unknown = assertThrows(JsonException::class.java) { parse(text.replace("\"light\"", "\"hot\"")) }
        assertTrue(unknown.message!!.contains("unknown thermal status \"hot\""), unknown.message)
        // NONE is the cool table, never a thermal one
        assertThrows(JsonException::class.java) { parse(text.replace("\"light\"", "\"none\"")) }
    }

    @Test
    fun `at each level the hottest table measured at or below it ranks, with only the slowdown beyond it`() {
        val entry = { ms: Double -> LatencyEntry(ms, null, null) }
        val cool = mapOf("FF" to entry(4.0), "FT" to entry(3.0), "TF" to entry(3.5), "TT" to entry(2.0))
        // at SEVERE FT times slower than FF: capped by FF's 5 ms (it runs fewer stages), a tie FF wins on accuracy
        val severe = mapOf("FF" to entry(5.0), "FT" to entry(6.0), "TF" to entry(5.5), "TT" to entry(2.5))
        val tables = mapOf("p" to LatencyTable("xnnpack", null, cool, mapOf(Thermal.SEVERE to severe)))
        val policy = Policy.create(config, catalog.copy(latency = tables), "p")
        assertEquals(listOf(Thermal.SEVERE), policy.table.thermal.map { it.level })
        val hot = policy.table.thermal[0]
        assertEquals(listOf("FF", "FT", "TF", "TT"), hot.candidates.map { it.gates })
        assertEquals(listOf(5.0, 5.0, 5.0, 2.5), hot.candidates.map { it.latencyMs })
        assertEquals(listOf("TT", "FT", "FF"), policy.frontGates)
        assertEquals(listOf("TT", "FT", "FF"), policy.frontAt(Thermal.MODERATE))
        assertEquals(listOf("TT", "FF"), policy.frontAt(Thermal.SEVERE))
        assertEquals(listOf("TT", "FF"), policy.frontAt(Thermal.SHUTDOWN))
        val slowdown = config.thermal.slowdown
        val state = DeviceState(charging = true, thermal = Thermal.MODERATE, latencyBudgetMs = 100.0)
        val moderate = policy.decide(state, 0.0)
        assertEquals(Thermal.NONE, moderate.tableLevel)
        assertEquals(100.0 / slowdown[2], moderate.latencyCapMs)
        assertEquals(config.thermal.energy[2] * 4.0, moderate.energyCapMs) // the cool table's most accurate
        val critical = policy.decide(state.copy(thermal = Thermal.CRITICAL), 0.0)
        assertEquals(Thermal.SEVERE, critical.tableLevel)
        assertEquals(100.0 / (slowdown[4] / slowdown[3]), critical.latencyCapMs)
        assertEquals(config.thermal.energy[4] * 5.0, critical.energyCapMs)

        // FT chosen cool is off the SEVERE front: FF, the first one at least as accurate, replaces it at once and
        // counts as a switch; the energy cap (0.5 x 5 ms) wants TT, which the dwell then holds back
        val session = PolicySession(policy, PolicyMemory("FT", 0.0, null))
        val replaced = session.decide(state.copy(thermal = Thermal.SEVERE), 0.5)
        assertEquals(listOf("FF", "TT", Thermal.SEVERE), listOf(replaced.gates, replaced.target, replaced.tableLevel))
        assertTrue(replaced.switched && replaced.held)
        assertEquals(PolicyMemory("FF", 0.5, null), session.memory)
        assertEquals("TT", session.decide(state.copy(thermal = Thermal.SEVERE), 1.5).gates)
    }
}

package org.ondevice.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.ondevice.json.JsonObject

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
}

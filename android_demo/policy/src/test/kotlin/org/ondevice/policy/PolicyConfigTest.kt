package org.ondevice.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.ondevice.json.JsonObject
import org.ondevice.json.JsonValue

class PolicyConfigTest {
    /** The `policy` block of the vectors: Python's default policy.json, less ondevice_version. */
    private val policyJson: JsonObject = PolicyVectorsTest.loadVectors()["policy"] as JsonObject

    private fun edited(section: String, key: String, value: String?): String {
        val text = policyJson.toJson()
        val sectionObj = policyJson[section] as JsonObject
        val members = LinkedHashMap(sectionObj.members)
        if (value == null) members.remove(key) else members[key] = JsonValue.parse(value)
        return JsonObject(policyJson.members + (section to JsonObject(members))).toJson().also { check(it != text) }
    }

    @Test
    fun `reads the shipped defaults from the file`() {
        val config = PolicyConfig.fromJson(policyJson)
        assertEquals(LatencyStatistic.P90, config.latency.statistic)
        assertNull(config.accuracy.precision)
        assertEquals(Thermal.entries.size, config.thermal.slowdown.size)
        assertEquals(Thermal.LIGHT, config.thermal.unknownLevel)
        assertEquals(listOf(Thermal.NONE, Thermal.LIGHT, Thermal.SEVERE, Thermal.CRITICAL), config.thermal.iosLevels)
        assertEquals(BatteryTier(0.15, 0.6), config.battery.tiers.first())
        assertTrue(config.battery.chargingIgnoresBattery)
    }

    @Test
    fun `an unknown key, a missing key or another version is refused with the key named`() {
        val unknown = assertThrows(PolicyConfigException::class.java) {
            PolicyConfig.parse(edited("thermal", "energyy", "[]"))
        }
        assertTrue(unknown.message!!.contains("unknown key thermal.energyy"), unknown.message)
        val missing = assertThrows(PolicyConfigException::class.java) {
            PolicyConfig.parse(edited("battery", "tiers", null))
        }
        assertTrue(missing.message!!.contains("missing key battery.tiers"), missing.message)
        val version = JsonObject(policyJson.members + ("policy_version" to JsonValue.parse("2"))).toJson()
        val wrong = assertThrows(PolicyConfigException::class.java) { PolicyConfig.parse(version) }
        assertTrue(wrong.message!!.contains("policy_version 2; this app reads version 1"), wrong.message)
    }

    @Test
    fun `values the decision cannot use are refused`() {
        val bad = listOf(
            Triple("latency", "statistic", "\"p99_ms\""),
            Triple("latency", "default_budget_ms", "0"),
            Triple("thermal", "slowdown", "[1, 1, 1]"),
            Triple("thermal", "energy", "[1, 1, 1, 1, 1, 1, 1.5]"),
            Triple("thermal", "unknown_level", "7"),
            Triple("thermal", "unknown_level", "1.0"),
            Triple("thermal", "ios_levels", "[0, 1, 3]"),
            Triple("battery", "tiers", "[{\"below\": 0, \"energy\": 0.5}]"),
            Triple("battery", "tiers", "[{\"below\": 0.2}]"),
            Triple("battery", "charging_ignores_battery", "1"),
            Triple("hysteresis", "upgrade_margin", "1.0"),
            Triple("hysteresis", "min_dwell_up_s", "-1"),
            Triple("accuracy", "default_floor", "\"0.5\""),
        )
        for ((section, key, value) in bad) {
            val error = assertThrows(
                PolicyConfigException::class.java,
                { PolicyConfig.parse(edited(section, key, value)) },
                "$section.$key = $value",
            )
            assertTrue(error.message!!.contains("$section.$key"), error.message)
        }
    }

    @Test
    fun `a precision name is read`() {
        assertEquals("int8", PolicyConfig.parse(edited("accuracy", "precision", "\"int8\"")).accuracy.precision)
    }
}

package org.ondevice.policy

import java.io.File
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.DynamicTest
import org.junit.jupiter.api.DynamicTest.dynamicTest
import org.junit.jupiter.api.TestFactory
import org.junit.jupiter.api.TestInstance
import org.ondevice.json.JsonObject
import org.ondevice.json.JsonValue
import org.ondevice.json.asArray
import org.ondevice.json.asBoolean
import org.ondevice.json.asDouble
import org.ondevice.json.asInt
import org.ondevice.json.asObject
import org.ondevice.json.asString
import org.ondevice.json.optional

/**
 * Every vector of `tests/policy_vectors.json` (written by the Python policy): the table and its variants, the
 * Android normalization rows and every step of every case, compared exactly (numbers bit for bit).
 *
 * The file is found through the system property `ondevice.vectors`, the environment variable `ONDEVICE_VECTORS`,
 * or by walking up from the working directory to the repository's `tests/policy_vectors.json`.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class PolicyVectorsTest {
    private val vectors: JsonObject = loadVectors()
    private val config = PolicyConfig.fromJson(vectors.field("policy"), "policy_vectors.json policy")
    private val manifest = vectors.field("manifest").asObject("manifest")

    @TestFactory
    fun table(): List<DynamicTest> {
        val expect = vectors.field("table").asObject("table")
        val device = expect.optional("device")?.asString("table.device")
        return listOf(dynamicTest("table for $device") { assertTable(expect, manifest, device) })
    }

    @TestFactory
    fun tableSelection(): List<DynamicTest> = vectors.field("table_selection").asArray("table_selection").map {
        val case = it.asObject("table_selection")
        val name = case.field("name").asString("name")
        dynamicTest("table selection: $name") {
            val variant = JsonObject(manifest.members + ("latency" to case.field("latency")))
            assertTable(case.field("expect").asObject("expect"), variant, case.field("device").asString("device"))
        }
    }

    @TestFactory
    fun androidNormalization(): List<DynamicTest> {
        // iOS rows are the Swift app's (ios_demo/Tests); this module reads Android's readings only.
        val rows = vectors.field("normalization").asArray("normalization").map { it.asObject("normalization") }
            .filter { it.field("platform").asString("platform") == "android" }
        assertTrue(rows.isNotEmpty(), "the vectors hold no Android normalization rows")
        return rows.mapIndexed { i, row ->
            val r = row.field("reading").asObject("reading")
            dynamicTest("android normalization $i: ${r.toJson()}") {
                val state = DeviceState.fromAndroid(
                    capacityPercent = r.optional("capacity_percent")?.asInt("capacity_percent"),
                    plugged = r.optional("plugged")?.asInt("plugged"),
                    powerSave = r.optional("power_save")?.asBoolean("power_save"),
                    thermalStatus = r.optional("thermal_status")?.asInt("thermal_status"),
                    headroom = r.optional("headroom")?.asDouble("headroom"),
                )
                assertEquals(stateFromJson(row.field("state").asObject("state")), state)
            }
        }
    }

    @TestFactory
    fun cases(): List<DynamicTest> {
        val device = vectors.field("table").asObject("table").optional("device")?.asString("device")
        val policy = Policy.create(config, SubnetCatalog.fromJson(manifest, "vectors manifest"), device)
        return vectors.field("cases").asArray("cases").map {
            val case = it.asObject("case")
            val name = case.field("name").asString("name")
            dynamicTest("case: $name") {
                val session = PolicySession(policy)
                case.field("steps").asArray("steps").forEachIndexed { i, s ->
                    val step = s.asObject("step")
                    val decision = session.decide(
                        stateFromJson(step.field("state").asObject("state")),
                        step.field("t_s").asDouble("t_s"),
                    )
                    assertDecision(step.field("expect").asObject("expect"), decision, "case '$name' step $i")
                }
            }
        }
    }

    private fun assertTable(expect: JsonObject, manifest: JsonObject, device: String?) {
        val table = SubnetTable.build(SubnetCatalog.fromJson(manifest, "vectors manifest"), config, device)
        val source = expect.field("source").asObject("source")
        assertEquals(source.field("kind").asString("kind"), table.source.kind)
        assertEquals(source.optional("device")?.asString("device"), table.source.tableName)
        assertEquals(expect.field("accuracy_key").asString("accuracy_key"), table.accuracyKey)
        val candidates = expect.field("candidates").asArray("candidates").map { it.asObject("candidate") }
        assertEquals(candidates.map { it.field("gates").asString("gates") }, table.candidates.map { it.gates })
        for ((row, got) in candidates.zip(table.candidates)) {
            assertBits(row.field("latency_ms").asDouble("latency_ms"), got.latencyMs, "${got.gates} latency_ms")
            assertBits(row.field("accuracy").asDouble("accuracy"), got.accuracy, "${got.gates} accuracy")
        }
        assertEquals(expect.field("front").asArray("front").map { it.asString("front") }, table.front.map { it.gates })
    }

    private fun assertDecision(expect: JsonObject, d: Decision, where: String) {
        assertEquals(expect.field("gates").asString("gates"), d.gates, "$where: gates")
        assertEquals(expect.field("target").asString("target"), d.target, "$where: target")
        assertEquals(expect.field("below_floor").asBoolean("below_floor"), d.belowFloor, "$where: below_floor")
        assertEquals(expect.field("over_budget").asBoolean("over_budget"), d.overBudget, "$where: over_budget")
        assertEquals(expect.field("switched").asBoolean("switched"), d.switched, "$where: switched")
        assertEquals(expect.field("held").asBoolean("held"), d.held, "$where: held")
        assertEquals(expect.field("level").asInt("level"), d.level.ordinal, "$where: level")
        val numbers = mapOf(
            "battery" to d.battery,
            "energy" to d.energy,
            "latency_budget_ms" to d.latencyBudgetMs,
            "latency_cap_ms" to d.latencyCapMs,
            "energy_cap_ms" to d.energyCapMs,
            "cap_ms" to d.capMs,
            "floor" to d.floor,
        )
        for ((key, got) in numbers) assertBits(expect.field(key).asDouble(key), got, "$where: $key")
    }

    private fun assertBits(expected: Double, actual: Double, what: String) =
        assertEquals(expected.toRawBits(), actual.toRawBits(), "$what: expected $expected, got $actual (bit for bit)")

    companion object {
        /** A vector's state: null headroom = NaN, null battery/thermal = unknown, null budget/floor = the default. */
        fun stateFromJson(s: JsonObject) = DeviceState(
            battery = s.optional("battery")?.asDouble("battery"),
            charging = s.optional("charging")?.asBoolean("charging"),
            powerSave = s.optional("power_save")?.asBoolean("power_save"),
            thermal = s.optional("thermal")?.asInt("thermal")?.let(Thermal::fromStatus),
            headroom = s.optional("headroom")?.asDouble("headroom"),
            latencyBudgetMs = s.optional("latency_budget_ms")?.asDouble("latency_budget_ms"),
            accuracyFloor = s.optional("accuracy_floor")?.asDouble("accuracy_floor"),
        )

        fun vectorsFile(): File {
            System.getProperty("ondevice.vectors")?.let { return File(it) }
            System.getenv("ONDEVICE_VECTORS")?.let { return File(it) }
            var dir: File? = File("").absoluteFile
            while (dir != null) {
                val candidate = File(dir, "tests/policy_vectors.json")
                if (candidate.isFile) return candidate
                dir = dir.parentFile
            }
            error("tests/policy_vectors.json not found: pass -Dondevice.vectors=PATH")
        }

        fun loadVectors(): JsonObject {
            val file = vectorsFile()
            return JsonValue.parse(file.readText(), file.path).asObject(file.path)
        }

        private fun JsonObject.field(key: String): JsonValue = this[key] ?: error("vectors: missing key $key")
    }
}

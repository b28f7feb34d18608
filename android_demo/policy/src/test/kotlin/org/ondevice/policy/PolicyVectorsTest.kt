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
 * Every vector of `tests/policy_vectors.json` (written by the Python policy): the table (with its per-level thermal
 * fronts) and its variants, the Android normalization rows, every step of every case, and the `thermal` section's
 * table and cases, compared exactly (numbers bit for bit).
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
        return caseTests("case", vectors.field("cases"), policy)
    }

    /**
     * The `thermal` section: the same manifest with latency tables that hold thermal tables, its own policy.json,
     * the table they give (a front per measured level) and its cases. Null in a file without one: no tests.
     */
    @TestFactory
    fun thermal(): List<DynamicTest> {
        val section = vectors.optional("thermal")?.asObject("thermal") ?: return emptyList()
        val thermalConfig = PolicyConfig.fromJson(section.field("policy"), "policy_vectors.json thermal.policy")
        val variant = JsonObject(manifest.members + ("latency" to section.field("latency")))
        val expect = section.field("table").asObject("thermal.table")
        val device = expect.optional("device")?.asString("thermal.table.device")
        val policy = Policy.create(thermalConfig, SubnetCatalog.fromJson(variant, "vectors thermal manifest"), device)
        val table = dynamicTest("thermal table for $device") { assertTable(expect, variant, device, thermalConfig) }
        return listOf(table) + caseTests("thermal case", section.field("cases"), policy)
    }

    /** One dynamic test per case of [cases], named "[kind]: name", replaying its steps through one session. */
    private fun caseTests(kind: String, cases: JsonValue, policy: Policy): List<DynamicTest> =
        cases.asArray(kind).map {
            val case = it.asObject(kind)
            val name = case.field("name").asString("name")
            dynamicTest("$kind: $name") {
                val session = PolicySession(policy)
                case.field("steps").asArray("steps").forEachIndexed { i, s ->
                    val step = s.asObject("step")
                    val decision = session.decide(
                        stateFromJson(step.field("state").asObject("state")),
                        step.field("t_s").asDouble("t_s"),
                    )
                    assertDecision(step.field("expect").asObject("expect"), decision, "$kind '$name' step $i")
                }
            }
        }

    private fun assertTable(
        expect: JsonObject,
        manifest: JsonObject,
        device: String?,
        config: PolicyConfig = this.config,
    ) {
        val table = SubnetTable.build(SubnetCatalog.fromJson(manifest, "vectors manifest"), config, device)
        val source = expect.field("source").asObject("source")
        assertEquals(source.field("kind").asString("kind"), table.source.kind)
        assertEquals(source.optional("device")?.asString("device"), table.source.tableName)
        assertEquals(expect.field("accuracy_key").asString("accuracy_key"), table.accuracyKey)
        assertFront(expect, table.front, table.candidates, "table")
        val thermal = expect.field("thermal").asArray("thermal").map { it.asObject("thermal") }
        assertEquals(thermal.map { it.field("level").asInt("level") }, table.thermal.map { it.level.ordinal }, "levels")
        for ((hot, got) in thermal.zip(table.thermal)) {
            assertFront(hot, got.front, got.candidates, "table at ${got.level}")
        }
    }

    /** [expect]'s `candidates` (gates, latency and accuracy bit for bit) and `front` (gates, cheapest first). */
    private fun assertFront(expect: JsonObject, front: List<SubNetwork>, candidates: List<SubNetwork>, what: String) {
        val rows = expect.field("candidates").asArray("candidates").map { it.asObject("candidate") }
        assertEquals(rows.map { it.field("gates").asString("gates") }, candidates.map { it.gates }, "$what candidates")
        for ((row, got) in rows.zip(candidates)) {
            assertBits(row.field("latency_ms").asDouble("latency_ms"), got.latencyMs, "$what: ${got.gates} latency_ms")
            assertBits(row.field("accuracy").asDouble("accuracy"), got.accuracy, "$what: ${got.gates} accuracy")
        }
        val gates = expect.field("front").asArray("front").map { it.asString("front") }
        assertEquals(gates, front.map { it.gates }, "$what front")
    }

    private fun assertDecision(expect: JsonObject, d: Decision, where: String) {
        assertEquals(expect.field("gates").asString("gates"), d.gates, "$where: gates")
        assertEquals(expect.field("target").asString("target"), d.target, "$where: target")
        assertEquals(expect.field("below_floor").asBoolean("below_floor"), d.belowFloor, "$where: below_floor")
        assertEquals(expect.field("over_budget").asBoolean("over_budget"), d.overBudget, "$where: over_budget")
        assertEquals(expect.field("switched").asBoolean("switched"), d.switched, "$where: switched")
        assertEquals(expect.field("held").asBoolean("held"), d.held, "$where: held")
        assertEquals(expect.field("level").asInt("level"), d.level.ordinal, "$where: level")
        assertEquals(expect.field("table_level").asInt("table_level"), d.tableLevel.ordinal, "$where: table_level")
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

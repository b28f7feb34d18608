package org.ondevice.policy

import org.ondevice.json.JsonArray
import org.ondevice.json.JsonException
import org.ondevice.json.JsonNull
import org.ondevice.json.JsonObject
import org.ondevice.json.JsonValue
import org.ondevice.json.asArray
import org.ondevice.json.asBoolean
import org.ondevice.json.asDouble
import org.ondevice.json.asInt
import org.ondevice.json.asObject
import org.ondevice.json.asString
import org.ondevice.json.required

/** Which latency of a table entry the policy plans with (`latency.statistic`). */
enum class LatencyStatistic(val key: String) {
    MEDIAN("median_ms"), P90("p90_ms"), MIN("min_ms");

    companion object {
        fun fromKey(key: String): LatencyStatistic? = entries.firstOrNull { it.key == key }
    }
}

data class LatencyParams(val statistic: LatencyStatistic, val defaultBudgetMs: Double, val fallbackMsPerGflop: Double)

/** [precision] null: the bundle's precision, else fp32. */
/** [slack]: the cheapest sub-network within [slack] (top-1) of the most accurate one the caps allow is chosen. */
data class AccuracyParams(val precision: String?, val defaultFloor: Double, val slack: Double)

/** Per level NONE..SHUTDOWN: expected [slowdown] and allowed [energy]; see docs/policy.md, section 5. */
data class ThermalParams(
    val slowdown: List<Double>,
    val energy: List<Double>,
    val headroomThresholds: List<Double>,
    val unknownLevel: Thermal,
    val iosLevels: List<Thermal>,
)

/** A battery below [below] (fraction, strict <) allows [energy] of the full energy per inference. */
data class BatteryTier(val below: Double, val energy: Double)

data class BatteryParams(
    val tiers: List<BatteryTier>,
    val unknownFraction: Double,
    val powerSaveEnergy: Double,
    val chargingIgnoresBattery: Boolean,
)

data class HysteresisParams(val upgradeMargin: Double, val minDwellUpS: Double, val minDwellDownS: Double)

/**
 * Everything `policy.json` holds. There are no defaults here: the numbers come from the file that
 * `ondevice policy init` (or the exporter) wrote, so the app never re-types a threshold.
 */
data class PolicyConfig(
    val latency: LatencyParams,
    val accuracy: AccuracyParams,
    val thermal: ThermalParams,
    val battery: BatteryParams,
    val hysteresis: HysteresisParams,
) {
    companion object {
        const val VERSION = 1

        /** Parses `policy.json` text; see [fromJson]. */
        fun parse(text: String, source: String = "policy.json"): PolicyConfig =
            fromJson(JsonValue.parse(text, source), source)

        /**
         * Reads a `policy.json` object as strictly as the Python reader: another `policy_version`, a missing key
         * or an unknown key is an error (a typo must not fall back to a default silently), and so is a value the
         * decision cannot use (wrong list length, level outside 0..6, fraction outside 0..1, budget <= 0). The
         * monotonicity rules (docs/policy.md, section 5) are checked by Python when it writes the file.
         */
        fun fromJson(json: JsonValue, source: String = "policy.json"): PolicyConfig =
            try {
                read(json.asObject(source), source)
            } catch (e: JsonException) {
                throw PolicyConfigException(e.message ?: "invalid $source")
            }

        private fun read(root: JsonObject, source: String): PolicyConfig {
            val version = root["policy_version"]
            if (version?.toJson() != VERSION.toString()) {
                throw PolicyConfigException(
                    "$source has policy_version ${version?.toJson()}; this app reads version $VERSION. " +
                        "Write a version-$VERSION file with `ondevice policy init BUNDLE`",
                )
            }
            val sections = Section(root, source, "", setOf("policy_version", "ondevice_version") + SECTIONS)

            val lat = sections.section("latency", "statistic", "default_budget_ms", "fallback_ms_per_gflop")
            val statistic = lat.string("statistic").let { key ->
                LatencyStatistic.fromKey(key)
                    ?: lat.fail("statistic", "\"$key\": must be one of ${LatencyStatistic.entries.map { it.key }}")
            }
            val latency =
                LatencyParams(statistic, lat.positive("default_budget_ms"), lat.positive("fallback_ms_per_gflop"))

            val acc = sections.section("accuracy", "precision", "default_floor", "slack")
            val precision = if (acc.value("precision") == JsonNull) null else acc.string("precision")
            val slack = acc.number("slack")
            if (!(slack >= 0.0 && slack < 1.0)) acc.fail("slack", "$slack: must be in [0, 1)")
            val accuracy = AccuracyParams(precision, acc.fraction("default_floor"), slack)

            val th =
                sections.section("thermal", "slowdown", "energy", "headroom_thresholds", "unknown_level", "ios_levels")
            val levels = Thermal.entries.size
            val thermal = ThermalParams(
                slowdown = th.numbers("slowdown", size = levels).onEachIndexed { i, x ->
                    if (!(x >= 1.0)) th.fail("slowdown[$i]", "$x: must be >= 1")
                },
                energy = th.numbers("energy", size = levels).onEachIndexed { i, x ->
                    if (!(x in 0.0..1.0)) th.fail("energy[$i]", "$x: must be in [0, 1]")
                },
                headroomThresholds = th.numbers("headroom_thresholds").also {
                    if (it.size > levels - 1) th.fail("headroom_thresholds", "at most ${levels - 1} numbers")
                },
                unknownLevel = th.level(th.value("unknown_level"), "unknown_level"),
                iosLevels = th.array("ios_levels").mapIndexed { i, v -> th.level(v, "ios_levels[$i]") }.also {
                    if (it.size != 4) th.fail("ios_levels", "must list 4 levels (nominal, fair, serious, critical)")
                },
            )

            val bat = sections.section(
                "battery", "tiers", "unknown_fraction", "power_save_energy", "charging_ignores_battery",
            )
            val tiers = bat.array("tiers").mapIndexed { i, v ->
                val at = "tiers[$i]"
                val tier = Section(v.asObject(bat.where(at)), source, "${bat.prefix}$at.", setOf("below", "energy"))
                val below = tier.number("below")
                if (!(below > 0.0 && below <= 1.0)) tier.fail("below", "$below: must be in (0, 1]")
                BatteryTier(below, tier.fraction("energy"))
            }
            val battery = BatteryParams(
                tiers = tiers,
                unknownFraction = bat.fraction("unknown_fraction"),
                powerSaveEnergy = bat.fraction("power_save_energy"),
                chargingIgnoresBattery = bat.boolean("charging_ignores_battery"),
            )

            val hy = sections.section("hysteresis", "upgrade_margin", "min_dwell_up_s", "min_dwell_down_s")
            val margin = hy.number("upgrade_margin")
            if (!(margin >= 0.0 && margin < 1.0)) hy.fail("upgrade_margin", "$margin: must be in [0, 1)")
            val hysteresis =
                HysteresisParams(margin, hy.nonNegative("min_dwell_up_s"), hy.nonNegative("min_dwell_down_s"))

            return PolicyConfig(latency, accuracy, thermal, battery, hysteresis)
        }

        private val SECTIONS = listOf("latency", "accuracy", "thermal", "battery", "hysteresis")
    }
}

/** A `policy.json` that cannot be used; the message names the file, the key and the rule. */
class PolicyConfigException(message: String) : IllegalArgumentException(message)

/** One object of `policy.json` whose keys must be exactly [keys] (`ondevice_version` may be absent). */
private class Section(val obj: JsonObject, val source: String, val prefix: String, keys: Set<String>) {
    init {
        (obj.keys - keys).minOrNull()?.let { unknown ->
            throw PolicyConfigException(
                "$source: unknown key $prefix$unknown; known keys: ${keys.sorted().joinToString { prefix + it }}",
            )
        }
        (keys - obj.keys - "ondevice_version").minOrNull()?.let { missing ->
            throw PolicyConfigException(
                "$source: missing key $prefix$missing; every key is required. " +
                    "`ondevice policy init BUNDLE` writes a complete file",
            )
        }
    }

    fun where(key: String) = "$source: $prefix$key"

    fun fail(key: String, rule: String): Nothing = throw PolicyConfigException("${where(key)} = $rule")

    fun section(name: String, vararg keys: String) =
        Section(value(name).asObject(where(name)), source, "$prefix$name.", keys.toSet())

    fun value(key: String): JsonValue = obj.required(key, where(key))

    fun string(key: String) = value(key).asString(where(key))

    fun boolean(key: String) = value(key).asBoolean(where(key))

    fun array(key: String): JsonArray = value(key).asArray(where(key))

    fun number(key: String): Double = value(key).asDouble(where(key)).also {
        if (!it.isFinite()) fail(key, "$it: must be a finite number")
    }

    fun positive(key: String) = number(key).also { if (!(it > 0.0)) fail(key, "$it: must be > 0") }

    fun nonNegative(key: String) = number(key).also { if (!(it >= 0.0)) fail(key, "$it: must be >= 0") }

    fun fraction(key: String) = number(key).also { if (!(it in 0.0..1.0)) fail(key, "$it: must be in [0, 1]") }

    fun numbers(key: String, size: Int? = null): List<Double> {
        val items = array(key).mapIndexed { i, v -> v.asDouble(where("$key[$i]")) }
        if (size != null && items.size != size) fail(key, "${items.size} numbers: must list $size, one per level")
        return items
    }

    fun level(value: JsonValue, key: String): Thermal {
        val code = value.asInt(where(key))
        return if (code in Thermal.entries.indices) Thermal.entries[code] else fail(key, "$code: must be a level 0..6")
    }
}

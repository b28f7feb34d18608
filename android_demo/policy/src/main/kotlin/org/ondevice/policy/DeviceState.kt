package org.ondevice.policy

/** Android's `PowerManager.THERMAL_STATUS_*` levels, the policy's common thermal scale (docs/policy.md, section 1). */
enum class Thermal {
    NONE, LIGHT, MODERATE, SEVERE, CRITICAL, EMERGENCY, SHUTDOWN;

    /** The key of a latency table measured at this status (`manifest.latency[device].thermal`): "severe", ... */
    val tableKey: String get() = name.lowercase()

    companion object {
        /** The statuses a thermal latency table can be measured at: all but [NONE] (the cool table). */
        val hotter: List<Thermal> get() = entries.drop(1)

        /** The status of a thermal latency table's key ("moderate" -> [MODERATE]); null for anything else. */
        fun fromTableKey(key: String): Thermal? = hotter.firstOrNull { it.tableKey == key }

        /** A status code as the OS reports it: negative = unknown (null), above 6 counts as [SHUTDOWN]. */
        fun fromStatus(code: Int): Thermal? = when {
            code < 0 -> null
            code >= entries.size -> SHUTDOWN
            else -> entries[code]
        }
    }
}

/**
 * One reading of the phone, on the common scale; null means "the phone did not say".
 *
 * Unknown readings are real inputs, not errors: the policy gives each a meaning from `policy.json`
 * (an unknown battery is `battery.unknown_fraction`, an unknown thermal status with no headroom is
 * `thermal.unknown_level`, ...). Out-of-range values are accepted here and clamped by the policy.
 *
 * @property battery charge as a fraction 0..1.
 * @property charging on external power: plugged in, whether the battery is charging, full or held by a charge
 *   limit (the policy's `battery.charging_ignores_battery` is about the power source, not the battery's state).
 * @property powerSave Android battery saver.
 * @property thermal OS thermal status.
 * @property headroom `PowerManager.getThermalHeadroom` (1.0 = SEVERE threshold); null or NaN = unknown.
 * @property latencyBudgetMs the app's latency budget per inference; null = `latency.default_budget_ms`.
 * @property accuracyFloor lowest acceptable top-1 (0..1); null = `accuracy.default_floor`.
 */
data class DeviceState(
    val battery: Double? = null,
    val charging: Boolean? = null,
    val powerSave: Boolean? = null,
    val thermal: Thermal? = null,
    val headroom: Double? = null,
    val latencyBudgetMs: Double? = null,
    val accuracyFloor: Double? = null,
) {
    companion object {
        /**
         * From Android's readings, as the platform encodes them:
         * `BatteryManager.BATTERY_PROPERTY_CAPACITY` (percent; negative, e.g. `Integer.MIN_VALUE`, when unsupported),
         * `BatteryManager.EXTRA_PLUGGED` from the sticky `ACTION_BATTERY_CHANGED` (0 = on battery, else a
         * `BATTERY_PLUGGED_*` bit), `PowerManager.isPowerSaveMode()`, `getCurrentThermalStatus()` and
         * `getThermalHeadroom(s)` (NaN when unsupported or polled too often).
         */
        fun fromAndroid(
            capacityPercent: Int?,
            plugged: Int?,
            powerSave: Boolean?,
            thermalStatus: Int?,
            headroom: Double?,
            latencyBudgetMs: Double? = null,
            accuracyFloor: Double? = null,
        ) = DeviceState(
            battery = capacityPercent?.takeIf { it >= 0 }?.let { it / 100.0 },
            charging = plugged?.takeIf { it >= 0 }?.let { it != 0 },
            powerSave = powerSave,
            thermal = thermalStatus?.let(Thermal::fromStatus),
            headroom = headroom,
            latencyBudgetMs = latencyBudgetMs,
            accuracyFloor = accuracyFloor,
        )
    }
}

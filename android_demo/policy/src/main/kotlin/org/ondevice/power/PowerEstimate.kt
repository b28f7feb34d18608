package org.ondevice.power

import kotlin.math.abs
import kotlin.math.max

/**
 * One battery reading at [timeMs] (a monotonic clock, `SystemClock.elapsedRealtime`). What the phone does not report
 * is null:
 * - [currentMicroAmps]: `BatteryManager.getLongProperty(BATTERY_PROPERTY_CURRENT_NOW)`, µA. Its sign differs between
 *   vendors (the documentation says positive = into the battery; many phones report discharge as positive), so only
 *   its magnitude is used.
 * - [voltageMilliVolts]: `EXTRA_VOLTAGE` of the sticky `ACTION_BATTERY_CHANGED`, mV.
 * - [energyNanoWattHours]: `BATTERY_PROPERTY_ENERGY_COUNTER`, the battery's remaining energy in nWh.
 * - [plugged]: `EXTRA_PLUGGED != 0` (on external power: the battery readings then describe the charger, not the load).
 */
data class PowerSample(
    val timeMs: Long,
    val currentMicroAmps: Long?,
    val voltageMilliVolts: Int?,
    val energyNanoWattHours: Long?,
    val plugged: Boolean = false,
)

/** How the watts were obtained; [key] is the latency file's `power.method`. */
enum class PowerMethod(val key: String) {
    /** `BATTERY_PROPERTY_ENERGY_COUNTER` deltas: energy the battery gave over time. */
    ENERGY_COUNTER("energy-counter"),

    /** The mean of |`CURRENT_NOW`| x `EXTRA_VOLTAGE` over the window's samples. */
    CURRENT_VOLTAGE("current-voltage"),
}

/**
 * The battery power of the phone in an idle window (the app idle, screen on) and a busy window (the super-net running
 * back to back), in W, averaged over [idleS] and [busyS] seconds, from [samples] readings in all. [activeW] is what
 * running the network adds: `max(0, busyW - idleW)`.
 */
data class PowerEstimate(
    val method: PowerMethod,
    val idleW: Double,
    val busyW: Double,
    val idleS: Double,
    val busyS: Double,
    val samples: Int,
) {
    val activeW: Double get() = max(0.0, busyW - idleW)

    init {
        require(idleW.isFinite() && idleW >= 0 && busyW.isFinite() && busyW >= 0) {
            "power must be finite and >= 0 W, got idle $idleW and busy $busyW"
        }
        require(idleS.isFinite() && idleS > 0 && busyS.isFinite() && busyS > 0) {
            "windows must last > 0 s, got idle $idleS and busy $busyS"
        }
        require(samples >= 1) { "need at least one sample, got $samples" }
    }
}

/** Why a window's readings give no number. */
enum class PowerRefusal {
    /** On external power: the battery's current and energy describe charging, not the phone's load. */
    PLUGGED_IN,

    /** Fewer than [MIN_SAMPLES] readings in a window. */
    TOO_FEW_SAMPLES,

    /** No energy counter that changes, and not [MIN_SAMPLES] readings with both current and voltage in a window. */
    NO_CURRENT_OR_VOLTAGE,

    /** A window of 0 s, or a result that is not a finite number. */
    NOT_FINITE,

    /** Outside [MIN_PLAUSIBLE_W, MAX_PLAUSIBLE_W] with the screen on: the phone reports other units (mA, V). */
    IMPLAUSIBLE,
}

/** What [estimatePower] makes of two windows: a number, or the reason there is none. */
sealed interface PowerResult {
    data class Measured(val estimate: PowerEstimate) : PowerResult

    data class Refused(val reason: PowerRefusal, val message: String) : PowerResult
}

/** Readings per window below which no number is given. */
const val MIN_SAMPLES = 5

/**
 * A phone with its screen on draws well over 10 mW and under 100 W; outside that the units are not the documented
 * ones (some phones report `CURRENT_NOW` in mA, a few `EXTRA_VOLTAGE` in V), and the number is refused.
 */
const val MIN_PLAUSIBLE_W = 0.01
const val MAX_PLAUSIBLE_W = 100.0

/** 1 nWh = 3.6e-6 J; over milliseconds: W = nWh * 3.6e-3 / ms. */
private const val JOULES_PER_NANOWATT_HOUR_PER_MS = 3.6e-3

/** µA x mV = nW. */
private const val WATTS_PER_MICROAMP_MILLIVOLT = 1e-9

/**
 * The power of the [idle] and [busy] windows' readings (each in time order). Both windows use the same method, so
 * that their difference means something: the energy counter when every reading of both windows has one and it
 * changes at least twice in each window and goes down (the energy between its first and last change, over the time
 * between them: the counter moves in steps, the samples only see when), else the mean over each window of
 * |current| x voltage, from the readings that have both (the window's first to last reading is its duration).
 * Refused (never thrown) when the data cannot give a number; throws only for readings out of time order.
 */
fun estimatePower(idle: List<PowerSample>, busy: List<PowerSample>): PowerResult {
    for ((name, window) in listOf("idle" to idle, "busy" to busy)) {
        require(window.zipWithNext().all { (a, b) -> b.timeMs >= a.timeMs }) { "$name readings are not in time order" }
    }
    if ((idle + busy).any { it.plugged }) {
        return PowerResult.Refused(
            PowerRefusal.PLUGGED_IN,
            "the phone was on external power: unplug it, the battery then describes the charger, not the phone",
        )
    }
    if (idle.size < MIN_SAMPLES || busy.size < MIN_SAMPLES) {
        return PowerResult.Refused(
            PowerRefusal.TOO_FEW_SAMPLES,
            "need $MIN_SAMPLES readings per window, got ${idle.size} idle and ${busy.size} busy",
        )
    }
    val samples = idle.size + busy.size
    val idleCounter = counterWindow(idle)
    val busyCounter = counterWindow(busy)
    if (idleCounter != null && busyCounter != null) {
        return checked(PowerMethod.ENERGY_COUNTER, idleCounter, busyCounter, samples)
    }
    val idleCv = currentVoltageWindow(idle)
    val busyCv = currentVoltageWindow(busy)
    if (idleCv == null || busyCv == null) {
        val idleN = idle.count { it.currentMicroAmps != null && it.voltageMilliVolts != null }
        val busyN = busy.count { it.currentMicroAmps != null && it.voltageMilliVolts != null }
        return PowerResult.Refused(
            PowerRefusal.NO_CURRENT_OR_VOLTAGE,
            "no changing energy counter, and not $MIN_SAMPLES readings with both current and voltage per window " +
                "($idleN idle, $busyN busy)",
        )
    }
    return checked(PowerMethod.CURRENT_VOLTAGE, idleCv, busyCv, samples)
}

/** A window's mean power in W over [seconds]. */
private class WindowPower(val watts: Double, val seconds: Double)

private fun checked(method: PowerMethod, idle: WindowPower, busy: WindowPower, samples: Int): PowerResult {
    val numbers = listOf(idle.watts, busy.watts, idle.seconds, busy.seconds)
    if (!numbers.all { it.isFinite() } || idle.seconds <= 0 || busy.seconds <= 0) {
        return PowerResult.Refused(
            PowerRefusal.NOT_FINITE,
            "${method.key}: idle ${idle.watts} W over ${idle.seconds} s, busy ${busy.watts} W over ${busy.seconds} s",
        )
    }
    for ((name, w) in listOf("idle" to idle.watts, "busy" to busy.watts)) {
        if (w < MIN_PLAUSIBLE_W || w > MAX_PLAUSIBLE_W) {
            return PowerResult.Refused(
                PowerRefusal.IMPLAUSIBLE,
                "${method.key}: $name power $w W is outside [$MIN_PLAUSIBLE_W, $MAX_PLAUSIBLE_W] W with the screen " +
                    "on; this phone reports other units than µA / mV / nWh",
            )
        }
    }
    return PowerResult.Measured(PowerEstimate(method, idle.watts, busy.watts, idle.seconds, busy.seconds, samples))
}

/** The energy counter's power, or null when a reading lacks it, or it does not change twice and go down. */
private fun counterWindow(window: List<PowerSample>): WindowPower? {
    val counter = window.map { it.energyNanoWattHours ?: return null }
    val changes = (1 until counter.size).filter { counter[it] != counter[it - 1] }
    if (changes.size < 2) return null
    val first = changes.first()
    val last = changes.last()
    val usedNwh = counter[first].toDouble() - counter[last].toDouble()
    if (usedNwh <= 0) return null // rising: not a discharge this counter can measure
    val ms = (window[last].timeMs - window[first].timeMs).toDouble()
    return WindowPower(usedNwh * JOULES_PER_NANOWATT_HOUR_PER_MS / ms, ms / 1000)
}

/** The mean of |current| x voltage over the readings with both, or null when fewer than [MIN_SAMPLES] have both. */
private fun currentVoltageWindow(window: List<PowerSample>): WindowPower? {
    val both = window.filter { it.currentMicroAmps != null && it.voltageMilliVolts != null }
    if (both.size < MIN_SAMPLES) return null
    val watts = both.map { s ->
        abs(s.currentMicroAmps!!.toDouble()) * s.voltageMilliVolts!! * WATTS_PER_MICROAMP_MILLIVOLT
    }
    return WindowPower(watts.sum() / watts.size, (window.last().timeMs - window.first().timeMs) / 1000.0)
}

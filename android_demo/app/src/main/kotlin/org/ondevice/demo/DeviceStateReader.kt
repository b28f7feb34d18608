package org.ondevice.demo

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.os.BatteryManager
import android.os.Build
import android.os.PowerManager
import android.os.SystemClock
import androidx.core.content.ContextCompat
import java.io.Closeable
import org.ondevice.policy.DeviceState
import org.ondevice.runtime.ThrottledReading

/**
 * Reads what the policy needs from the OS: thermal status and headroom (`PowerManager`), power-save mode, battery
 * level and whether the phone is on external power (`BatteryManager`). Every reading the phone does not give becomes
 * null, which the policy treats as documented in docs/policy.md (unknown is an input, not an error).
 */
class DeviceStateReader(context: Context) {
    private val context = context.applicationContext
    private val power = context.getSystemService(PowerManager::class.java)
    private val battery = context.getSystemService(BatteryManager::class.java)

    /**
     * `getThermalHeadroom(10)` (API 30+), polled at most once a second: faster calls return NaN, so in between the
     * previous value is reused. NaN (unsupported, or no data yet) stays NaN: the policy ignores it.
     */
    private val headroom: ThrottledReading<Double>? =
        if (power != null && Build.VERSION.SDK_INT >= Build.VERSION_CODES.R) {
            ThrottledReading(HEADROOM_MIN_INTERVAL_MS, SystemClock::elapsedRealtime) {
                power.getThermalHeadroom(HEADROOM_FORECAST_S).toDouble()
            }
        } else {
            null
        }

    /** One reading, normalized by the plain-Kotlin [DeviceState.fromAndroid] that the JVM tests check. */
    fun read(latencyBudgetMs: Double? = null, accuracyFloor: Double? = null): DeviceState {
        val sticky = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        return DeviceState.fromAndroid(
            capacityPercent = battery?.getIntProperty(BatteryManager.BATTERY_PROPERTY_CAPACITY),
            // EXTRA_PLUGGED, not EXTRA_STATUS: on a charger, a full phone or one held at a charge limit is not charging
            plugged = sticky?.takeIf { it.hasExtra(BatteryManager.EXTRA_PLUGGED) }
                ?.getIntExtra(BatteryManager.EXTRA_PLUGGED, 0),
            powerSave = power?.isPowerSaveMode,
            thermalStatus = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) power?.currentThermalStatus else null,
            headroom = headroom?.get(),
            latencyBudgetMs = latencyBudgetMs,
            accuracyFloor = accuracyFloor,
        )
    }

    /**
     * Calls [onChange] on the main thread when a reading may have changed: thermal status (API 29+), thermal
     * headroom (API 36+), power-save mode and battery broadcasts. Close the result to stop listening.
     */
    fun listen(onChange: () -> Unit): Closeable {
        val executor = ContextCompat.getMainExecutor(context)
        val receiver = object : BroadcastReceiver() {
            override fun onReceive(context: Context, intent: Intent) = onChange()
        }
        val filter = IntentFilter().apply {
            addAction(PowerManager.ACTION_POWER_SAVE_MODE_CHANGED)
            addAction(Intent.ACTION_BATTERY_CHANGED)
            addAction(Intent.ACTION_POWER_CONNECTED)
            addAction(Intent.ACTION_POWER_DISCONNECTED)
        }
        ContextCompat.registerReceiver(context, receiver, filter, ContextCompat.RECEIVER_NOT_EXPORTED)
        val stops = mutableListOf<() -> Unit>({ context.unregisterReceiver(receiver) })
        if (power != null && Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) {
            val thermal = PowerManager.OnThermalStatusChangedListener { onChange() }
            power.addThermalStatusListener(executor, thermal)
            stops += { power.removeThermalStatusListener(thermal) }
        }
        if (power != null && Build.VERSION.SDK_INT >= Build.VERSION_CODES.BAKLAVA) {
            val headroom = PowerManager.OnThermalHeadroomChangedListener { _, _, _, _ -> onChange() }
            power.addThermalHeadroomListener(executor, headroom)
            stops += { power.removeThermalHeadroomListener(headroom) }
        }
        return Closeable { stops.forEach { it() } }
    }

    companion object {
        /** The forecast the policy's headroom thresholds were chosen for (docs/policy.md, section 1). */
        const val HEADROOM_FORECAST_S = 10
        private const val HEADROOM_MIN_INTERVAL_MS = 1_000L

        /** This phone's name as a latency-table key: the benchmark writes it, the policy looks it up. */
        val deviceName: String get() = "${Build.MANUFACTURER} ${Build.MODEL}"
    }
}

package org.ondevice.demo

import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.os.BatteryManager
import org.ondevice.power.PowerReader
import org.ondevice.power.PowerSample

/**
 * One battery reading for the benchmark's power measurement ([org.ondevice.power.measurePower]), with what the
 * platform documents: `getLongProperty(BATTERY_PROPERTY_CURRENT_NOW)` (µA, instantaneous; the sign is the vendor's)
 * and `getLongProperty(BATTERY_PROPERTY_ENERGY_COUNTER)` (remaining energy, nWh), `Long.MIN_VALUE` when the phone
 * does not provide them; `EXTRA_VOLTAGE` (mV) and `EXTRA_PLUGGED` (0 = on battery) of the sticky
 * `ACTION_BATTERY_CHANGED`, which the system refreshes when the battery state changes (voltage moves slowly). Needs no
 * permission. Call it from one background thread.
 */
class BatteryPowerReader(context: Context) : PowerReader {
    private val context = context.applicationContext
    private val battery = context.getSystemService(BatteryManager::class.java)
    private val filter = IntentFilter(Intent.ACTION_BATTERY_CHANGED)

    override fun read(timeMs: Long): PowerSample {
        val sticky = context.registerReceiver(null, filter)
        return PowerSample(
            timeMs = timeMs,
            currentMicroAmps = property(BatteryManager.BATTERY_PROPERTY_CURRENT_NOW),
            voltageMilliVolts = sticky?.takeIf { it.hasExtra(BatteryManager.EXTRA_VOLTAGE) }
                ?.getIntExtra(BatteryManager.EXTRA_VOLTAGE, 0)?.takeIf { it > 0 },
            energyNanoWattHours = property(BatteryManager.BATTERY_PROPERTY_ENERGY_COUNTER),
            // no extra (no sticky broadcast yet) counts as on battery; DeviceStateReader reads it the same way
            plugged = (sticky?.getIntExtra(BatteryManager.EXTRA_PLUGGED, 0) ?: 0) != 0,
        )
    }

    private fun property(id: Int): Long? = battery?.getLongProperty(id)?.takeUnless { it == Long.MIN_VALUE }
}

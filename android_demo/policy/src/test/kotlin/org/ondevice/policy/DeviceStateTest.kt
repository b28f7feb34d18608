package org.ondevice.policy

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

/** Android's battery readings: the power source is `EXTRA_PLUGGED`, not the battery's `EXTRA_STATUS`. */
class DeviceStateTest {
    private fun charging(plugged: Int?) = DeviceState.fromAndroid(
        capacityPercent = 80, plugged = plugged, powerSave = false, thermalStatus = 0, headroom = null,
    ).charging

    @Test
    fun `AC, USB, wireless and dock are external power, also when the battery is full or held at a charge limit`() {
        // BATTERY_PLUGGED_AC 1, USB 2, WIRELESS 4, DOCK 8: a phone at 80% behind a charge limit reports
        // EXTRA_STATUS NOT_CHARGING (4) and a full one FULL (5) while plugged; neither is read, so both count.
        assertEquals(listOf(true, true, true, true), listOf(1, 2, 4, 8).map(::charging))
    }

    @Test
    fun `unplugged is on battery, a missing extra is unknown`() {
        assertEquals(false, charging(0))
        assertEquals(null, charging(null)) // no sticky ACTION_BATTERY_CHANGED, or no EXTRA_PLUGGED in it
        assertEquals(null, charging(-1))
    }
}

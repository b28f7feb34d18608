package org.ondevice.power

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assertions.fail
import org.junit.jupiter.api.Test

class PowerEstimateTest {
    /** [n] readings every 100 ms from [startMs], with this current, voltage and energy counter (by index). */
    private fun window(
        n: Int,
        currentUa: Long?,
        voltageMv: Int? = 3_900,
        startMs: Long = 0,
        plugged: Boolean = false,
        energy: (Int) -> Long? = { null },
    ) = List(n) { i -> PowerSample(startMs + 100L * i, currentUa, voltageMv, energy(i), plugged) }

    private fun measured(result: PowerResult): PowerEstimate =
        (result as? PowerResult.Measured)?.estimate ?: fail("expected a number, got $result")

    private fun refused(result: PowerResult): PowerRefusal =
        (result as? PowerResult.Refused)?.reason ?: fail("expected a refusal, got $result")

    @Test
    fun `constant current at constant voltage, worked out by hand`() {
        // 500 mA at 3.9 V = 1.95 W idle; 1200 mA = 4.68 W busy; running the network adds 2.73 W
        val idle = window(101, 500_000) // 10 s
        val busy = window(201, 1_200_000, startMs = 20_000) // 20 s
        val e = measured(estimatePower(idle, busy))
        assertEquals(PowerMethod.CURRENT_VOLTAGE, e.method)
        assertEquals(1.95, e.idleW, 1e-12)
        assertEquals(4.68, e.busyW, 1e-12)
        assertEquals(2.73, e.activeW, 1e-12)
        assertEquals(10.0, e.idleS)
        assertEquals(20.0, e.busyS)
        assertEquals(302, e.samples)
    }

    @Test
    fun `the current's sign is the vendor's, only its magnitude counts`() {
        val positive = measured(estimatePower(window(11, 500_000), window(11, 1_200_000)))
        val negative = measured(estimatePower(window(11, -500_000), window(11, -1_200_000)))
        assertEquals(positive, negative)
        // and mixed signs within a window (a vendor flipping, or noise around a sign convention) average magnitudes
        val mixed = List(10) { i -> PowerSample(100L * i, if (i % 2 == 0) 400_000 else -600_000, 3_900, null) }
        assertEquals(1.95, measured(estimatePower(mixed, window(10, 1_200_000))).idleW, 1e-12)
    }

    @Test
    fun `the mean of current times voltage, per reading`() {
        // (1 A x 4 V + 0.5 A x 3.8 V + 2 A x 3.5 V + 1 A x 4 V + 0.5 A x 4 V) / 5 = (4 + 1.9 + 7 + 4 + 2) / 5 = 3.78 W
        val currents = listOf(1_000_000L, 500_000L, 2_000_000L, 1_000_000L, 500_000L)
        val volts = listOf(4_000, 3_800, 3_500, 4_000, 4_000)
        val busy = List(5) { PowerSample(100L * it, currents[it], volts[it], null) }
        val e = measured(estimatePower(window(5, 250_000, 4_000), busy))
        assertEquals(1.0, e.idleW, 1e-12)
        assertEquals(3.78, e.busyW, 1e-12)
        assertEquals(2.78, e.activeW, 1e-12)
        assertEquals(0.4, e.busyS, 1e-12)
    }

    @Test
    fun `busy below idle is no negative active power`() {
        val e = measured(estimatePower(window(5, 600_000), window(5, 500_000)))
        assertEquals(0.0, e.activeW)
        assertTrue(e.busyW < e.idleW)
    }

    @Test
    fun `the energy counter is preferred when it changes, and read between its first and last step`() {
        // idle: -500,000 nWh every 1 s (10 readings) = 0.5 mWh/s = 1.8 W; busy: -1,250,000 nWh per s = 4.5 W.
        // The current says something else (1.95 / 4.68 W): the counter wins.
        val idle = window(101, 500_000) { i -> 50_000_000_000L - 500_000L * ((i + 5) / 10) }
        val busy = window(201, 1_200_000, startMs = 20_000) { i -> 40_000_000_000L - 1_250_000L * ((i + 3) / 10) }
        val e = measured(estimatePower(idle, busy))
        assertEquals(PowerMethod.ENERGY_COUNTER, e.method)
        assertEquals(1.8, e.idleW, 1e-9)
        assertEquals(4.5, e.busyW, 1e-9)
        assertEquals(2.7, e.activeW, 1e-9)
        // idle steps at readings 5, 15, ..., 95: 9 s between the first and last; busy at 7, ..., 197: 19 s
        assertEquals(9.0, e.idleS, 1e-12)
        assertEquals(19.0, e.busyS, 1e-12)
        assertEquals(302, e.samples)
    }

    @Test
    fun `a counter that does not change, changes once, is missing or rises falls back to current x voltage`() {
        val constant: (Int) -> Long? = { 7_000_000_000L }
        val once: (Int) -> Long? = { i -> if (i < 5) 7_000_000_000L else 6_999_000_000L }
        val rising: (Int) -> Long? = { i -> 7_000_000_000L + 1_000_000L * i }
        val sometimes: (Int) -> Long? = { i -> if (i == 3) null else 7_000_000_000L - 1_000_000L * i }
        val steady: (Int) -> Long? = { i -> 7_000_000_000L - 1_000_000L * i }
        for (idleCounter in listOf(constant, once, rising, sometimes)) {
            val idle = window(10, 500_000, energy = idleCounter)
            val busy = window(10, 1_200_000, energy = steady) // usable in the busy window alone: not enough
            val e = measured(estimatePower(idle, busy))
            assertEquals(PowerMethod.CURRENT_VOLTAGE, e.method)
            assertEquals(1.95, e.idleW, 1e-12)
            assertEquals(4.68, e.busyW, 1e-12)
        }
    }

    @Test
    fun `on external power there is no number`() {
        val busy = window(10, 1_200_000)
        assertEquals(PowerRefusal.PLUGGED_IN, refused(estimatePower(window(10, 500_000, plugged = true), busy)))
        val pluggedMidway = busy.mapIndexed { i, s -> s.copy(plugged = i == 7) }
        assertEquals(PowerRefusal.PLUGGED_IN, refused(estimatePower(window(10, 500_000), pluggedMidway)))
    }

    @Test
    fun `fewer than five readings in a window is too few`() {
        assertEquals(PowerRefusal.TOO_FEW_SAMPLES, refused(estimatePower(window(4, 500_000), window(50, 1_200_000))))
        assertEquals(PowerRefusal.TOO_FEW_SAMPLES, refused(estimatePower(window(50, 500_000), window(4, 1_200_000))))
        assertEquals(PowerRefusal.TOO_FEW_SAMPLES, refused(estimatePower(emptyList(), emptyList())))
        measured(estimatePower(window(5, 500_000), window(5, 1_200_000))) // five is enough
    }

    @Test
    fun `no current or no voltage, and no energy counter, is no number`() {
        val busy = window(10, 1_200_000)
        assertEquals(PowerRefusal.NO_CURRENT_OR_VOLTAGE, refused(estimatePower(window(10, null), busy)))
        assertEquals(PowerRefusal.NO_CURRENT_OR_VOLTAGE, refused(estimatePower(window(10, 500_000, null), busy)))
        // a reading missing one of them is left out; four of ten with both is too few
        val partly = window(10, 500_000).mapIndexed { i, s -> if (i < 6) s.copy(voltageMilliVolts = null) else s }
        assertEquals(PowerRefusal.NO_CURRENT_OR_VOLTAGE, refused(estimatePower(window(10, 500_000), partly)))
        val fiveOfTen = window(10, 500_000).mapIndexed { i, s -> if (i < 5) s.copy(currentMicroAmps = null) else s }
        assertEquals(1.95, measured(estimatePower(fiveOfTen, busy)).idleW, 1e-12)
    }

    @Test
    fun `a window of no time or an infinite rate is no number`() {
        val sameInstant = List(5) { PowerSample(1_000, 500_000, 3_900, null) }
        assertEquals(PowerRefusal.NOT_FINITE, refused(estimatePower(sameInstant, window(5, 1_200_000))))
        // the counter steps twice within one millisecond reading: energy over 0 s
        val counter = listOf(9_000L, 8_000L, 7_000L, 7_000L, 7_000L)
        val times = listOf(0L, 100L, 100L, 200L, 300L)
        val burst = List(5) { PowerSample(times[it], 500_000, 3_900, counter[it]) }
        val busy = window(5, 1_200_000, energy = { i -> 9_000_000L - 1_000_000L * i })
        assertEquals(PowerRefusal.NOT_FINITE, refused(estimatePower(burst, busy)))
    }

    @Test
    fun `other units than microamps and millivolts are refused, not written`() {
        // CURRENT_NOW in mA (500 for 500 mA): 500 uA x 3.9 V = 1.95 mW with the screen on
        assertEquals(PowerRefusal.IMPLAUSIBLE, refused(estimatePower(window(10, 500), window(10, 1_200))))
        // EXTRA_VOLTAGE in V (4 for 4 V): 0.5 A x 4 mV = 2 mW
        assertEquals(PowerRefusal.IMPLAUSIBLE, refused(estimatePower(window(10, 500_000, 4), window(10, 1_200_000, 4))))
        // CURRENT_NOW in nA: 1950 W
        val nanoAmps = estimatePower(window(10, 500_000_000), window(10, 1_200_000_000))
        assertEquals(PowerRefusal.IMPLAUSIBLE, refused(nanoAmps))
    }

    @Test
    fun `readings out of time order are a bug, not data`() {
        val backwards = window(5, 500_000).reversed()
        assertThrows(IllegalArgumentException::class.java) { estimatePower(backwards, window(5, 1_200_000)) }
    }
}

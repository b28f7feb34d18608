package org.ondevice.power

import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class PowerSamplingTest {
    /** A fake clock: [sleep] and slow readings move it; nothing waits for real. */
    private class FakeClock(var now: Long = 0) {
        val sleeps = mutableListOf<Long>()

        fun sleep(ms: Long) {
            require(ms > 0) { "slept $ms ms" }
            sleeps += ms
            now += ms
        }
    }

    /** A fake battery: 500 mA idle, 1200 mA while [busy], at 3.9 V; each reading takes [readMs] of the clock. */
    private class FakeBattery(private val clock: FakeClock, var plugged: Boolean = false) : PowerReader {
        var busy = false
        var readMs: (Int) -> Long = { 0 }
        val reads = mutableListOf<Long>()

        override fun read(timeMs: Long): PowerSample {
            assertEquals(clock.now, timeMs, "a reading is stamped with the clock when it starts")
            val sample = PowerSample(timeMs, if (busy) -1_200_000 else -500_000, 3_900, null, plugged)
            clock.now += readMs(reads.size)
            reads += timeMs
            return sample
        }
    }

    private fun sampler(clock: FakeClock, battery: FakeBattery, intervalMs: Long = 100) =
        PowerSampler(intervalMs, { clock.now }, clock::sleep, battery)

    @Test
    fun `a window reads on a fixed grid from its start, the end included`() {
        for (start in listOf(0L, 123_456_789L)) {
            val clock = FakeClock(start)
            val samples = sampler(clock, FakeBattery(clock)).window(1_000)
            assertEquals(List(11) { start + 100L * it }, samples.map { it.timeMs })
            assertEquals(List(10) { 100L }, clock.sleeps) // no wait after the last reading
        }
    }

    @Test
    fun `a slow reading does not shift the grid, and overrun ticks are skipped, not caught up`() {
        val clock = FakeClock()
        val battery = FakeBattery(clock).apply { readMs = { i -> if (i == 3) 250 else 30 } }
        val samples = sampler(clock, battery).window(1_000)
        // reading 3 starts at 300 and ends at 550: the ticks at 400 and 500 are gone, the next is 600
        assertEquals(listOf(0L, 100, 200, 300, 600, 700, 800, 900, 1_000), samples.map { it.timeMs })
        assertEquals(listOf(70L, 70, 70, 50, 70, 70, 70, 70), clock.sleeps)
    }

    @Test
    fun `a window stops early when asked`() {
        val clock = FakeClock()
        val battery = FakeBattery(clock)
        val samples = sampler(clock, battery).window(10_000) { battery.reads.size >= 3 }
        assertEquals(listOf(0L, 100, 200), samples.map { it.timeMs })
    }

    @Test
    fun `idle then busy, with the busy work running only in the busy window`() {
        val clock = FakeClock(5_000)
        val battery = FakeBattery(clock)
        var started = 0
        var closed = 0
        val result = measurePower(PowerSchedule(10, 20), sampler(clock, battery)) {
            assertEquals(15_000, clock.now, "the idle window comes first and lasts 10 s")
            started++
            battery.busy = true
            object : BusyWork {
                override val failed = false

                override fun close() {
                    closed++
                    battery.busy = false
                }
            }
        }
        assertEquals(1 to 1, started to closed)
        val e = (result as PowerResult.Measured).estimate
        assertEquals(PowerMethod.CURRENT_VOLTAGE, e.method)
        assertEquals(1.95, e.idleW, 1e-12)
        assertEquals(4.68, e.busyW, 1e-12)
        assertEquals(2.73, e.activeW, 1e-12)
        assertEquals(10.0 to 20.0, e.idleS to e.busyS)
        assertEquals(101 + 201, e.samples)
        assertEquals(1 + 101 + 201, battery.reads.size) // and the plugged check before
    }

    @Test
    fun `on external power nothing runs and no window is spent`() {
        val clock = FakeClock()
        val battery = FakeBattery(clock, plugged = true)
        val result = measurePower(PowerSchedule(10, 20), sampler(clock, battery)) { error("must not run") }
        assertEquals(PowerRefusal.PLUGGED_IN, (result as PowerResult.Refused).reason)
        assertEquals(1, battery.reads.size)
        assertEquals(0L, clock.now)
    }

    @Test
    fun `a failed busy work ends the window and its failure is thrown`() {
        val clock = FakeClock()
        val battery = FakeBattery(clock)
        val failing = object : BusyWork {
            override val failed get() = battery.reads.size > 110

            override fun close() = throw IllegalStateException("the busy work failed: boom")
        }
        val e = assertThrows(IllegalStateException::class.java) {
            measurePower(PowerSchedule(10, 20), sampler(clock, battery)) { failing }
        }
        assertEquals("the busy work failed: boom", e.message)
        assertTrue(battery.reads.size < 1 + 101 + 20)
    }

    @Test
    fun `a 0 s window skips the measurement`() {
        assertFalse(PowerSchedule(0, 20).enabled)
        assertFalse(PowerSchedule(10, 0).enabled)
        assertTrue(PowerSchedule(PowerSchedule.DEFAULT_IDLE_S, PowerSchedule.DEFAULT_BUSY_S).enabled)
        assertThrows(IllegalArgumentException::class.java) { PowerSchedule(-1, 20) }
    }

    @Test
    fun `back to back runs until closed, then not once more`() {
        val twice = CountDownLatch(2)
        val busy = BackToBack { twice.countDown() }
        assertTrue(twice.await(10, TimeUnit.SECONDS))
        busy.close()
        val runs = busy.runs
        assertTrue(runs >= 2)
        Thread.sleep(20)
        assertEquals(runs, busy.runs)
        assertFalse(busy.failed)
    }

    @Test
    fun `back to back stops at the first failure and close rethrows it`() {
        var calls = 0
        val busy = BackToBack {
            calls++
            if (calls == 3) throw IllegalStateException("execute failed")
        }
        val deadline = System.nanoTime() + 10_000_000_000L
        while (!busy.failed && System.nanoTime() < deadline) Thread.sleep(1)
        assertTrue(busy.failed)
        val e = assertThrows(IllegalStateException::class.java) { busy.close() }
        assertEquals("execute failed", e.cause?.message)
        assertEquals(2L, busy.runs)
        assertEquals(3, calls)
    }
}

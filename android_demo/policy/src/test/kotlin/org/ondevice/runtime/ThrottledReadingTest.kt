package org.ondevice.runtime

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class ThrottledReadingTest {
    /** A fake `getThermalHeadroom`: counts its calls and returns 0.1, 0.2, ... */
    private class FakeHeadroom {
        var calls = 0
        fun read(): Double = (++calls) / 10.0
    }

    @Test
    fun `reads on the first call, then at most once per interval`() {
        // elapsedRealtime starts near 0 at boot; a Long.MIN_VALUE "never read" start overflows `now - last`
        for (start in listOf(0L, 1L, 123_456_789L, Long.MAX_VALUE / 2)) pollsFrom(start)
    }

    private fun pollsFrom(start: Long) {
        var now = start
        val headroom = FakeHeadroom()
        val throttled = ThrottledReading(1_000L, { now }, headroom::read)
        assertEquals(0.1, throttled.get())
        assertEquals(1, headroom.calls, "clock at $start: the first reading must call the platform")
        now += 999
        assertEquals(0.1, throttled.get())
        now += 1
        assertEquals(0.2, throttled.get())
        now += 500
        assertEquals(0.2, throttled.get())
        now += 5_000
        assertEquals(0.3, throttled.get())
        assertEquals(3, headroom.calls)
    }

    @Test
    fun `NaN is a value like any other and stays NaN until the next poll`() {
        var now = 0L
        var calls = 0
        val throttled = ThrottledReading(1_000L, { now }) { calls++; Double.NaN }
        assertTrue(throttled.get().isNaN())
        now = 10
        assertTrue(throttled.get().isNaN())
        assertEquals(1, calls)
    }
}

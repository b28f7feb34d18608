package org.ondevice.runtime

/**
 * A reading taken at most once per [intervalMs]: the first [get] calls [read], later ones return that value until
 * [intervalMs] have passed on [clockMs] (a monotonic clock, such as `SystemClock.elapsedRealtime`). Whatever
 * [read] returned is kept, NaN included. For `PowerManager.getThermalHeadroom`, which returns NaN when called
 * more often than once a second. Not thread-safe: call it from one thread.
 */
class ThrottledReading<T>(
    private val intervalMs: Long,
    private val clockMs: () -> Long,
    private val read: () -> T,
) {
    private var last: Sample<T>? = null

    init {
        require(intervalMs >= 0) { "interval must be >= 0 ms, got $intervalMs" }
    }

    fun get(): T {
        val now = clockMs()
        val previous = last
        if (previous != null && now - previous.atMs < intervalMs) return previous.value
        return read().also { last = Sample(it, now) }
    }

    private class Sample<T>(val value: T, val atMs: Long)
}

package org.ondevice.power

import java.util.concurrent.atomic.AtomicLong

/** Reads the battery now; [timeMs] is the sampler's clock at the reading, to put in the [PowerSample]. */
fun interface PowerReader {
    fun read(timeMs: Long): PowerSample
}

/** The idle and busy windows of a power measurement, in s (0 skips the measurement), and the reading interval. */
data class PowerSchedule(val idleS: Int, val busyS: Int, val intervalMs: Long = DEFAULT_INTERVAL_MS) {
    init {
        require(idleS >= 0 && busyS >= 0) { "windows must be >= 0 s, got idle $idleS and busy $busyS" }
        require(intervalMs > 0) { "the interval must be > 0 ms, got $intervalMs" }
    }

    /** Both windows are needed for `active_w`: a 0 s window skips the measurement. */
    val enabled: Boolean get() = idleS > 0 && busyS > 0

    companion object {
        const val DEFAULT_IDLE_S = 10
        const val DEFAULT_BUSY_S = 20
        const val DEFAULT_INTERVAL_MS = 100L
    }
}

/**
 * Reads [reader] every [intervalMs] on the calling thread for a window: the first reading at once, then one per tick
 * of a fixed grid from the window's start (a slow reading does not shift the later ones; ticks it overran are
 * skipped, not caught up in a burst), the last on the last tick within the window. [clockMs] is monotonic
 * (`SystemClock.elapsedRealtime`), [sleepMs] waits (`Thread.sleep`); tests pass fakes of both.
 */
class PowerSampler(
    private val intervalMs: Long,
    private val clockMs: () -> Long,
    private val sleepMs: (Long) -> Unit,
    private val reader: PowerReader,
) {
    init {
        require(intervalMs > 0) { "the interval must be > 0 ms, got $intervalMs" }
    }

    /** The readings of a window of [durationMs]; stops early when [stop] says so (checked before each wait). */
    fun window(durationMs: Long, stop: () -> Boolean = { false }): List<PowerSample> {
        require(durationMs > 0) { "a window must last > 0 ms, got $durationMs" }
        val start = clockMs()
        val samples = ArrayList<PowerSample>((durationMs / intervalMs + 1).toInt())
        var tick = start
        while (true) {
            samples += reader.read(clockMs())
            val after = clockMs()
            tick += intervalMs
            while (tick < after) tick += intervalMs // overran: skip to the next tick still ahead
            if (tick - start > durationMs || stop()) break
            if (tick > after) sleepMs(tick - after)
        }
        return samples
    }

    /** A reading now: to check the phone is on battery before spending the windows. */
    fun readNow(): PowerSample = reader.read(clockMs())
}

/**
 * The power measurement after the latency rounds: refused at once if the phone is on external power, else an idle
 * window (nothing running; the screen on), then a busy window while [startBusy]'s work runs (the super-net back to
 * back, see [BackToBack]; closed, and so stopped, when the window ends, or earlier if it failed: closing rethrows
 * that), then [estimatePower].
 */
fun measurePower(
    schedule: PowerSchedule,
    sampler: PowerSampler,
    startBusy: () -> BusyWork,
): PowerResult {
    require(schedule.enabled) { "power measurement skipped (a 0 s window): do not call measurePower" }
    if (sampler.readNow().plugged) {
        return PowerResult.Refused(PowerRefusal.PLUGGED_IN, "the phone is on external power: unplug it to measure")
    }
    val idle = sampler.window(schedule.idleS * 1000L)
    val busy = startBusy().use { work -> sampler.window(schedule.busyS * 1000L) { work.failed } }
    return estimatePower(idle, busy)
}

/** Work running in the background during the busy window; [close] stops it (and rethrows its failure). */
interface BusyWork : AutoCloseable {
    /** Whether the work has failed (and stopped). */
    val failed: Boolean
}

/**
 * Runs [work] back to back on its own thread from construction until [close], which waits for the run in progress
 * and rethrows a failure of [work] (the thread stops at the first one). [runs] counts the finished runs.
 */
class BackToBack(name: String = "ondevice-power-busy", private val work: () -> Unit) : BusyWork {
    @Volatile private var running = true

    @Volatile private var failure: Throwable? = null
    private val finished = AtomicLong()
    private val thread = Thread({
        try {
            while (running) {
                work()
                finished.incrementAndGet()
            }
        } catch (t: Throwable) {
            failure = t
        }
    }, name).apply { start() }

    val runs: Long get() = finished.get()

    /** Whether [work] has thrown (the thread then stopped). */
    override val failed: Boolean get() = failure != null

    override fun close() {
        running = false
        thread.join()
        failure?.let { throw IllegalStateException("the busy work failed: ${it.message}", it) }
    }
}

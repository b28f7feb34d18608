package org.ondevice.bundle

import org.ondevice.policy.Thermal

/**
 * A loaded program as both apps time it. One timed run is one [logits] call: from the prepared, normalized input
 * (float32, NCHW, `input.shape`) to the logits as floats, that is creating the input tensors, the forward call
 * and reading the output. Decoding, resizing and normalizing the image are not part of it. The app's per-image
 * latency and the benchmark's latency file both time exactly this, so the two numbers are comparable.
 */
fun interface LogitsProgram {
    fun logits(input: FloatArray, gates: String): FloatArray
}

/** One [LogitsProgram.logits] call and its time in ms. */
class TimedLogits(val logits: FloatArray, val latencyMs: Double)

/** One timed run (the contract of [LogitsProgram]); [clockNs] is a monotonic clock. */
fun LogitsProgram.timed(input: FloatArray, gates: String, clockNs: () -> Long = System::nanoTime): TimedLogits {
    val start = clockNs()
    val logits = logits(input, gates)
    return TimedLogits(logits, (clockNs() - start) / 1e6)
}

/** [measureInterleaved] over [gates], each run one full [LogitsProgram.logits] call on the same [input]. */
fun LogitsProgram.measure(
    input: FloatArray,
    gates: List<String>,
    runs: Int,
    warmup: Int,
    clockNs: () -> Long = System::nanoTime,
): Map<String, LatencyStats> = measureInterleaved(gates, runs, warmup, clockNs) { g -> logits(input, g) }

/** [measureRounds] over [gates], each run one full [LogitsProgram.logits] call on the same [input]. */
fun LogitsProgram.measureRounds(
    input: FloatArray,
    gates: List<String>,
    schedule: RoundSchedule,
    warmup: Int,
    thermalStatus: () -> Thermal?,
    clockNs: () -> Long = System::nanoTime,
): List<TimedRound> = measureRounds(gates, schedule, warmup, clockNs, thermalStatus) { g -> logits(input, g) }

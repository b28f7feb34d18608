package org.ondevice.demo

import android.content.Context
import android.os.Build
import android.os.PowerManager
import android.os.SystemClock
import android.util.Log
import java.time.Instant
import java.time.temporal.ChronoUnit
import org.ondevice.bundle.Bundle
import org.ondevice.bundle.LatencyByThermal
import org.ondevice.bundle.LatencyPower
import org.ondevice.bundle.LatencyReport
import org.ondevice.bundle.RoundSchedule
import org.ondevice.bundle.measureRounds
import org.ondevice.bundle.toJsonText
import org.ondevice.policy.Thermal
import org.ondevice.power.BackToBack
import org.ondevice.power.PowerEstimate
import org.ondevice.power.PowerResult
import org.ondevice.power.PowerSampler
import org.ondevice.power.PowerSchedule
import org.ondevice.power.measurePower

/**
 * Times the sub-networks the bundle's program runs ([org.ondevice.bundle.Manifest.runnableGates]) on this phone,
 * interleaved like `ondevice profile`, each run one full logits call (input tensors, forward, output; see
 * [org.ondevice.bundle.LogitsProgram]) on one fixed random input, reading the thermal status before each round
 * (and, in a sustained run, going on for minutes so that the phone heats up); then, when the phone is on battery and
 * the [PowerSchedule] has both windows, measures its battery power idle and with the super-net running back to back
 * ([measurePower]); and writes `latency.json` ([AppFiles.latencyFile]) with the table of the coolest status seen,
 * the tables of the hotter ones ([LatencyByThermal]) and the power. Blocking: run it off the main thread (the power
 * windows are read on the calling thread). Used by [BenchmarkActivity] and the instrumented test.
 */
object Benchmark {
    const val DEFAULT_RUNS = 50
    const val DEFAULT_WARMUP = 5
    private const val TAG = "ondevice-benchmark"

    /**
     * The file's content, and lines saying what became of the power measurement (measured, refused, skipped) and
     * which thermal statuses got a table.
     */
    class Result(val report: LatencyReport, val powerNote: String, val thermalNote: String)

    /**
     * [threads] 0 leaves ExecuTorch's thread pool as it is (the file then has no `threads`). [power] with a 0 s window
     * (the default) skips the power measurement. [sustainedMinutes] > 0 keeps timing rounds (at least [runs]) for
     * that long, so that the phone heats up and the hotter thermal statuses get tables of their own.
     */
    fun run(
        context: Context,
        runs: Int,
        warmup: Int,
        threads: Int,
        power: PowerSchedule = PowerSchedule(0, 0),
        sustainedMinutes: Int = 0,
    ): Result {
        val bundle = Bundle.load(AppFiles.bundleDir(context))
        val gates = bundle.manifest.runnableGates()
        val superNet = bundle.manifest.superNetGates()
        val schedule = RoundSchedule(runs, sustainedMs = sustainedMinutes * 60_000L)
        val thermal = thermalStatusReader(context)
        var powerNote = "power not measured (power_idle_s or power_busy_s is 0)"
        var measured: LatencyPower? = null
        val (tables, backend) = BundleClassifier(bundle, threads).use { classifier ->
            val input = classifier.randomInput()
            val timed = LatencyByThermal.of(classifier.measureRounds(input, gates, schedule, warmup, thermal))
            if (power.enabled) {
                val sampler = PowerSampler(
                    power.intervalMs,
                    SystemClock::elapsedRealtime,
                    { ms -> Thread.sleep(ms) },
                    BatteryPowerReader(context),
                )
                try {
                    val result = measurePower(power, sampler) { BackToBack { classifier.logits(input, superNet) } }
                    when (result) {
                        is PowerResult.Measured -> {
                            measured = LatencyPower(superNet, result.estimate)
                            powerNote = describe(result.estimate, superNet)
                        }
                        is PowerResult.Refused -> powerNote = "power not measured (${result.reason}): ${result.message}"
                    }
                } catch (e: InterruptedException) {
                    throw e
                } catch (e: Exception) { // the latency table is still worth writing
                    Log.w(TAG, "power measurement failed", e)
                    powerNote = "power measurement failed: ${e.message}"
                }
            }
            timed to classifier.backend
        }
        val version = context.packageManager.getPackageInfo(context.packageName, 0).versionName
        val report = LatencyReport(
            device = DeviceStateReader.deviceName,
            model = bundle.manifest.modelName,
            backend = backend,
            threads = threads.takeIf { it > 0 },
            runs = tables.runs,
            warmup = warmup,
            measuredAt = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString(),
            app = "ondevice demo $version (Android)",
            subnets = tables.subnets,
            power = measured,
            thermal = tables.thermal,
        )
        AppFiles.latencyFile(context).writeText(report.toJsonText())
        Log.i(TAG, powerNote)
        Log.i(TAG, tables.note)
        return Result(report, powerNote, tables.note)
    }

    /** `PowerManager.getCurrentThermalStatus` (API 29+), read before each round; null where the phone cannot say. */
    private fun thermalStatusReader(context: Context): () -> Thermal? {
        val power = context.getSystemService(PowerManager::class.java)
        return {
            if (power != null && Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) {
                Thermal.fromStatus(power.currentThermalStatus)
            } else {
                null
            }
        }
    }

    private fun describe(e: PowerEstimate, gates: String): String =
        "power (%s, %s back to back): idle %.3f W, busy %.3f W, active %.3f W over %.1f s + %.1f s, %d readings".format(
            e.method.key, gates, e.idleW, e.busyW, e.activeW, e.idleS, e.busyS, e.samples,
        )
}

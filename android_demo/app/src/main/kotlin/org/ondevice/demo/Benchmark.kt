package org.ondevice.demo

import android.content.Context
import java.time.Instant
import java.time.temporal.ChronoUnit
import org.ondevice.bundle.Bundle
import org.ondevice.bundle.LatencyReport
import org.ondevice.bundle.measure
import org.ondevice.bundle.toJsonText

/**
 * Times the sub-networks the bundle's program runs ([org.ondevice.bundle.Manifest.runnableGates]) on this phone,
 * interleaved like `ondevice profile`, each run one full logits call (input tensors, forward, output; see
 * [org.ondevice.bundle.LogitsProgram]) on one fixed random input, and writes `latency.json`
 * ([AppFiles.latencyFile]). Blocking: run it off the main thread. Used by [BenchmarkActivity] and the
 * instrumented test.
 */
object Benchmark {
    const val DEFAULT_RUNS = 50
    const val DEFAULT_WARMUP = 5

    /** [threads] 0 leaves ExecuTorch's thread pool as it is (the file then has no `threads`). */
    fun run(context: Context, runs: Int, warmup: Int, threads: Int): LatencyReport {
        val bundle = Bundle.load(AppFiles.bundleDir(context))
        val gates = bundle.manifest.runnableGates()
        val (stats, backend) = BundleClassifier(bundle, threads).use { classifier ->
            classifier.measure(classifier.randomInput(), gates, runs, warmup) to classifier.backend
        }
        val version = context.packageManager.getPackageInfo(context.packageName, 0).versionName
        val report = LatencyReport(
            device = DeviceStateReader.deviceName,
            model = bundle.manifest.modelName,
            backend = backend,
            threads = threads.takeIf { it > 0 },
            runs = runs,
            warmup = warmup,
            measuredAt = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString(),
            app = "ondevice demo $version (Android)",
            subnets = stats,
        )
        AppFiles.latencyFile(context).writeText(report.toJsonText())
        return report
    }
}

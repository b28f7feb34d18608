package org.ondevice.demo

import android.os.Bundle as SavedState
import android.util.Log
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Text
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.unit.dp
import androidx.lifecycle.lifecycleScope
import java.io.File
import java.time.Instant
import java.time.temporal.ChronoUnit
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.ondevice.bundle.Bundle
import org.ondevice.bundle.LatencyReport
import org.ondevice.bundle.measureInterleaved
import org.ondevice.bundle.toJsonText

/**
 * Times every sub-network the manifest lists on this phone and writes `latency.json` into the app's external files
 * directory, in the format `ondevice profile BUNDLE --merge latency.json` reads. Start it from the main screen or:
 *
 *     adb shell am start -n org.ondevice.demo/.BenchmarkActivity --ei runs 50 --ei warmup 5 --ei threads 4
 *     adb pull /sdcard/Android/data/org.ondevice.demo/files/latency.json
 *
 * Keep the phone idle, unplugged or plugged as you want the table to describe, and let it cool first: the runs are
 * interleaved (every round runs each sub-network once, in a rotated order) so that heating spreads evenly.
 */
class BenchmarkActivity : ComponentActivity() {
    private var text by mutableStateOf("benchmark starting ...")

    override fun onCreate(savedInstanceState: SavedState?) {
        super.onCreate(savedInstanceState)
        setContent {
            MaterialTheme {
                Column(Modifier.padding(16.dp).verticalScroll(rememberScrollState())) {
                    Text(text, fontFamily = FontFamily.Monospace)
                }
            }
        }
        val runs = intent.getIntExtra(EXTRA_RUNS, DEFAULT_RUNS)
        val warmup = intent.getIntExtra(EXTRA_WARMUP, DEFAULT_WARMUP)
        val threads = intent.getIntExtra(EXTRA_THREADS, 0) // 0: ExecuTorch's default threadpool
        lifecycleScope.launch {
            text = try {
                withContext(Dispatchers.Default) { benchmark(runs, warmup, threads) }
            } catch (e: Exception) {
                Log.e(TAG, "benchmark failed", e)
                "benchmark failed: ${e.message}"
            }
        }
    }

    private fun benchmark(runs: Int, warmup: Int, threads: Int): String {
        val bundle = Bundle.load(MainActivity.bundleDir(this))
        val gates = bundle.manifest.catalog.subnets.map { it.gates } // every sub-network the manifest lists
        val stats = BundleClassifier(bundle, threads).use { classifier ->
            val image = classifier.randomImage()
            val inputs = gates.associateWith { classifier.inputs(image, it) } // built once: time execute alone
            measureInterleaved(gates, runs, warmup) { g -> classifier.execute(inputs.getValue(g)) }
        }
        val report = LatencyReport(
            device = DeviceStateReader.deviceName,
            model = bundle.manifest.modelName,
            backend = "xnnpack",
            threads = threads.takeIf { it > 0 },
            runs = runs,
            warmup = warmup,
            measuredAt = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString(),
            app = "ondevice demo ${packageManager.getPackageInfo(packageName, 0).versionName} (Android)",
            subnets = stats,
        )
        val out = File(getExternalFilesDir(null), LatencyReport.FILE_NAME)
        out.writeText(report.toJsonText())
        Log.i(TAG, "wrote $out")
        val rows = stats.entries.joinToString("\n") { (g, s) ->
            "%-8s %9.3f %9.3f %9.3f".format(g, s.medianMs, s.p90Ms, s.minMs)
        }
        val header = "${report.device}, ${report.runs} runs\n\ngates    median ms    p90 ms    min ms"
        return "$header\n$rows\n\nwrote $out\nmerge it: ondevice profile BUNDLE --merge latency.json"
    }

    companion object {
        private const val TAG = "ondevice-benchmark"
        const val EXTRA_RUNS = "runs"
        const val EXTRA_WARMUP = "warmup"
        const val EXTRA_THREADS = "threads"
        private const val DEFAULT_RUNS = 50
        private const val DEFAULT_WARMUP = 5
    }
}

package org.ondevice.demo

import android.os.Bundle as SavedState
import android.util.Log
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.enableEdgeToEdge
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Text
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.unit.dp
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * Runs the [Benchmark] and shows its table. Start it from the main screen or:
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
        enableEdgeToEdge()
        super.onCreate(savedInstanceState)
        setContent {
            MaterialTheme {
                Scaffold { insets ->
                    Text(
                        text,
                        Modifier.padding(insets).padding(16.dp).verticalScroll(rememberScrollState()),
                        fontFamily = FontFamily.Monospace,
                    )
                }
            }
        }
        val runs = intent.getIntExtra(EXTRA_RUNS, Benchmark.DEFAULT_RUNS)
        val warmup = intent.getIntExtra(EXTRA_WARMUP, Benchmark.DEFAULT_WARMUP)
        val threads = intent.getIntExtra(EXTRA_THREADS, 0) // 0: ExecuTorch's default thread pool
        lifecycleScope.launch {
            text = try {
                val report = withContext(Dispatchers.Default) {
                    Benchmark.run(this@BenchmarkActivity, runs, warmup, threads)
                }
                val file = AppFiles.latencyFile(this@BenchmarkActivity)
                Log.i(TAG, "wrote $file")
                val rows = report.subnets.entries.joinToString("\n") { (g, s) ->
                    "%-8s %9.3f %9.3f %9.3f".format(g, s.medianMs, s.p90Ms, s.minMs)
                }
                "${report.device}, ${report.backend}, ${report.runs} runs\n\ngates    median ms    p90 ms    min ms\n" +
                    "$rows\n\nwrote $file\nmerge it: ondevice profile BUNDLE --merge latency.json"
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                Log.e(TAG, "benchmark failed", e)
                "benchmark failed: ${e.message}"
            }
        }
    }

    companion object {
        private const val TAG = "ondevice-benchmark"
        const val EXTRA_RUNS = "runs"
        const val EXTRA_WARMUP = "warmup"
        const val EXTRA_THREADS = "threads"
    }
}

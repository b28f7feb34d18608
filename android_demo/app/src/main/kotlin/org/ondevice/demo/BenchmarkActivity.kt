package org.ondevice.demo

import android.os.Bundle as SavedState
import android.util.Log
import android.view.WindowManager
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
import org.ondevice.power.PowerSchedule

/**
 * Runs the [Benchmark] and shows its table. Start it from the main screen or:
 *
 *     adb shell am start -n org.ondevice.demo/.BenchmarkActivity --ei runs 50 --ei warmup 5 --ei threads 4 \
 *         --ei power_idle_s 10 --ei power_busy_s 20
 *     adb pull /sdcard/Android/data/org.ondevice.demo/files/latency.json
 *
 * Keep the phone idle and let it cool first: the runs are interleaved (every round runs each sub-network once, in a
 * rotated order) so that heating spreads evenly. After the rounds, on battery only, it measures the phone's power
 * for `power_idle_s` s idle and `power_busy_s` s with the super-net running back to back (0 skips it; on a charger,
 * or over adb on USB, it is skipped with the reason shown): unplug the phone, start it from the screen or over
 * wireless adb, and leave it alone. The screen is kept on while it runs.
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
        val power = PowerSchedule(
            idleS = intent.getIntExtra(EXTRA_POWER_IDLE_S, PowerSchedule.DEFAULT_IDLE_S).coerceAtLeast(0),
            busyS = intent.getIntExtra(EXTRA_POWER_BUSY_S, PowerSchedule.DEFAULT_BUSY_S).coerceAtLeast(0),
        )
        if (power.enabled) {
            text = "benchmark running: latency rounds, then power (${power.idleS} s idle, ${power.busyS} s busy) " +
                "if on battery.\nLeave the phone alone."
        }
        // the idle window is "screen on, app idle": a screen timeout in the middle would change what it measures
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
        lifecycleScope.launch {
            text = try {
                val result = withContext(Dispatchers.Default) {
                    Benchmark.run(this@BenchmarkActivity, runs, warmup, threads, power)
                }
                val report = result.report
                val file = AppFiles.latencyFile(this@BenchmarkActivity)
                Log.i(TAG, "wrote $file")
                val rows = report.subnets.entries.joinToString("\n") { (g, s) ->
                    "%-8s %9.3f %9.3f %9.3f".format(g, s.medianMs, s.p90Ms, s.minMs)
                }
                "${report.device}, ${report.backend}, ${report.runs} runs\n\ngates    median ms    p90 ms    min ms\n" +
                    "$rows\n\n${result.powerNote}\n\n" +
                    "wrote $file\nmerge it: ondevice profile BUNDLE --merge latency.json"
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                Log.e(TAG, "benchmark failed", e)
                "benchmark failed: ${e.message}"
            } finally {
                window.clearFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
            }
        }
    }

    companion object {
        private const val TAG = "ondevice-benchmark"
        const val EXTRA_RUNS = "runs"
        const val EXTRA_WARMUP = "warmup"
        const val EXTRA_THREADS = "threads"
        const val EXTRA_POWER_IDLE_S = "power_idle_s"
        const val EXTRA_POWER_BUSY_S = "power_busy_s"
    }
}

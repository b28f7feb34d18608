package org.ondevice.demo

import android.os.Bundle as SavedState
import android.view.WindowManager
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.enableEdgeToEdge
import androidx.activity.viewModels
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Text
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.font.FontFamily
import androidx.compose.ui.unit.dp
import org.ondevice.power.PowerSchedule

/**
 * Runs the [Benchmark] and shows its table. Start it from the main screen or:
 *
 *     adb shell am start -n org.ondevice.demo/.BenchmarkActivity --ei runs 50 --ei warmup 5 --ei threads 4 \
 *         --ei power_idle_s 10 --ei power_busy_s 20 [--ei sustained_min 20]
 *     adb pull /sdcard/Android/data/org.ondevice.demo/files/latency.json
 *
 * `sustained_min` > 0 keeps timing rounds for that many minutes (a sustained run: the phone heats up, and each
 * thermal status it reaches with at least 20 rounds gets its own table in the file's `thermal`).
 *
 * Keep the phone idle and let it cool first: the runs are interleaved (every round runs each sub-network once, in a
 * rotated order) so that heating spreads evenly. After the rounds, on battery only, it measures the phone's power
 * for `power_idle_s` s idle and `power_busy_s` s with the super-net running back to back (0 skips it; on a charger,
 * or over adb on USB, it is skipped with the reason shown): unplug the phone, start it from the screen or over
 * wireless adb, and leave it alone. The screen is kept on while it runs.
 */
class BenchmarkActivity : ComponentActivity() {
    private val model: BenchmarkViewModel by viewModels()

    override fun onCreate(savedInstanceState: SavedState?) {
        enableEdgeToEdge()
        super.onCreate(savedInstanceState)
        setContent {
            MaterialTheme {
                Scaffold { insets ->
                    Text(
                        model.text,
                        Modifier.padding(insets).padding(16.dp).verticalScroll(rememberScrollState()),
                        fontFamily = FontFamily.Monospace,
                    )
                }
                // the power's idle window is "screen on, app idle": a screen timeout would change what it measures
                LaunchedEffect(model.running) {
                    if (model.running) {
                        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
                    } else {
                        window.clearFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
                    }
                }
            }
        }
        val power = PowerSchedule(
            idleS = intent.getIntExtra(EXTRA_POWER_IDLE_S, PowerSchedule.DEFAULT_IDLE_S).coerceAtLeast(0),
            busyS = intent.getIntExtra(EXTRA_POWER_BUSY_S, PowerSchedule.DEFAULT_BUSY_S).coerceAtLeast(0),
        )
        model.start( // once: a rotation recreates the activity, not the run
            runs = intent.getIntExtra(EXTRA_RUNS, Benchmark.DEFAULT_RUNS),
            warmup = intent.getIntExtra(EXTRA_WARMUP, Benchmark.DEFAULT_WARMUP),
            threads = intent.getIntExtra(EXTRA_THREADS, 0), // 0: ExecuTorch's default thread pool
            power = power,
            sustainedMinutes = intent.getIntExtra(EXTRA_SUSTAINED_MIN, 0).coerceAtLeast(0),
        )
    }

    companion object {
        const val EXTRA_RUNS = "runs"
        const val EXTRA_WARMUP = "warmup"
        const val EXTRA_THREADS = "threads"
        const val EXTRA_POWER_IDLE_S = "power_idle_s"
        const val EXTRA_POWER_BUSY_S = "power_busy_s"
        const val EXTRA_SUSTAINED_MIN = "sustained_min"
    }
}

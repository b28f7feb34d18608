package org.ondevice.demo

import android.app.Application
import android.util.Log
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.setValue
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.ondevice.bundle.LatencyStats
import org.ondevice.power.PowerSchedule

/** One benchmark run and its text, kept across rotations: recreating [BenchmarkActivity] never starts another. */
class BenchmarkViewModel(application: Application) : AndroidViewModel(application) {
    var text by mutableStateOf("benchmark starting ...")
        private set
    var running by mutableStateOf(false)
        private set
    private var started = false

    /** Starts the run unless this screen already started one. */
    fun start(runs: Int, warmup: Int, threads: Int, power: PowerSchedule, sustainedMinutes: Int = 0) {
        if (started) return
        started = true
        running = true
        if (power.enabled || sustainedMinutes > 0) {
            val rounds = if (sustainedMinutes > 0) "$sustainedMinutes min of latency rounds" else "latency rounds"
            val then = if (power.enabled) ", then power (${power.idleS} s idle, ${power.busyS} s busy)" else ""
            text = "benchmark running: $rounds$then.\nLeave the phone alone."
        }
        val app = getApplication<Application>()
        viewModelScope.launch {
            text = try {
                val result = withContext(Dispatchers.Default) {
                    Benchmark.run(app, runs, warmup, threads, power, sustainedMinutes)
                }
                val report = result.report
                val file = AppFiles.latencyFile(app)
                Log.i(TAG, "wrote $file")
                fun rows(subnets: Map<String, LatencyStats>) = subnets.entries.joinToString("\n") { (g, s) ->
                    "%-8s %9.3f %9.3f %9.3f".format(g, s.medianMs, s.p90Ms, s.minMs)
                }
                val hot = report.thermal.entries.joinToString("") { (status, table) ->
                    "\n\nat $status (${table.runs} runs)\n${rows(table.subnets)}"
                }
                "${report.device}, ${report.backend}, ${report.runs} runs\n\ngates    median ms    p90 ms    min ms\n" +
                    "${rows(report.subnets)}$hot\n\n${result.thermalNote}\n\n${result.powerNote}\n\n" +
                    "wrote $file\nmerge it: ondevice profile BUNDLE --merge latency.json"
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                Log.e(TAG, "benchmark failed", e)
                "benchmark failed: ${e.message}"
            } finally {
                running = false
            }
        }
    }

    private companion object {
        const val TAG = "ondevice-benchmark"
    }
}

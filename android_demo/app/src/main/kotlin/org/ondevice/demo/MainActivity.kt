package org.ondevice.demo

import android.content.Intent
import android.os.Bundle as SavedState
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.enableEdgeToEdge
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts.PickVisualMedia
import androidx.activity.viewModels
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.Spacer
import androidx.compose.foundation.layout.height
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch

/**
 * The demo screen: every second (and on every OS notification) while it is visible, [ClassifierViewModel] reads the
 * device state, lets the policy pick a sub-network and classifies the picked image with it. The screen shows the
 * prediction, the sub-network, its latency, the device state and why the policy chose it.
 */
class MainActivity : ComponentActivity() {
    private val model: ClassifierViewModel by viewModels()

    private val pickImage = registerForActivityResult(PickVisualMedia()) { uri -> uri?.let(model::pick) }

    override fun onCreate(savedInstanceState: SavedState?) {
        enableEdgeToEdge()
        super.onCreate(savedInstanceState)
        setContent { MaterialTheme { Screen() } }
        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                val listening = model.listen(model::tick)
                try {
                    while (true) {
                        model.tick()
                        delay(1_000) // sensors update about once a second; so does the headroom
                    }
                } finally {
                    listening.close()
                }
            }
        }
    }

    @Composable
    private fun Screen() {
        Scaffold { insets -> // status and navigation bars, cutouts: nothing is drawn under them
            Column(Modifier.padding(insets).padding(16.dp).verticalScroll(rememberScrollState())) {
                Text(model.status, style = MaterialTheme.typography.bodySmall)
                Spacer(Modifier.height(12.dp))
                Row {
                    Button(onClick = { pickImage.launch(PickVisualMediaRequest(PickVisualMedia.ImageOnly)) }) {
                        Text("Pick image")
                    }
                    Spacer(Modifier.padding(4.dp))
                    Button(onClick = { startActivity(Intent(this@MainActivity, BenchmarkActivity::class.java)) }) {
                        Text("Benchmark")
                    }
                }
                Spacer(Modifier.height(12.dp))
                Prediction()
                Policy()
                Device()
            }
        }
    }

    @Composable
    private fun Prediction() {
        val result = model.result
        if (result == null) {
            Text(if (model.hasImage) "classifying ..." else "pick an image to classify")
            return
        }
        val percent = "%.1f".format(result.probability * 100)
        Text("${result.label}  $percent%", style = MaterialTheme.typography.headlineSmall)
        Text("sub-network ${result.gates}, ${"%.1f".format(result.latencyMs)} ms (input tensors, forward, logits)")
    }

    @Composable
    private fun Policy() {
        val d = model.decision ?: return
        Spacer(Modifier.height(12.dp))
        Text("policy: ${d.gates} (target ${d.target})", style = MaterialTheme.typography.titleMedium)
        Text("level ${d.level}, battery ${"%.0f".format(d.battery * 100)}%, energy ${"%.2f".format(d.energy)}")
        Text("cap ${"%.1f".format(d.capMs)} ms (${d.limit.name.lowercase()} limits)")
        val flags = listOfNotNull(
            "held by hysteresis".takeIf { d.held },
            "over budget".takeIf { d.overBudget },
            "below floor".takeIf { d.belowFloor },
        )
        if (flags.isNotEmpty()) Text(flags.joinToString())
    }

    @Composable
    private fun Device() {
        val s = model.state ?: return
        Spacer(Modifier.height(12.dp))
        Text("device: ${DeviceStateReader.deviceName}", style = MaterialTheme.typography.titleMedium)
        Text("thermal ${s.thermal ?: "unknown"}, headroom ${s.headroom ?: "unknown"}")
        val battery = s.battery?.let { "%.0f%%".format(it * 100) } ?: "unknown"
        Text("battery $battery, on external power ${s.charging ?: "unknown"}")
        Text("power save ${s.powerSave ?: "unknown"}")
    }
}

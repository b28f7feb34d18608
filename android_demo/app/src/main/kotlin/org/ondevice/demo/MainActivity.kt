package org.ondevice.demo

import android.content.Context
import android.content.Intent
import android.graphics.Bitmap
import android.graphics.ImageDecoder
import android.net.Uri
import android.os.Build
import android.os.Bundle as SavedState
import android.os.SystemClock
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts.PickVisualMedia
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.Spacer
import androidx.compose.foundation.layout.height
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import java.io.File
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext
import org.ondevice.bundle.Bundle
import org.ondevice.policy.Decision
import org.ondevice.policy.DeviceState
import org.ondevice.policy.PolicySession

/**
 * Loads the bundle from [bundleDir], reads the device state every second (and on every OS notification), lets the
 * policy pick a sub-network and classifies the picked image with it. The screen shows the prediction, the
 * sub-network, its latency, the device state and why the policy chose it.
 */
class MainActivity : ComponentActivity() {
    private var status by mutableStateOf("loading the bundle ...")
    private var state by mutableStateOf<DeviceState?>(null)
    private var decision by mutableStateOf<Decision?>(null)
    private var result by mutableStateOf<Classification?>(null)
    private var image: Bitmap? = null

    private lateinit var reader: DeviceStateReader
    private var session: PolicySession? = null
    private var classifier: BundleClassifier? = null
    private val inference = Mutex()

    private val pickImage = registerForActivityResult(PickVisualMedia()) { uri ->
        if (uri != null) image = decode(uri).also { lifecycleScope.launch { tick() } }
    }

    override fun onCreate(savedInstanceState: SavedState?) {
        super.onCreate(savedInstanceState)
        reader = DeviceStateReader(this)
        setContent { MaterialTheme { Screen() } }
        lifecycleScope.launch { load() }
        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                val listening = reader.listen { lifecycleScope.launch { tick() } }
                try {
                    while (true) {
                        tick()
                        delay(1_000) // sensors update about once a second; so does the headroom
                    }
                } finally {
                    listening.close()
                }
            }
        }
    }

    override fun onDestroy() {
        classifier?.close()
        super.onDestroy()
    }

    private suspend fun load() {
        try {
            val dir = bundleDir(this)
            val bundle = withContext(Dispatchers.IO) { Bundle.load(dir) }
            session = PolicySession(bundle.policy(DeviceStateReader.deviceName))
            classifier = withContext(Dispatchers.Default) { BundleClassifier(bundle) }
            val source = session?.policy?.table?.source
            status = "${bundle.manifest.modelName}: ${bundle.manifest.catalog.subnets.size} sub-networks; " +
                "latency ${source?.kind} for ${DeviceStateReader.deviceName}"
        } catch (e: Exception) {
            status = "cannot load the bundle: ${e.message}"
        }
    }

    /** Read the state, decide, and classify the current image with the chosen sub-network. */
    private suspend fun tick() {
        val session = session ?: return
        val reading = reader.read(latencyBudgetMs = LATENCY_BUDGET_MS)
        val chosen = session.decide(reading, nowS = SystemClock.elapsedRealtime() / 1000.0)
        state = reading
        decision = chosen
        val bitmap = image ?: return
        val classifier = classifier ?: return
        if (inference.isLocked) return // still busy with the previous image: skip, like a camera drops frames
        inference.withLock {
            result = withContext(Dispatchers.Default) {
                runCatching { classifier.classify(bitmap, chosen.gates) }
                    .onFailure { status = "inference failed: ${it.message}" }
                    .getOrNull()
            }
        }
    }

    private fun decode(uri: Uri): Bitmap =
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.P) {
            ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { decoder, _, _ ->
                decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE
            }
        } else {
            @Suppress("DEPRECATION")
            android.provider.MediaStore.Images.Media.getBitmap(contentResolver, uri)
        }

    @Composable
    private fun Screen() {
        Column(Modifier.padding(16.dp).verticalScroll(rememberScrollState())) {
            Text(status, style = MaterialTheme.typography.bodySmall)
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
            result?.let {
                val percent = "%.1f".format(it.probability * 100)
                Text("${it.label}  $percent%", style = MaterialTheme.typography.headlineSmall)
                Text("sub-network ${it.gates}, ${"%.1f".format(it.latencyMs)} ms")
            } ?: Text(if (image == null) "pick an image to classify" else "classifying ...")
            Spacer(Modifier.height(12.dp))
            decision?.let { d ->
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
            state?.let { s ->
                Spacer(Modifier.height(12.dp))
                Text("device: ${DeviceStateReader.deviceName}", style = MaterialTheme.typography.titleMedium)
                Text("thermal ${s.thermal ?: "unknown"}, headroom ${s.headroom ?: "unknown"}")
                val battery = s.battery?.let { "%.0f%%".format(it * 100) } ?: "unknown"
                Text("battery $battery, charging ${s.charging ?: "unknown"}")
                Text("power save ${s.powerSave ?: "unknown"}")
            }
        }
    }

    companion object {
        /** The app's budget per inference; null would mean policy.json's default. */
        const val LATENCY_BUDGET_MS = 250.0

        /** Where the bundle goes: `adb push bundle/. /sdcard/Android/data/org.ondevice.demo/files/bundle/`. */
        fun bundleDir(context: Context): File = File(context.getExternalFilesDir(null), "bundle")
    }
}

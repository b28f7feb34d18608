package org.ondevice.demo

import android.app.Application
import android.net.Uri
import android.os.SystemClock
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.setValue
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import kotlin.concurrent.thread
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.ondevice.bundle.Bundle
import org.ondevice.bundle.ImageNormalizer
import org.ondevice.policy.Decision
import org.ondevice.policy.DeviceState
import org.ondevice.policy.PolicySession
import org.ondevice.runtime.SerialResource

/**
 * The screen's state, kept across rotations: the bundle, the policy session, the loaded program and the picked
 * image's prepared input. The program is loaded once, runs one inference at a time off the main thread, and is
 * closed when the screen goes for good ([onCleared]), after the inference that may still be running.
 * [tick] and [pick] are called on the main thread.
 */
class ClassifierViewModel(application: Application) : AndroidViewModel(application) {
    var status by mutableStateOf("loading the bundle ...")
        private set
    var state by mutableStateOf<DeviceState?>(null)
        private set
    var decision by mutableStateOf<Decision?>(null)
        private set
    var result by mutableStateOf<Classification?>(null)
        private set
    var hasImage by mutableStateOf(false)
        private set

    private val reader = DeviceStateReader(application)
    private var session: PolicySession? = null
    private var normalizer: ImageNormalizer? = null
    private var classifier: SerialResource<BundleClassifier>? = null
    private var input: FloatArray? = null // the picked image, preprocessed once; every sub-network reads the same
    private var inference: Job? = null

    init {
        viewModelScope.launch { load() }
    }

    /** OS notifications that a reading may have changed; close the result to stop. */
    fun listen(onChange: () -> Unit) = reader.listen(onChange)

    /** Decodes [uri] off the main thread, prepares the model input from it and classifies it. */
    fun pick(uri: Uri) {
        val normalizer = normalizer ?: return
        viewModelScope.launch {
            try {
                val resolver = getApplication<Application>().contentResolver
                val bitmap = withContext(Dispatchers.IO) {
                    ImageLoader.decode(resolver, uri, normalizer.width, normalizer.height)
                }
                input = withContext(Dispatchers.Default) {
                    normalizer.normalize(ImageLoader.argb(bitmap), bitmap.width, bitmap.height)
                }
                hasImage = true
                result = null
                tick()
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                status = "cannot read the image: ${e.message}"
            }
        }
    }

    /** Reads the device state, lets the policy decide, and classifies the image with the chosen sub-network. */
    fun tick() {
        val session = session ?: return
        val reading = reader.read(latencyBudgetMs = LATENCY_BUDGET_MS)
        val chosen = session.decide(reading, nowS = SystemClock.elapsedRealtime() / 1000.0)
        state = reading
        decision = chosen
        val image = input ?: return
        val model = classifier ?: return
        if (inference?.isActive == true) return // still busy with the previous tick: skip, as a camera drops frames
        inference = viewModelScope.launch {
            try {
                withContext(Dispatchers.Default) { model.use { it.classify(image, chosen.gates) } }
                    ?.let { result = it }
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                status = "inference failed: ${e.message}"
            }
        }
    }

    /** Closes the program on a worker thread: the close waits for an inference that is still running. */
    override fun onCleared() {
        classifier?.let { model -> thread(name = "ondevice-close") { model.close() } }
    }

    private suspend fun load() {
        try {
            val dir = AppFiles.bundleDir(getApplication())
            val bundle = withContext(Dispatchers.IO) { Bundle.load(dir) }
            val model = SerialResource { BundleClassifier(bundle) }
            classifier = model
            withContext(Dispatchers.Default) { model.use {} } // load the program now, not on the first image
            normalizer = ImageNormalizer(bundle.manifest.input)
            val policy = bundle.policy(DeviceStateReader.deviceName)
            session = PolicySession(policy)
            status = "${bundle.manifest.modelName}: ${bundle.manifest.catalog.subnets.size} sub-networks; " +
                "latency ${policy.table.source.kind} for ${DeviceStateReader.deviceName}"
        } catch (e: CancellationException) {
            throw e
        } catch (e: Exception) {
            status = "cannot load the bundle: ${e.message}"
        }
    }

    companion object {
        /** The app's budget per inference; null would mean policy.json's default. */
        const val LATENCY_BUDGET_MS = 250.0
    }
}

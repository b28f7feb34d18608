package org.ondevice.demo

import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import java.io.File
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.ondevice.bundle.Bundle
import org.ondevice.bundle.DeviceCheck
import org.ondevice.json.JsonValue
import org.ondevice.json.asObject

/**
 * The first check on a phone, with a bundle pushed to the app's files directory (README.md, "Instrumented test"):
 * the program loads, every sub-network it runs gives the logits `device_check.json` holds for the check input, and
 * the benchmark writes a latency file with every sub-network. Run it with `./gradlew :app:connectedDebugAndroidTest`.
 */
@RunWith(AndroidJUnit4::class)
class BundleOnDeviceTest {
    private val context = InstrumentationRegistry.getInstrumentation().targetContext
    private val dir = AppFiles.bundleDir(context)

    @Test
    fun everySubNetworkGivesTheExpectedLogits() {
        val bundle = Bundle.load(dir)
        val file = File(dir, DeviceCheck.FILE_NAME)
        assertTrue("no $file: export the bundle with `ondevice export` (it writes one) and push it", file.isFile)
        val check = DeviceCheck.parse(file.readText(), file.path)
        assertEquals("$file is for another program", bundle.programFile.name, check.program)
        assertEquals("$file is for another input shape", bundle.manifest.input.shape, check.shape)
        val input = check.input()
        assertEquals(null, check.inputMismatch(input))
        val gates = bundle.manifest.runnableGates()
        assertEquals("$file must hold every sub-network", gates.toSet(), check.logits.keys)
        val problems = BundleClassifier(bundle).use { classifier ->
            gates.mapNotNull { g -> check.mismatch(g, classifier.logits(input, g)) }
        }
        assertTrue(problems.joinToString("\n"), problems.isEmpty())
    }

    @Test
    fun theBenchmarkWritesTheLatencyFileForEverySubNetwork() {
        val gates = Bundle.load(dir).manifest.runnableGates()
        // the benchmark's defaults, so that the file is worth merging (let the phone cool first); no power
        // measurement: on USB the phone is on external power, and the power windows would only be refused
        val report = Benchmark.run(context, Benchmark.DEFAULT_RUNS, Benchmark.DEFAULT_WARMUP, threads = 0).report
        assertEquals(gates.toSet(), report.subnets.keys)
        assertEquals(null, report.power)
        val file = AppFiles.latencyFile(context)
        val written = JsonValue.parse(file.readText(), file.path).asObject(file.path)
        assertEquals(report.toJson(), written) // what `ondevice profile BUNDLE --merge latency.json` reads
    }
}

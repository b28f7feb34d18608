package org.ondevice.demo

import android.graphics.Bitmap
import java.io.Closeable
import kotlin.math.exp
import org.ondevice.bundle.Bundle
import org.ondevice.bundle.ExecutorchFormat
import org.ondevice.bundle.GateDType
import org.ondevice.bundle.ImageNormalizer
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/** The top class of one image, the sub-network that produced it and how long `execute` took. */
data class Classification(val label: String, val probability: Float, val gates: String, val latencyMs: Double)

/**
 * Runs a bundle's ExecuTorch program: one method taking (image, gates), so switching sub-networks is a different
 * gates tensor on the same loaded program. Shapes, normalization, the method name, the input order and the gates
 * dtype all come from `manifest.json`. Create and use it off the main thread; close it when done.
 */
class BundleClassifier(private val bundle: Bundle, numThreads: Int = 0) : Closeable {
    private val entry: ExecutorchFormat = bundle.manifest.executorch
        ?: error("${bundle.directory} has no ExecuTorch program; export with `ondevice export --format executorch`")
    private val normalizer = ImageNormalizer(bundle.manifest.input)
    private val module: Module = Module.load(bundle.programFile.absolutePath, Module.LOAD_MODE_MMAP, numThreads)

    init {
        module.loadMethod(entry.method) // load (and let XNNPACK pack its weights) now, not on the first image
    }

    /** Resizes [bitmap] to the manifest's input size, normalizes it and runs the sub-network [gates]. */
    fun classify(bitmap: Bitmap, gates: String): Classification {
        val inputs = inputs(normalizer.normalize(pixels(bitmap)), gates)
        val start = System.nanoTime()
        val logits = execute(inputs)
        val latencyMs = (System.nanoTime() - start) / 1e6
        val probabilities = softmax(logits)
        val best = probabilities.indices.maxBy { probabilities[it] }
        val label = bundle.manifest.classNames.getOrElse(best) { "class $best" }
        return Classification(label, probabilities[best], gates, latencyMs)
    }

    /** The method's inputs, in the order `formats.executorch.inputs` lists them. */
    fun inputs(image: FloatArray, gates: String): Array<EValue> {
        val gateValues = bundle.manifest.gateValues(gates)
        val gatesShape = longArrayOf(gateValues.size.toLong())
        val gatesTensor = when (entry.gatesDType) {
            GateDType.INT32 -> Tensor.fromBlob(gateValues, gatesShape)
            GateDType.INT64 -> Tensor.fromBlob(LongArray(gateValues.size) { gateValues[it].toLong() }, gatesShape)
        }
        return entry.inputs.map { name ->
            when (name) {
                bundle.manifest.input.name -> EValue.from(Tensor.fromBlob(image, normalizer.shape))
                GATES_INPUT -> EValue.from(gatesTensor)
                else -> error("formats.executorch.inputs names \"$name\"; this app feeds the image and the gates")
            }
        }.toTypedArray()
    }

    /** One `execute` of the manifest's method; returns the first output (logits) as floats. */
    fun execute(inputs: Array<EValue>): FloatArray =
        module.execute(entry.method, *inputs)[0].toTensor().dataAsFloatArray

    /** A deterministic normal-random input of the right shape, for timing. */
    fun randomImage(seed: Long = 0): FloatArray {
        val random = java.util.Random(seed)
        return FloatArray(normalizer.shape.fold(1L) { a, b -> a * b }.toInt()) { random.nextGaussian().toFloat() }
    }

    override fun close() = module.close()

    private fun pixels(bitmap: Bitmap): IntArray {
        val spec = bundle.manifest.input
        val argb = if (bitmap.config == Bitmap.Config.ARGB_8888) bitmap else bitmap.copy(Bitmap.Config.ARGB_8888, false)
        val scaled = Bitmap.createScaledBitmap(argb, spec.width, spec.height, true) // bilinear
        val pixels = IntArray(spec.width * spec.height)
        scaled.getPixels(pixels, 0, spec.width, 0, 0, spec.width, spec.height)
        return pixels
    }

    private fun softmax(logits: FloatArray): FloatArray {
        val max = logits.max()
        val exps = FloatArray(logits.size) { exp(logits[it] - max) }
        val sum = exps.sum()
        return FloatArray(exps.size) { exps[it] / sum }
    }

    private companion object {
        /** The program's second input (`formats.executorch.gates_input` describes its dtype and shape). */
        const val GATES_INPUT = "gates"
    }
}

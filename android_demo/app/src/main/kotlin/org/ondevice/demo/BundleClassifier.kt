package org.ondevice.demo

import kotlin.math.exp
import org.ondevice.bundle.Bundle
import org.ondevice.bundle.ExecutorchFormat
import org.ondevice.bundle.GateDType
import org.ondevice.bundle.LogitsProgram
import org.ondevice.bundle.timed
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/** The top class of one image, the sub-network that produced it and its timed run (see [LogitsProgram]). */
data class Classification(val label: String, val probability: Float, val gates: String, val latencyMs: Double)

/**
 * Runs a bundle's ExecuTorch program: one method taking (image, gates), so switching sub-networks is a different
 * gates tensor on the same loaded program. The input shape, the method name, the input order, the gates dtype and
 * the backend all come from `manifest.json`. Create and use it off the main thread, one call at a time (the app
 * wraps it in a `SerialResource`); close it when done.
 */
class BundleClassifier(private val bundle: Bundle, numThreads: Int = 0) : LogitsProgram, AutoCloseable {
    private val entry: ExecutorchFormat = bundle.manifest.executorch
        ?: error("${bundle.directory} has no ExecuTorch program; export with `ondevice export --format executorch`")
    private val shape = LongArray(bundle.manifest.input.shape.size) { bundle.manifest.input.shape[it].toLong() }
    private val module: Module = Module.load(bundle.programFile.absolutePath, Module.LOAD_MODE_MMAP, numThreads)

    init {
        // load (and let XNNPACK pack its weights) now, not on the first image; 0 is ExecuTorch's Error::Ok
        val error = module.loadMethod(entry.method)
        check(error == 0) { "cannot load method \"${entry.method}\" of ${bundle.programFile}: ExecuTorch error $error" }
    }

    /** The delegate the program was lowered to (`formats.executorch.backend`), for the latency file. */
    val backend: String get() = entry.backend

    /** Number of floats in one input (`input.shape`). */
    val inputSize: Int get() = shape.fold(1L) { a, b -> a * b }.toInt()

    /** The top class of [input] (normalized, `input.shape`) with the sub-network [gates], and its timed run. */
    fun classify(input: FloatArray, gates: String): Classification {
        val run = timed(input, gates)
        val probabilities = softmax(run.logits)
        val best = probabilities.indices.maxBy { probabilities[it] }
        val label = bundle.manifest.classNames.getOrElse(best) { "class $best" }
        return Classification(label, probabilities[best], gates, run.latencyMs)
    }

    /** One timed run: the input tensors, `execute` of the manifest's method, the first output (logits) as floats. */
    override fun logits(input: FloatArray, gates: String): FloatArray =
        module.execute(entry.method, *inputs(input, gates))[0].toTensor().dataAsFloatArray

    /** A deterministic normal-random input of the right shape, for timing. */
    fun randomInput(seed: Long = 0): FloatArray {
        val random = java.util.Random(seed)
        return FloatArray(inputSize) { random.nextGaussian().toFloat() }
    }

    override fun close() = module.close()

    /** The method's inputs, in the order `formats.executorch.inputs` lists them. */
    private fun inputs(image: FloatArray, gates: String): Array<EValue> {
        val gateValues = bundle.manifest.gateValues(gates)
        val gatesShape = longArrayOf(gateValues.size.toLong())
        val gatesTensor = when (entry.gatesDType) {
            GateDType.INT32 -> Tensor.fromBlob(gateValues, gatesShape)
            GateDType.INT64 -> Tensor.fromBlob(LongArray(gateValues.size) { gateValues[it].toLong() }, gatesShape)
        }
        return entry.inputs.map { name ->
            when (name) {
                bundle.manifest.input.name -> EValue.from(Tensor.fromBlob(image, shape))
                GATES_INPUT -> EValue.from(gatesTensor)
                else -> error("formats.executorch.inputs names \"$name\"; this app feeds the image and the gates")
            }
        }.toTypedArray()
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

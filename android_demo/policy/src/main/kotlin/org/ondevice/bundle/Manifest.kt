package org.ondevice.bundle

import java.io.File
import org.ondevice.json.JsonException
import org.ondevice.json.JsonObject
import org.ondevice.json.JsonValue
import org.ondevice.json.asArray
import org.ondevice.json.asDouble
import org.ondevice.json.asInt
import org.ondevice.json.asObject
import org.ondevice.json.asString
import org.ondevice.json.optional
import org.ondevice.json.required
import org.ondevice.policy.Policy
import org.ondevice.policy.PolicyConfig
import org.ondevice.policy.SubnetCatalog

/** The model input: shape [1, C, H, W] (NCHW float32) and per-channel normalization. */
data class InputSpec(val name: String, val shape: List<Int>, val mean: List<Double>, val std: List<Double>) {
    val channels: Int get() = shape[1]
    val height: Int get() = shape[2]
    val width: Int get() = shape[3]
}

/** How the program takes its gates: one element per stage, 1 = skip. */
enum class GateDType(val key: String) {
    INT32("int32"), INT64("int64");

    companion object {
        fun fromKey(key: String): GateDType? = entries.firstOrNull { it.key == key }
    }
}

/** `formats.executorch`: one method taking (image, gates); [backend] names the delegate in the latency file. */
data class ExecutorchFormat(
    val file: String,
    val method: String,
    val inputs: List<String>,
    val gatesDType: GateDType,
    val backend: String = DEFAULT_BACKEND,
) {
    companion object {
        /**
         * `backend` is optional in the manifest: without it the program is taken to be XNNPACK, the delegate
         * `ondevice export --format executorch` lowers to and the default `ondevice profile` assumes.
         */
        const val DEFAULT_BACKEND = "xnnpack"
    }
}

/**
 * A bundle's `manifest.json`, the contract with the app: everything the app needs to preprocess, run and choose
 * (docs/export.md). Nothing about a sub-network is hard-coded in the app; it all comes from here.
 */
data class Manifest(
    val modelName: String,
    val classNames: List<String>,
    val input: InputSpec,
    val catalog: SubnetCatalog,
    val executorch: ExecutorchFormat?,
) {
    /** The gates tensor for [gates] ("TFFT"): 1 = skip that stage, as `formats.executorch.gates_input` says. */
    fun gateValues(gates: String): IntArray {
        require(gates.length == catalog.numStages && gates.all { it == 'T' || it == 'F' }) {
            "gates \"$gates\": need ${catalog.numStages} letters T/F (T = skip), e.g. ${"F".repeat(catalog.numStages)}"
        }
        return IntArray(gates.length) { if (gates[it] == 'T') 1 else 0 }
    }

    /**
     * The sub-networks the bundle's program can run, which the benchmark times: the ExecuTorch program takes the
     * gates as an input, so that is every sub-network the manifest lists, in its order.
     */
    fun runnableGates(): List<String> {
        checkNotNull(executorch) { "the manifest lists no ExecuTorch program: nothing to run or time" }
        return catalog.subnets.map { it.gates }
    }

    /** The super-net: every stage runs (all F). The benchmark's power measurement runs it back to back. */
    fun superNetGates(): String = "F".repeat(catalog.numStages)

    companion object {
        const val VERSION = 1
        const val FILE_NAME = "manifest.json"

        fun parse(text: String, source: String = FILE_NAME): Manifest = fromJson(JsonValue.parse(text, source), source)

        fun fromJson(json: JsonValue, source: String = FILE_NAME): Manifest {
            val root = json.asObject(source)
            val version = root["manifest_version"]?.toJson()
            if (version != VERSION.toString()) {
                throw JsonException(
                    "$source has manifest_version $version; this app reads version $VERSION. " +
                        "Re-export the bundle with `ondevice export`",
                )
            }
            val model = root.required("model", source).asObject("$source: model")
            val input = root.required("input", source).asObject("$source: input")
            val spec = InputSpec(
                name = input.required("name", "$source: input").asString("$source: input.name"),
                shape = input.required("shape", "$source: input").asArray("$source: input.shape")
                    .mapIndexed { i, v -> v.asInt("$source: input.shape[$i]") },
                mean = input.required("mean", "$source: input").asArray("$source: input.mean")
                    .mapIndexed { i, v -> v.asDouble("$source: input.mean[$i]") },
                std = input.required("std", "$source: input").asArray("$source: input.std")
                    .mapIndexed { i, v -> v.asDouble("$source: input.std[$i]") },
            )
            if (spec.shape.size != 4 || spec.shape[0] != 1 || spec.shape.any { it < 1 }) {
                throw JsonException("$source: input.shape ${spec.shape}: expected [1, C, H, W]")
            }
            for ((name, values) in listOf("mean" to spec.mean, "std" to spec.std)) {
                if (values.size != spec.channels && values.size != 1) {
                    throw JsonException("$source: input.$name has ${values.size} values for ${spec.channels} channels")
                }
            }
            val formats = root.required("formats", source).asObject("$source: formats")
            return Manifest(
                modelName = model.required("name", "$source: model").asString("$source: model.name"),
                classNames = model.required("class_names", "$source: model").asArray("$source: model.class_names")
                    .mapIndexed { i, v -> v.asString("$source: model.class_names[$i]") },
                input = spec,
                catalog = SubnetCatalog.fromJson(root, source),
                executorch = formats.optional("executorch")
                    ?.let { executorch(it.asObject("$source: formats.executorch"), source) },
            )
        }

        private fun executorch(entry: JsonObject, source: String): ExecutorchFormat {
            val where = "$source: formats.executorch"
            val gatesInput = entry.required("gates_input", where).asObject("$where.gates_input")
            val dtype = gatesInput.required("dtype", "$where.gates_input").asString("$where.gates_input.dtype")
            return ExecutorchFormat(
                file = entry.required("file", where).asString("$where.file"),
                method = entry.required("method", where).asString("$where.method"),
                inputs = entry.required("inputs", where).asArray("$where.inputs")
                    .mapIndexed { i, v -> v.asString("$where.inputs[$i]") },
                gatesDType = GateDType.fromKey(dtype)
                    ?: throw JsonException(
                        "$where.gates_input.dtype \"$dtype\": this app feeds ${GateDType.entries.map { it.key }}",
                    ),
                backend = entry.optional("backend")?.asString("$where.backend") ?: ExecutorchFormat.DEFAULT_BACKEND,
            )
        }
    }
}

/**
 * A bundle directory as the app finds it: `manifest.json`, `policy.json` and the program file. Plain `java.io`,
 * so the same loader runs in the app and in the JVM tests.
 */
class Bundle(val directory: File, val manifest: Manifest, val config: PolicyConfig) {
    /** The ExecuTorch program file, or an error saying how to export one. */
    val programFile: File
        get() {
            val entry = manifest.executorch ?: throw IllegalStateException(
                "${File(directory, Manifest.FILE_NAME)} lists no ExecuTorch program; " +
                    "export one with `ondevice export CHECKPOINT --format executorch`",
            )
            return File(directory, entry.file)
        }

    /** The policy for [device], using that device's latency table when the manifest has one. */
    fun policy(device: String?): Policy = Policy.create(config, manifest.catalog, device)

    companion object {
        const val POLICY_FILE = "policy.json"

        fun load(directory: File): Bundle {
            val manifestFile = File(directory, Manifest.FILE_NAME)
            val policyFile = File(directory, POLICY_FILE)
            if (!manifestFile.isFile) {
                throw java.io.FileNotFoundException("no $manifestFile: copy a bundle made by `ondevice export` there")
            }
            if (!policyFile.isFile) {
                throw java.io.FileNotFoundException("no $policyFile: write one with `ondevice policy init BUNDLE`")
            }
            return Bundle(
                directory,
                Manifest.parse(manifestFile.readText(), manifestFile.path),
                PolicyConfig.parse(policyFile.readText(), policyFile.path),
            )
        }
    }
}

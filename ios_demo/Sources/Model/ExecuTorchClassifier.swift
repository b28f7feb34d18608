#if canImport(ExecuTorch)
import ExecuTorch
import Foundation

/// The bundle's ExecuTorch program (`formats.executorch`): one method taking (image, gates), so switching
/// sub-networks is another gates tensor on the same loaded program.
public final class ExecuTorchClassifier: ImageClassifier {
    public let backend: String
    public let program = BundleManifest.Program.executorch
    private let module: Module
    private let manifest: BundleManifest
    private let format: BundleManifest.ExecuTorchFormat

    /// Loads the program and its method now (XNNPACK packs the weights here, not on the first image).
    public init(bundle: ModelBundle) throws {
        guard let format = bundle.manifest.formats.executorch else {
            throw BundleError.noProgram("the bundle has no ExecuTorch program; `ondevice export --format executorch`")
        }
        guard ["int32", "int64"].contains(format.gatesInput.dtype) else {
            throw BundleError.invalid(
                "formats.executorch.gates_input.dtype \(format.gatesInput.dtype): this app feeds int32 or int64")
        }
        manifest = bundle.manifest
        self.format = format
        backend = format.backend ?? "xnnpack"  // bundles written before the manifest named it were XNNPACK
        module = Module(filePath: bundle.directory.appendingPathComponent(format.file).path)
        try module.load(format.method)
    }

    public func logits(image: [Float], gates: String) throws -> [Float] {
        let output: Tensor<Float> = try module.execute(format.method, try inputs(image: image, gates: gates))
        return output.scalars()
    }

    /// The method's inputs in the order `formats.executorch.inputs` lists them.
    public func inputs(image: [Float], gates: String) throws -> [ValueConvertible] {
        let values = try manifest.gateValues(gates)
        let gatesTensor: ValueConvertible
        if format.gatesInput.dtype == "int64" {
            gatesTensor = Tensor<Int64>(values.map { Int64($0) }, shape: [values.count])
        } else {
            gatesTensor = Tensor<Int32>(values, shape: [values.count])
        }
        return try format.inputs.map { name -> ValueConvertible in
            switch name {
            case manifest.input.name: return Tensor<Float>(image, shape: manifest.input.shape)
            case "gates": return gatesTensor
            default:
                throw BundleError.invalid("formats.executorch.inputs names \"\(name)\"; this app feeds image and gates")
            }
        }
    }
}
#endif

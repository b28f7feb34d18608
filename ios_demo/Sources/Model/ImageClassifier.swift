import CoreML
import ExecuTorch
import Foundation
import OndevicePolicy

/// Runs one sub-network of a bundle on one normalized image. Implementations are not thread-safe: use each from one
/// queue (the app infers on a background serial queue).
public protocol ImageClassifier: AnyObject {
    /// "xnnpack", "coreml-all", ...: the backend column of the latency table this classifier's timings go into.
    var backend: String { get }
    /// Logits of `image` (`[1, C, H, W]` floats, normalized as the manifest says) from the sub-network `gates`.
    func logits(image: [Float], gates: String) throws -> [Float]
}

/// The top class of one image, the sub-network that produced it and how long inference took.
public struct Classification: Sendable {
    public var label: String
    public var probability: Float
    public var gates: String
    public var latencyMs: Double
}

public extension ImageClassifier {
    /// Timed `logits` plus softmax and the top class, named from `manifest.model.classNames`.
    func classify(image: [Float], gates: String, classNames: [String]) throws -> Classification {
        let start = DispatchTime.now().uptimeNanoseconds
        let logits = try logits(image: image, gates: gates)
        let latencyMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        let top = logits.max() ?? 0
        let exps = logits.map { exp($0 - top) }
        let sum = exps.reduce(0, +)
        let best = exps.indices.max { exps[$0] < exps[$1] } ?? 0
        let label = best < classNames.count ? classNames[best] : "class \(best)"
        return Classification(label: label, probability: exps[best] / sum, gates: gates, latencyMs: latencyMs)
    }
}

/// The bundle's ExecuTorch program (`formats.executorch`): one method taking (image, gates), so switching
/// sub-networks is another gates tensor on the same loaded program.
public final class ExecuTorchClassifier: ImageClassifier {
    public let backend = "xnnpack"
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

/// The bundle's Core ML multifunction package (`formats.coreml`, iOS 18+): one function per sub-network, chosen
/// with `MLModelConfiguration.functionName`. One `MLModel` serves one function, so each is loaded once, on first use;
/// the weights on disk are shared.
@available(iOS 18.0, macOS 15.0, *)
public final class CoreMLClassifier: ImageClassifier {
    public let backend = "coreml-all"
    private let compiledURL: URL
    private let format: BundleManifest.CoreMLFormat
    private let input: BundleManifest.Input
    private var models: [String: MLModel] = [:]

    private init(compiledURL: URL, format: BundleManifest.CoreMLFormat, input: BundleManifest.Input) {
        self.compiledURL = compiledURL
        self.format = format
        self.input = input
    }

    /// Compiles the `.mlpackage` once (to a temporary `.mlmodelc`); loading a function happens on first use.
    public static func load(bundle: ModelBundle) async throws -> CoreMLClassifier {
        guard let format = bundle.manifest.formats.coreml else {
            throw BundleError.noProgram("the bundle has no Core ML package; `ondevice export --format coreml`")
        }
        let compiled = try await MLModel.compileModel(at: bundle.directory.appendingPathComponent(format.file))
        return CoreMLClassifier(compiledURL: compiled, format: format, input: bundle.manifest.input)
    }

    public func logits(image: [Float], gates: String) throws -> [Float] {
        let array = try MLMultiArray(shape: input.shape.map { NSNumber(value: $0) }, dataType: .float32)
        array.withUnsafeMutableBufferPointer(ofType: Float.self) { buffer, _ in
            for (i, value) in image.enumerated() { buffer[i] = value }
        }
        let features = try MLDictionaryFeatureProvider(
            dictionary: [format.input ?? input.name: MLFeatureValue(multiArray: array)])
        let result = try model(for: gates).prediction(from: features)
        guard let logits = result.featureValue(for: format.output ?? "logits")?.multiArrayValue else {
            throw BundleError.invalid("the Core ML function for \(gates) has no output \(format.output ?? "logits")")
        }
        return (0..<logits.count).map { logits[$0].floatValue }
    }

    private func model(for gates: String) throws -> MLModel {
        if let model = models[gates] { return model }
        guard let function = format.functions[gates] else {
            throw BundleError.invalid("formats.coreml.functions has no function for \(gates)")
        }
        let configuration = MLModelConfiguration()
        configuration.computeUnits = .all
        configuration.functionName = function
        let model = try MLModel(contentsOf: compiledURL, configuration: configuration)
        models[gates] = model
        return model
    }
}

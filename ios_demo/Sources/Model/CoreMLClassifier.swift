#if canImport(CoreML)
import CoreML
import Foundation

/// The bundle's Core ML multifunction package (`formats.coreml`, iOS 18+): one function per sub-network, chosen
/// with `MLModelConfiguration.functionName`. One `MLModel` serves one function, so each is loaded once, on first use;
/// the weights on disk are shared.
@available(iOS 18.0, macOS 15.0, *)
public final class CoreMLClassifier: ImageClassifier {
    public let backend = "coreml-all"
    public let program = BundleManifest.Program.coreml
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
#endif

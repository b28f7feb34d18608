import Dispatch
import Foundation

/// Runs one sub-network of a bundle on one normalized image. Implementations are not thread-safe: use each from one
/// queue (the app infers on a background serial queue).
public protocol ImageClassifier: AnyObject {
    /// "xnnpack", "coreml-all", ...: the backend column of the latency table this classifier's timings go into.
    var backend: String { get }
    /// The program it runs, which decides the sub-networks it can run (`BundleManifest.gates(in:)`).
    var program: BundleManifest.Program { get }
    /// Logits of `image`. This whole call is what a latency sample times, on iOS and Android alike: from the
    /// normalized input array to the logits array (input tensor, forward pass, reading the output). (`[1, C, H, W]` floats, normalized as the manifest says) from the sub-network `gates`.
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

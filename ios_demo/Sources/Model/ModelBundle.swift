import Foundation
import OndevicePolicy

/// A bundle's `manifest.json`, the contract with the app: how to preprocess, which program or functions to run,
/// and the sub-networks the policy chooses from. Nothing about a sub-network is hard-coded in the app.
public struct BundleManifest: Decodable, Sendable {
    public static let version = 1

    public struct Model: Decodable, Sendable {
        public var name: String
        public var classNames: [String]

        private enum CodingKeys: String, CodingKey {
            case name, classNames = "class_names"
        }
    }

    /// The model input: shape [1, C, H, W] (NCHW float32) and per-channel normalization.
    public struct Input: Decodable, Sendable {
        public var name: String
        public var shape: [Int]
        public var mean: [Double]
        public var std: [Double]

        public var channels: Int { shape[1] }
        public var height: Int { shape[2] }
        public var width: Int { shape[3] }
    }

    /// `formats.executorch`: one method taking the image and the gates tensor (1 = skip a stage).
    public struct ExecuTorchFormat: Decodable, Sendable {
        public struct GatesInput: Decodable, Sendable {
            public var dtype: String
            public var shape: [Int]
        }

        public var file: String
        public var method: String
        public var inputs: [String]
        public var gatesInput: GatesInput
        /// The delegate the program was exported for ("xnnpack"); older bundles do not say.
        public var backend: String?

        private enum CodingKeys: String, CodingKey {
            case file, method, inputs, gatesInput = "gates_input", backend
        }
    }

    /// `formats.coreml`: a multifunction package with one function per sub-network (iOS 18+).
    public struct CoreMLFormat: Decodable, Sendable {
        public var file: String
        /// gates -> function name, e.g. "TFFT" -> "subnet_TFFT": the app reads names, it never builds them.
        public var functions: [String: String]
        public var input: String?
        public var output: String?
    }

    public struct Formats: Decodable, Sendable {
        public var executorch: ExecuTorchFormat?
        public var coreml: CoreMLFormat?
    }

    public var model: Model
    public var input: Input
    public var formats: Formats
    public var catalog: SubnetCatalog

    private enum CodingKeys: String, CodingKey {
        case manifestVersion = "manifest_version", model, input, formats
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let version = try? c.decode(Int.self, forKey: .manifestVersion)
        guard version == Self.version else { throw BundleError.manifestVersion(found: version) }
        model = try c.decode(Model.self, forKey: .model)
        input = try c.decode(Input.self, forKey: .input)
        formats = try c.decode(Formats.self, forKey: .formats)
        catalog = try SubnetCatalog(from: decoder)
        guard input.shape.count == 4, input.shape[0] == 1, input.shape.allSatisfy({ $0 > 0 }) else {
            throw BundleError.invalid("input.shape \(input.shape): expected [1, C, H, W]")
        }
    }

    /// The program a classifier runs.
    public enum Program: Sendable {
        case executorch, coreml
    }

    /// The catalog's sub-networks that `program` holds, in catalog order: all of them in the ExecuTorch program;
    /// in the Core ML package only those `formats.coreml.functions` names (an export may hold a subset).
    public func gates(in program: Program) -> [String] {
        let all = catalog.subnets.map(\.gates)
        switch program {
        case .executorch: return all
        case .coreml: return all.filter { formats.coreml?.functions[$0] != nil }
        }
    }

    /// The gates tensor values for `gates` ("TFFT"): 1 = skip that stage.
    public func gateValues(_ gates: String) throws -> [Int32] {
        guard gates.count == catalog.numStages, gates.allSatisfy({ $0 == "T" || $0 == "F" }) else {
            throw BundleError.invalid("gates \"\(gates)\": need \(catalog.numStages) letters T/F (T = skip)")
        }
        return gates.map { $0 == "T" ? 1 : 0 }
    }
}

/// A bundle that cannot be used as it is; the description says what to do.
public enum BundleError: Error, CustomStringConvertible {
    case missingFile(URL, hint: String)
    case manifestVersion(found: Int?)
    case noProgram(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .missingFile(let url, let hint): return "no \(url.path): \(hint)"
        case .manifestVersion(let found):
            return "manifest.json has manifest_version \(found.map(String.init) ?? "none"); this app reads version "
                + "\(BundleManifest.version). Re-export the bundle with `ondevice export`"
        case .noProgram(let detail): return detail
        case .invalid(let detail): return "manifest.json: \(detail)"
        }
    }
}

/// A bundle directory as the app finds it: `manifest.json`, `policy.json` and the model files.
public struct ModelBundle: Sendable {
    public var directory: URL
    public var manifest: BundleManifest
    public var config: PolicyConfig

    public init(directory: URL, manifest: BundleManifest, config: PolicyConfig) {
        self.directory = directory
        self.manifest = manifest
        self.config = config
    }

    /// Reads `manifest.json` and `policy.json` from `directory` (the app's Documents/bundle).
    public static func load(from directory: URL) throws -> ModelBundle {
        let manifestURL = directory.appendingPathComponent("manifest.json")
        let policyURL = directory.appendingPathComponent("policy.json")
        let fm = FileManager.default
        guard fm.fileExists(atPath: manifestURL.path) else {
            throw BundleError.missingFile(manifestURL, hint: "copy a bundle made by `ondevice export` there")
        }
        guard fm.fileExists(atPath: policyURL.path) else {
            throw BundleError.missingFile(policyURL, hint: "write one with `ondevice policy init BUNDLE`")
        }
        let manifest = try JSONDecoder().decode(BundleManifest.self, from: Data(contentsOf: manifestURL))
        let config = try PolicyConfig.load(contentsOf: policyURL)
        return ModelBundle(directory: directory, manifest: manifest, config: config)
    }

    /// The policy for `device` (its latency table when the manifest has one), choosing among the sub-networks
    /// that `program` holds.
    public func policy(device: String?, program: BundleManifest.Program) throws -> Policy {
        var catalog = manifest.catalog
        let runnable = Set(manifest.gates(in: program))
        catalog.subnets.removeAll { !runnable.contains($0.gates) }
        return try Policy(config: config, catalog: catalog, device: device)
    }
}

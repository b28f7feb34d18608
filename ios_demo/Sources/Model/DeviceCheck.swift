import Foundation

/// A bundle's `device_check.json`: the logits its ExecuTorch program gave at export, per sub-network, on an input
/// that needs no file (element `i` of the flattened NCHW input is `Float((i * 7919 + 13) % 256) / 127.5 - 1`). The
/// first run on a phone compares with it; Android does the same with the same file.
public struct DeviceCheck: Decodable, Sendable {
    public static let fileName = "device_check.json"
    public static let format = "ondevice-device-check"

    public struct Input: Decodable, Sendable {
        public var shape: [Int]
        public var head: [Double]
        public var sum: Double
    }

    public var program: String
    public var sha256: String
    public var input: Input
    /// Largest allowed |got - expected| per logit.
    public var atol: Double
    public var logits: [String: [Double]]

    private enum CodingKeys: String, CodingKey {
        case format, version, program, sha256, input, atol, logits
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let format = try c.decode(String.self, forKey: .format)
        let version = try c.decode(Int.self, forKey: .version)
        guard format == Self.format, version == 1 else {
            throw BundleError.invalid("\(Self.fileName) is \(format) version \(version); this app reads version 1")
        }
        program = try c.decode(String.self, forKey: .program)
        sha256 = try c.decode(String.self, forKey: .sha256)
        input = try c.decode(Input.self, forKey: .input)
        atol = try c.decode(Double.self, forKey: .atol)
        logits = try c.decode([String: [Double]].self, forKey: .logits)
    }

    public static func load(from directory: URL) throws -> DeviceCheck {
        let url = directory.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw BundleError.missingFile(url, hint: "`ondevice export --format executorch` writes it")
        }
        return try JSONDecoder().decode(DeviceCheck.self, from: Data(contentsOf: url))
    }

    /// The check input of `count` elements, in Float arithmetic.
    public static func input(count: Int) -> [Float] {
        (0..<count).map { Float(($0 * 7919 + 13) % 256) / 127.5 - 1 }
    }

    /// The check input for the file's shape, after checking it against the file's first values and sum: a wrong
    /// input is reported as such, not as a wrong program.
    public func checkedInput() throws -> [Float] {
        let x = Self.input(count: input.shape.reduce(1, *))
        let head = x.prefix(input.head.count).map(Double.init)
        let sum = x.reduce(0.0) { $0 + Double($1) }
        guard head == input.head, abs(sum - input.sum) <= 1e-6 * max(1, abs(input.sum)) else {
            throw BundleError.invalid("\(Self.fileName): this app's check input differs from the file's")
        }
        return x
    }

    /// Why `got` (the logits of `gates`) fails the check, or nil when every logit is within `atol`.
    public func mismatch(gates: String, logits got: [Float]) -> String? {
        guard let expected = logits[gates] else { return "\(gates): not in \(Self.fileName)" }
        guard got.count == expected.count else { return "\(gates): \(got.count) logits, expected \(expected.count)" }
        let worst = zip(got, expected).map { abs(Double($0) - $1) }.max() ?? 0
        guard worst <= atol, !got.contains(where: \.isNaN) else {
            return "\(gates): a logit is \(worst) off (tolerance \(atol))"
        }
        return nil
    }

    /// Runs every sub-network of the file, in sorted order, through `run` (gates -> logits) and returns the
    /// failures; empty means the program on this phone gives the exported logits.
    public func failures(running run: (String) throws -> [Float]) rethrows -> [String] {
        try logits.keys.sorted().compactMap { gates in mismatch(gates: gates, logits: try run(gates)) }
    }
}

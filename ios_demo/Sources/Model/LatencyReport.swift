import Foundation

/// Median, p90 and min of one sub-network's timed runs, in ms, computed as `ondevice profile` does.
public struct LatencyStats: Codable, Equatable, Sendable {
    public var medianMs: Double
    public var p90Ms: Double
    public var minMs: Double

    private enum CodingKeys: String, CodingKey {
        case medianMs = "median_ms", p90Ms = "p90_ms", minMs = "min_ms"
    }

    public init(medianMs: Double, p90Ms: Double, minMs: Double) {
        self.medianMs = medianMs
        self.p90Ms = p90Ms
        self.minMs = minMs
    }

    /// From the samples of one sub-network (at least one).
    public init(samplesMs: [Double]) {
        precondition(!samplesMs.isEmpty, "no timed runs")
        let sorted = samplesMs.sorted()
        let n = sorted.count
        let median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2  // Python's statistics.median
        self.init(medianMs: median, p90Ms: Self.percentile(sorted, 0.9), minMs: sorted[0])
    }

    /// Linear interpolation between closest ranks, the formula of `ondevice profile` (numpy's default).
    private static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        let k = Double(sorted.count - 1) * q
        let lo = Int(k)
        let hi = Swift.min(lo + 1, sorted.count - 1)
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (k - Double(lo))
    }

    /// 4 decimals (0.1 us), as `ondevice profile` writes its own tables (Python rounds the exact binary value; this
    /// can differ from it in the last digit in rare ties, which no latency table cares about).
    func rounded() -> LatencyStats {
        func round4(_ ms: Double) -> Double { (ms * 10_000).rounded() / 10_000 }
        return LatencyStats(medianMs: round4(medianMs), p90Ms: round4(p90Ms), minMs: round4(minMs))
    }
}

/// The latency file the benchmark writes and `ondevice profile BUNDLE --merge FILE` reads
/// (`ondevice/contract/latency.schema.json`: format "ondevice-latency", version 1). Its `device` becomes the latency
/// table's name in the manifest, and the policy looks its table up under the same name on this phone.
public struct LatencyReport: Encodable, Sendable {
    public static let fileName = "latency.json"

    public let format = "ondevice-latency"
    public let version = 1
    public var device: String
    public var model: String
    public var backend: String
    public var runs: Int
    public var warmup: Int
    public var measuredAt: String
    public var app: String
    public var subnets: [String: LatencyStats]

    private enum CodingKeys: String, CodingKey {
        case format, version, device, model, backend, runs, warmup, measuredAt = "measured_at", app, subnets
    }

    public init(
        device: String, model: String, backend: String, runs: Int, warmup: Int, measuredAt: Date = Date(),
        app: String, subnets: [String: LatencyStats]
    ) {
        self.device = device
        self.model = model
        self.backend = backend
        self.runs = runs
        self.warmup = warmup
        self.measuredAt = ISO8601DateFormatter().string(from: measuredAt)
        self.app = app
        self.subnets = subnets.mapValues { $0.rounded() }
    }

    /// Pretty-printed JSON with sorted keys.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

/// Times every sub-network interleaved, as `ondevice profile` does: `warmup` untimed rounds, then `runs` rounds in
/// which each sub-network runs once, in an order rotated by one each round, so that heat and background load spread
/// evenly over them. `run` executes one sub-network.
public func measureInterleaved(
    gates: [String],
    runs: Int,
    warmup: Int,
    clock: () -> UInt64 = { DispatchTime.now().uptimeNanoseconds },
    run: (String) throws -> Void
) rethrows -> [String: LatencyStats] {
    precondition(!gates.isEmpty && runs >= 1 && warmup >= 0, "need sub-networks, runs >= 1 and warmup >= 0")
    for _ in 0..<warmup {
        for g in gates { try run(g) }
    }
    var samples = [String: [Double]]()
    for round in 0..<runs {
        let shift = round % gates.count
        for g in gates[shift...] + gates[..<shift] {
            let start = clock()
            try run(g)
            samples[g, default: []].append(Double(clock() - start) / 1e6)
        }
    }
    return samples.mapValues { LatencyStats(samplesMs: $0) }
}

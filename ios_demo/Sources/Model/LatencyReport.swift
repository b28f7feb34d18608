import Foundation
import OndevicePolicy

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

/// One timed interleaved round: the thermal level read just before it (on the policy's scale) and each
/// sub-network's time in ms.
public struct TimedRound: Equatable, Sendable {
    public var thermal: Thermal
    public var samplesMs: [String: Double]

    public init(thermal: Thermal, samplesMs: [String: Double]) {
        self.thermal = thermal
        self.samplesMs = samplesMs
    }
}

/// Timed rounds grouped by the thermal level read before each: the rounds at the coolest level seen give the
/// latency table, those at each hotter level with at least `minimumRuns` rounds its thermal table (docs/policy.md,
/// section 2, rule 3); hotter levels with fewer rounds are dropped (`dropped`: level -> rounds).
public struct ThermalLatency: Equatable, Sendable {
    /// The rounds behind one table.
    public struct Group: Equatable, Sendable {
        public var runs: Int
        public var subnets: [String: LatencyStats]
    }

    /// A hotter level's table needs this many rounds: fewer give a p90 too noisy to plan with.
    public static let minimumRuns = 20

    /// The coolest level seen; its rounds are the latency table (`cool`).
    public var coolest: Thermal
    public var cool: Group
    /// Hotter levels with at least `minimumRuns` rounds.
    public var hot: [Thermal: Group]
    public var dropped: [Thermal: Int]

    public init(rounds: [TimedRound], minimumRuns: Int = Self.minimumRuns) {
        precondition(!rounds.isEmpty, "no timed rounds")
        let byLevel = Dictionary(grouping: rounds, by: \.thermal)
        func group(_ rounds: [TimedRound]) -> Group {
            var samples = [String: [Double]]()
            for round in rounds {
                for (g, ms) in round.samplesMs { samples[g, default: []].append(ms) }
            }
            return Group(runs: rounds.count, subnets: samples.mapValues { LatencyStats(samplesMs: $0) })
        }
        coolest = byLevel.keys.min()!
        cool = group(byLevel[coolest]!)
        hot = [:]
        dropped = [:]
        for (level, at) in byLevel where level > coolest {
            if at.count >= minimumRuns { hot[level] = group(at) } else { dropped[level] = at.count }
        }
    }
}

/// The latency file the benchmark writes and `ondevice profile BUNDLE --merge FILE` reads
/// (`ondevice/contract/latency.schema.json`: format "ondevice-latency", version 1). Its `device` becomes the latency
/// table's name in the manifest, and the policy looks its table up under the same name on this phone. `thermal`
/// holds the tables of rounds timed while the phone was hotter, keyed by Android's status name ("severe").
public struct LatencyReport: Encodable, Sendable {
    public static let fileName = "latency.json"

    /// One thermal table: the rounds timed at that status and their statistics.
    public struct ThermalTable: Encodable, Equatable, Sendable {
        public var runs: Int
        public var subnets: [String: LatencyStats]
    }

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
    /// nil (left out of the file) when no hotter status had enough rounds.
    public var thermal: [String: ThermalTable]?

    private enum CodingKeys: String, CodingKey {
        case format, version, device, model, backend, runs, warmup, measuredAt = "measured_at", app, subnets, thermal
    }

    public init(
        device: String, model: String, backend: String, runs: Int, warmup: Int, measuredAt: Date = Date(),
        app: String, subnets: [String: LatencyStats], thermal: [Thermal: ThermalLatency.Group] = [:]
    ) {
        self.device = device
        self.model = model
        self.backend = backend
        self.runs = runs
        self.warmup = warmup
        self.measuredAt = ISO8601DateFormatter().string(from: measuredAt)
        self.app = app
        self.subnets = subnets.mapValues { $0.rounded() }
        let tables = thermal.filter { $0.key != Thermal.none }.map { level, group in
            (level.name, ThermalTable(runs: group.runs, subnets: group.subnets.mapValues { $0.rounded() }))
        }
        self.thermal = tables.isEmpty ? nil : Dictionary(uniqueKeysWithValues: tables)
    }

    /// The file of rounds grouped by thermal level: `runs` and `subnets` are those of the coolest level seen.
    public init(
        device: String, model: String, backend: String, warmup: Int, measuredAt: Date = Date(), app: String,
        latency: ThermalLatency
    ) {
        self.init(
            device: device, model: model, backend: backend, runs: latency.cool.runs, warmup: warmup,
            measuredAt: measuredAt, app: app, subnets: latency.cool.subnets, thermal: latency.hot)
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
    precondition(runs >= 1, "need runs >= 1")
    let rounds = try measureInterleavedRounds(
        gates: gates, warmup: warmup, clock: clock, thermal: { .none }, while: { $0 < runs }, run: run)
    return ThermalLatency(rounds: rounds).cool.subnets
}

/// The rounds of `measureInterleaved`, each with the thermal level `thermal` reads just before it (the app:
/// `ProcessInfo.thermalState` through `policy.json`'s `thermal.ios_levels`). Rounds go on while `more(rounds done)`
/// holds: `{ $0 < runs }` for a fixed count, a deadline for a sustained benchmark that heats the phone up.
public func measureInterleavedRounds(
    gates: [String],
    warmup: Int,
    clock: () -> UInt64 = { DispatchTime.now().uptimeNanoseconds },
    thermal: () -> Thermal,
    while more: (_ done: Int) -> Bool,
    run: (String) throws -> Void
) rethrows -> [TimedRound] {
    precondition(!gates.isEmpty && warmup >= 0, "need sub-networks and warmup >= 0")
    for _ in 0..<warmup {
        for g in gates { try run(g) }
    }
    var rounds: [TimedRound] = []
    while more(rounds.count) {
        let level = thermal()
        let shift = rounds.count % gates.count
        var samples = [String: Double]()
        for g in gates[shift...] + gates[..<shift] {
            let start = clock()
            try run(g)
            samples[g] = Double(clock() - start) / 1e6
        }
        rounds.append(TimedRound(thermal: level, samplesMs: samples))
    }
    return rounds
}

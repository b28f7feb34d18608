import Foundation

/// One sub-network as the manifest lists it: gates ("TFFT", T = skip), cost, and top-1 per precision.
public struct SubnetInfo: Decodable, Equatable, Sendable {
    public var gates: String
    public var name: String
    public var flops: Int64
    public var params: Int64
    public var accuracy: [String: Double]
}

/// One sub-network's row of a latency table.
public struct LatencyEntry: Decodable, Equatable, Sendable {
    public var medianMs: Double
    public var p90Ms: Double?
    public var minMs: Double?

    private enum CodingKeys: String, CodingKey {
        case medianMs = "median_ms", p90Ms = "p90_ms", minMs = "min_ms"
    }

    /// The policy's statistic, or the median when the entry lacks it.
    public func value(_ statistic: LatencyStatistic) -> Double {
        switch statistic {
        case .median: return medianMs
        case .p90: return p90Ms ?? medianMs
        case .min: return minMs ?? medianMs
        }
    }
}

/// A device's latency table (`manifest.latency[device]`). `thermal` holds latency measured while the device was at
/// a hotter status, keyed by Android's status name ("moderate", "severe", ...); each times the same sub-networks.
public struct LatencyTable: Decodable, Equatable, Sendable {
    public var backend: String
    public var measuredAt: String?
    public var subnets: [String: LatencyEntry]
    public var thermal: [String: ThermalLatencyTable]?

    public init(
        backend: String, measuredAt: String? = nil, subnets: [String: LatencyEntry],
        thermal: [String: ThermalLatencyTable]? = nil
    ) {
        self.backend = backend
        self.measuredAt = measuredAt
        self.subnets = subnets
        self.thermal = thermal
    }

    private enum CodingKeys: String, CodingKey {
        case backend, measuredAt = "measured_at", subnets, thermal
    }
}

/// One thermal table of a device's latency table (`manifest.latency[device].thermal[status]`).
public struct ThermalLatencyTable: Decodable, Equatable, Sendable {
    public var subnets: [String: LatencyEntry]

    public init(subnets: [String: LatencyEntry]) {
        self.subnets = subnets
    }
}

/// What the policy reads from `manifest.json`: the gates, the precision, the sub-networks and the latency tables.
/// Decodes from a whole manifest (other keys are ignored) or from the `manifest` part of the test vectors.
public struct SubnetCatalog: Decodable, Equatable, Sendable {
    public var numStages: Int
    public var precision: String?
    public var subnets: [SubnetInfo]
    public var latency: [String: LatencyTable]

    public init(numStages: Int, precision: String?, subnets: [SubnetInfo], latency: [String: LatencyTable]) {
        self.numStages = numStages
        self.precision = precision
        self.subnets = subnets
        self.latency = latency
    }

    private enum Keys: String, CodingKey {
        case gates, precision, subnets, latency
    }

    private enum GateKeys: String, CodingKey {
        case numStages = "num_stages"
    }

    private struct Precision: Decodable {
        var name: String?
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        numStages = try c.nestedContainer(keyedBy: GateKeys.self, forKey: .gates).decode(Int.self, forKey: .numStages)
        precision = try c.decodeIfPresent(Precision.self, forKey: .precision)?.name
        subnets = try c.decode([SubnetInfo].self, forKey: .subnets)
        latency = try c.decodeIfPresent([String: LatencyTable].self, forKey: .latency) ?? [:]
    }
}

/// One row of the policy's table.
public struct SubNetwork: Equatable, Sendable {
    public var gates: String
    public var name: String
    public var latencyMs: Double
    public var accuracy: Double
    public var flops: Int64
}

/// Where the table's latencies come from.
public enum LatencySource: Equatable, Sendable {
    /// The table measured on this device.
    case device(String, backend: String)
    /// No table for this device: the most recently measured one, used as measured there.
    case fallbackTable(String, backend: String)
    /// No table at all: FLOPs x `latency.fallback_ms_per_gflop`.
    case flopsEstimate

    /// "device", "fallback-table" or "flops-estimate", as the Python policy names them.
    public var kind: String {
        switch self {
        case .device: return "device"
        case .fallbackTable: return "fallback-table"
        case .flopsEstimate: return "flops-estimate"
        }
    }

    public var tableName: String? {
        switch self {
        case .device(let name, _), .fallbackTable(let name, _): return name
        case .flopsEstimate: return nil
        }
    }
}

/// A bundle the policy cannot choose from; the description says what to run.
public enum SubnetTableError: Error, CustomStringConvertible {
    case noListedSubnets(table: String?)
    case badGates(String, numStages: Int)
    case badLatency(gates: String, ms: Double)
    case missingAccuracy(String)
    /// A thermal table keyed by something other than Android's status names above NONE.
    case unknownThermalStatus(table: String, status: String)
    /// A thermal table that does not time exactly the cool table's sub-networks (sorted gates of each).
    case thermalSubnetsDiffer(table: String, status: String, thermal: [String], cool: [String])

    public var description: String {
        switch self {
        case .noListedSubnets(let table):
            return "the latency table \"\(table ?? "-")\" lists none of the manifest's sub-networks; "
                + "profile the bundle (`ondevice profile`)"
        case .badGates(let gates, let n):
            return "gates \"\(gates)\": need \(n) letters T/F"
        case .badLatency(let gates, let ms):
            return "sub-network \(gates): latency \(ms) ms is not a number >= 0"
        case .missingAccuracy(let detail):
            return detail
        case .unknownThermalStatus(let table, let status):
            let names = Thermal.allCases.filter { $0 != Thermal.none }.map(\.name).joined(separator: ", ")
            return "latency table \"\(table)\": thermal table \"\(status)\" is not one of \(names)"
        case .thermalSubnetsDiffer(let table, let status, let thermal, let cool):
            return "latency table \"\(table)\": the \"\(status)\" thermal table lists \(thermal), the cool table "
                + "\(cool); a thermal table must time the same sub-networks"
        }
    }
}

/// The front and candidates of latency measured at a hotter thermal `level` (rule 3): same sub-networks as the cool
/// table's, their own latencies, their own front.
public struct ThermalTable: Equatable, Sendable {
    public var level: Thermal
    public var front: [SubNetwork]
    public var candidates: [SubNetwork]
}

/// The Pareto front the policy chooses from, cheapest first, and every candidate (docs/policy.md, section 2).
/// The front is strictly increasing in latency and in accuracy. `thermal` holds the fronts of the chosen table's
/// thermal tables, by ascending level (empty without them).
public struct SubnetTable: Equatable, Sendable {
    public var front: [SubNetwork]
    public var candidates: [SubNetwork]
    public var source: LatencySource
    public var accuracyKey: String
    public var device: String?
    public var thermal: [ThermalTable]

    /// Rules 1-5 of docs/policy.md, section 2, for `device` (nil: no name, use the newest table).
    public init(catalog: SubnetCatalog, config: PolicyConfig, device: String?) throws {
        let (latency, source) = try Self.selectLatency(catalog, config, device)
        let listed = catalog.subnets.filter { latency[$0.gates] != nil }
        guard !listed.isEmpty else { throw SubnetTableError.noListedSubnets(table: source.tableName) }
        let key = try Self.accuracyKey(catalog, listed, config)
        (front, candidates) = try Self.front(listed, latency, key, catalog.numStages)
        thermal = try Self.selectThermalLatency(catalog, config, source).map { level, hot in
            let (front, candidates) = try Self.front(listed, hot, key, catalog.numStages)
            return ThermalTable(level: level, front: front, candidates: candidates)
        }
        self.source = source
        accuracyKey = key
        self.device = device
    }

    /// Rule 5 (front) on the listed sub-networks at these latencies: (front, candidates sorted by gates).
    private static func front(
        _ listed: [SubnetInfo], _ latency: [String: Double], _ key: String, _ numStages: Int
    ) throws -> ([SubNetwork], [SubNetwork]) {
        let rows = try listed.sorted { $0.gates < $1.gates }.map { s -> SubNetwork in
            guard s.gates.count == numStages, s.gates.allSatisfy({ $0 == "T" || $0 == "F" }) else {
                throw SubnetTableError.badGates(s.gates, numStages: numStages)
            }
            let ms = latency[s.gates]!  // listed only holds gates with a latency (the same in every thermal table)
            guard ms >= 0 else { throw SubnetTableError.badLatency(gates: s.gates, ms: ms) }
            return SubNetwork(gates: s.gates, name: s.name, latencyMs: ms, accuracy: s.accuracy[key]!, flops: s.flops)
        }
        return (paretoFront(rows), rows)
    }

    /// Rule 3: the chosen table's thermal tables as (level, gates -> latency), by ascending level; each must time
    /// exactly the cool table's sub-networks. None with the FLOPs estimate.
    private static func selectThermalLatency(
        _ catalog: SubnetCatalog, _ config: PolicyConfig, _ source: LatencySource
    ) throws -> [(Thermal, [String: Double])] {
        guard let name = source.tableName, let table = catalog.latency[name], let thermal = table.thermal else {
            return []
        }
        let cool = table.subnets.keys.sorted(by: codePointLess)
        var hot: [(Thermal, [String: Double])] = []
        for status in thermal.keys.sorted(by: codePointLess) {
            guard let level = Thermal(tableKey: status) else {
                throw SubnetTableError.unknownThermalStatus(table: name, status: status)
            }
            let listed = thermal[status]!.subnets.keys.sorted(by: codePointLess)
            guard listed == cool else {
                throw SubnetTableError.thermalSubnetsDiffer(table: name, status: status, thermal: listed, cool: cool)
            }
            let statistic = config.latency.statistic
            hot.append((level, try monotoneLatency(thermal[status]!.subnets.mapValues { $0.value(statistic) })))
        }
        return hot.sorted { $0.0 < $1.0 }
    }

    private static func selectLatency(
        _ catalog: SubnetCatalog, _ config: PolicyConfig, _ device: String?
    ) throws -> ([String: Double], LatencySource) {
        let tables = catalog.latency
        let name: String
        let source: LatencySource
        if let device, let table = tables[device] {
            name = device
            source = .device(device, backend: table.backend)
        } else if let newest = tables.max(by: { isOlder($0, than: $1) }) {
            name = newest.key
            source = .fallbackTable(newest.key, backend: newest.value.backend)
        } else {
            let perGflop = config.latency.fallbackMsPerGflop
            let estimate = catalog.subnets.map { ($0.gates, Double($0.flops) / 1e9 * perGflop) }
            return (Dictionary(estimate, uniquingKeysWith: { first, _ in first }), .flopsEstimate)
        }
        let statistic = config.latency.statistic
        return (try monotoneLatency(tables[name]!.subnets.mapValues { $0.value(statistic) }), source)
    }

    /// Rule 2b: skipping more stages never costs more, so each sub-network's latency is capped by that of every
    /// sub-network that runs at least its stages (an `F` wherever it has one). `min` of doubles is exact.
    static func monotoneLatency(_ latency: [String: Double]) throws -> [String: Double] {
        for gates in latency.keys.sorted(by: { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }) {
            let ms = latency[gates]!
            guard ms >= 0 else { throw SubnetTableError.badLatency(gates: gates, ms: ms) }
        }
        var capped: [String: Double] = [:]
        for gates in latency.keys {
            let runsAtLeastAsMuch = latency.filter { other, _ in
                other == gates
                    || (other.count == gates.count
                        && zip(other, gates).allSatisfy { otherGate, gate in otherGate == "F" || gate == "T" })
            }
            capped[gates] = runsAtLeastAsMuch.values.min()!
        }
        return capped
    }

    /// The newest `measured_at` wins; a table without one is older than any with one; ties: the larger name.
    /// Strings compare by Unicode scalar, as Python compares them.
    private typealias NamedTable = (key: String, value: LatencyTable)

    private static func isOlder(_ a: NamedTable, than b: NamedTable) -> Bool {
        switch (a.value.measuredAt, b.value.measuredAt) {
        case (nil, .some): return true
        case (.some, nil): return false
        case let (x?, y?) where x != y: return codePointLess(x, y)
        default: return codePointLess(a.key, b.key)
        }
    }

    static func codePointLess(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }

    private static func accuracyKey(
        _ catalog: SubnetCatalog, _ listed: [SubnetInfo], _ config: PolicyConfig
    ) throws -> String {
        if let key = config.accuracy.precision {
            let missing = listed.filter { $0.accuracy[key] == nil }.map(\.gates)
            guard missing.isEmpty else {
                throw SubnetTableError.missingAccuracy(
                    "policy.json asks for accuracy \"\(key)\" but sub-networks \(missing) have none")
            }
            return key
        }
        for key in [catalog.precision, "fp32"].compactMap({ $0 }) where !key.isEmpty {
            if listed.allSatisfy({ $0.accuracy[key] != nil }) { return key }
        }
        throw SubnetTableError.missingAccuracy(
            "the manifest's sub-networks do not all have a \"\(catalog.precision ?? "-")\" or \"fp32\" accuracy, which "
                + "the policy ranks them by; evaluate the checkpoint (`ondevice eval`) and re-export the bundle")
    }

    /// Sorted by (latency ascending, accuracy descending, gates ascending); keep each row more accurate than every
    /// one before it. Swift's sort is not documented as stable, hence the gates as the last key.
    private static func paretoFront(_ rows: [SubNetwork]) -> [SubNetwork] {
        let order = rows.sorted { a, b in
            if a.latencyMs != b.latencyMs { return a.latencyMs < b.latencyMs }
            if a.accuracy != b.accuracy { return a.accuracy > b.accuracy }
            return a.gates < b.gates
        }
        var best = -Double.infinity
        return order.filter { row in
            guard row.accuracy > best else { return false }
            best = row.accuracy
            return true
        }
    }
}

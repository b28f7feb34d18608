import Foundation

/// What the policy remembers between calls: the current choice (nil before the first decision), when it was made,
/// and since when an upgrade has been possible at every call (nil when it is not).
public struct PolicyMemory: Equatable, Sendable {
    public var gates: String?
    public var sinceS: Double
    public var upSinceS: Double?

    public init(gates: String? = nil, sinceS: Double = 0, upSinceS: Double? = nil) {
        self.gates = gates
        self.sinceS = sinceS
        self.upSinceS = upSinceS
    }
}

/// A choice and the numbers behind it (docs/policy.md, section 3); `memory` goes into the next `decide` call.
public struct Decision: Equatable, Sendable {
    /// Which cap bound the choice.
    public enum Limit: Sendable { case latency, energy }

    /// The sub-network to run; `target` is what the policy would pick without hysteresis.
    public var gates: String
    public var index: Int
    public var latencyMs: Double
    public var accuracy: Double
    public var target: String
    public var switched: Bool
    public var level: Thermal
    /// The battery fraction used (unknown and out-of-range readings resolved).
    public var battery: Double
    public var energy: Double
    public var latencyBudgetMs: Double
    public var latencyCapMs: Double
    public var energyCapMs: Double
    public var capMs: Double
    public var floor: Double
    /// The thermal level whose measured latency table the choice was ranked with (`.none`: the cool table).
    public var tableLevel: Thermal
    public var memory: PolicyMemory

    public var held: Bool { gates != target }
    public var belowFloor: Bool { accuracy < floor }
    public var overBudget: Bool { latencyMs > capMs }
    public var limit: Limit { latencyCapMs <= energyCapMs ? .latency : .energy }
}

/// The sub-network policy for one bundle on one device; `decide` is pure.
///
/// A line-for-line port of `ondevice.policy.engine.policy` (spec: docs/policy.md), reading every number from
/// `policy.json`. Only `Double` arithmetic in the order the spec writes it (Swift does not fuse multiply-adds unless
/// asked), so every number equals Python's bit for bit; `tests/policy_vectors.json` checks that.
public struct Policy: Sendable {
    /// One front as the decision reads it, cheapest first, with the throttling its table does not already hold.
    private struct Front: Sendable {
        /// The level whose measured table it comes from (`.none`: the cool table).
        var tableLevel: Thermal
        var entries: [SubNetwork]
        var latency: [Double]
        var accuracy: [Double]
        var indexOf: [String: Int]
        var slowdown: Double

        init(tableLevel: Thermal, entries: [SubNetwork], slowdown: Double) {
            self.tableLevel = tableLevel
            self.entries = entries
            latency = entries.map(\.latencyMs)
            accuracy = entries.map(\.accuracy)
            indexOf = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.gates, $0) })
            self.slowdown = slowdown
        }
    }

    public let table: SubnetTable
    public let config: PolicyConfig
    /// By level 0...6: the front of the hottest table measured at or below it.
    private let fronts: [Front]
    private let accuracyOf: [String: Double]
    private let upScale: Double

    public init(table: SubnetTable, config: PolicyConfig) {
        precondition(!table.front.isEmpty, "the policy needs at least one sub-network; re-run `ondevice export`")
        self.table = table
        self.config = config
        let slowdown = config.thermal.slowdown
        let measured = [(Thermal.none, table.front)] + table.thermal.map { ($0.level, $0.front) }
        fronts = Thermal.allCases.map { level in
            let (m, front) = measured.last { $0.0 <= level }!  // ascending levels; the cool table is at 0
            let beyond = m == Thermal.none ? slowdown[level.rawValue] : slowdown[level.rawValue] / slowdown[m.rawValue]
            return Front(tableLevel: m, entries: front, slowdown: beyond)
        }
        accuracyOf = Dictionary(table.candidates.map { ($0.gates, $0.accuracy) }, uniquingKeysWith: { a, _ in a })
        upScale = 1.0 - config.hysteresis.upgradeMargin
    }

    /// The policy for `device` from a bundle's `policy.json` and its manifest's sub-networks.
    public init(config: PolicyConfig, catalog: SubnetCatalog, device: String?) throws {
        try self.init(table: SubnetTable(catalog: catalog, config: config, device: device), config: config)
    }

    /// Gates of the cool table's front, cheapest first.
    public var front: [String] { table.front.map(\.gates) }

    /// Gates of the front the policy uses at thermal `level`, cheapest first.
    public func front(at level: Thermal) -> [String] { fronts[level.rawValue].entries.map(\.gates) }

    /// The level whose measured table the policy ranks with at `level` (`.none`: the cool table).
    public func tableLevel(at level: Thermal) -> Thermal { fronts[level.rawValue].tableLevel }

    /// max(status, headroom forecast); unknown both ways: `thermal.unknown_level`.
    public func thermalLevel(_ thermal: Thermal?, headroom: Double?) -> Thermal {
        var level = thermal?.rawValue ?? -1
        if let headroom, !headroom.isNaN {
            var forecast = 0
            for threshold in config.thermal.headroomThresholds {
                guard headroom >= threshold else { break }
                forecast += 1
            }
            if forecast > level { level = forecast }
        }
        return level < 0 ? config.thermal.unknownLevel : Thermal(rawValue: level)!
    }

    /// The choice for `state` at `now` (a monotonic clock in seconds, e.g. `ProcessInfo.systemUptime`).
    public func decide(_ state: DeviceState, now: Double, memory: PolicyMemory = PolicyMemory()) -> Decision {
        precondition(now.isFinite, "now must be a finite time in seconds, got \(now)")
        let th = config.thermal
        let bat = config.battery
        let level = thermalLevel(state.thermal, headroom: state.headroom)

        let battery: Double
        if let reported = state.battery, reported >= 0 {  // nil, NaN or negative: unknown
            battery = reported > 1 ? 1 : reported
        } else {
            battery = bat.unknownFraction
        }
        let batteryEnergy: Double
        if state.charging == true && bat.chargingIgnoresBattery {
            batteryEnergy = 1
        } else {
            batteryEnergy = bat.tiers.first(where: { battery < $0.below })?.energy ?? 1
        }
        var budget = config.latency.defaultBudgetMs
        if let given = state.latencyBudgetMs, given > 0 { budget = given }  // nil, NaN, 0 or negative: the default
        var floor = config.accuracy.defaultFloor
        if let given = state.accuracyFloor, !given.isNaN { floor = given }

        let front = fronts[level.rawValue]
        let accuracy = front.accuracy
        let powerSave = state.powerSave == true ? bat.powerSaveEnergy : 1.0
        let energy = th.energy[level.rawValue] * batteryEnergy * powerSave
        let latencyCap = budget / front.slowdown
        let energyCap = energy * front.latency[front.latency.count - 1]
        let cap = latencyCap <= energyCap ? latencyCap : energyCap

        let fits = countFitting(front, cap)
        let target = fits > 0 && accuracy[fits - 1] >= floor ? settle(front, fits - 1, floor: floor) : 0

        var current: Int?
        if let previous = memory.gates {
            if let index = front.indexOf[previous] {
                current = index
            } else if let held = accuracyOf[previous] {  // ranked behind one at least as accurate and no slower
                var i = 0
                while accuracy[i] < held { i += 1 }
                current = i
            }
        }
        var choice = target
        var since = now
        var upSince: Double?
        if let current {
            since = now < memory.sinceS ? now : memory.sinceS  // a clock that went back restarts the dwell
            choice = current
            if target < current {
                if now - since >= config.hysteresis.minDwellDownS { choice = target }
            } else if target > current {
                var upCap = latencyCap * upScale
                if energyCap < upCap { upCap = energyCap }
                let upFits = countFitting(front, upCap)
                let up = upFits > 0 && accuracy[upFits - 1] >= floor ? settle(front, upFits - 1, floor: floor) : 0
                if up > current {
                    var start = now
                    if let previous = memory.upSinceS, !(previous > now) { start = previous }
                    upSince = start
                    if now - start >= config.hysteresis.minDwellUpS { choice = up }
                }
            }
        }
        let chosen = front.entries[choice]
        let switched = current != nil && chosen.gates != memory.gates
        if switched {
            since = now
            upSince = nil
        }
        return Decision(
            gates: chosen.gates, index: choice, latencyMs: chosen.latencyMs, accuracy: chosen.accuracy,
            target: front.entries[target].gates, switched: switched, level: level, battery: battery, energy: energy,
            latencyBudgetMs: budget, latencyCapMs: latencyCap, energyCapMs: energyCap, capMs: cap, floor: floor,
            tableLevel: front.tableLevel, memory: PolicyMemory(gates: chosen.gates, sinceS: since, upSinceS: upSince)
        )
    }

    /// The cheapest front index up to `best` within the slack of `best`'s accuracy and meeting `floor`.
    private func settle(_ front: Front, _ best: Int, floor: Double) -> Int {
        var need = front.accuracy[best] - config.accuracy.slack
        if need < floor { need = floor }
        var i = 0
        while front.accuracy[i] < need { i += 1 }
        return i
    }

    /// How many front entries have latency <= `cap`: a prefix, since the front is sorted by latency.
    private func countFitting(_ front: Front, _ cap: Double) -> Int {
        var k = 0
        while k < front.latency.count && front.latency[k] <= cap { k += 1 }
        return k
    }
}

/// A policy with its memory, for callers that decide in sequence.
public struct PolicySession: Sendable {
    public let policy: Policy
    public private(set) var memory: PolicyMemory

    public init(policy: Policy, memory: PolicyMemory = PolicyMemory()) {
        self.policy = policy
        self.memory = memory
    }

    public mutating func decide(_ state: DeviceState, now: Double) -> Decision {
        let decision = policy.decide(state, now: now, memory: memory)
        memory = decision.memory
        return decision
    }
}

import Foundation

/// Which latency of a table entry the policy plans with (`latency.statistic`).
public enum LatencyStatistic: String, Codable, Sendable {
    case median = "median_ms"
    case p90 = "p90_ms"
    case min = "min_ms"
}

/// A `policy.json` the app cannot use; the description names the file, the key and the rule.
public enum PolicyConfigError: Error, CustomStringConvertible {
    case version(found: Int?)
    case unknownKey(String, known: [String])
    case missingKey(String)
    case invalid(key: String, rule: String)
    case malformed(String)

    public var description: String {
        switch self {
        case .version(let found):
            return "policy.json has policy_version \(found.map(String.init) ?? "none"); this app reads version "
                + "\(PolicyConfig.version). Write one with `ondevice policy init BUNDLE`"
        case .unknownKey(let key, let known):
            return "policy.json: unknown key \(key); known keys: \(known.joined(separator: ", "))"
        case .missingKey(let key):
            return "policy.json: missing key \(key); every key is required (`ondevice policy init BUNDLE` writes all)"
        case .invalid(let key, let rule):
            return "policy.json: \(key) \(rule)"
        case .malformed(let detail):
            return "policy.json: \(detail)"
        }
    }
}

/// Everything `policy.json` holds. There are no defaults here: the numbers come from the file that
/// `ondevice policy init` (or the exporter) wrote, so the app never re-types a threshold.
public struct PolicyConfig: Equatable, Sendable {
    public static let version = 1

    public struct Latency: Equatable, Sendable {
        public var statistic: LatencyStatistic
        public var defaultBudgetMs: Double
        public var fallbackMsPerGflop: Double
    }

    public struct Accuracy: Equatable, Sendable {
        /// nil: the bundle's precision, else fp32.
        public var precision: String?
        public var defaultFloor: Double
        /// The cheapest sub-network within `slack` (top-1) of the most accurate one the caps allow is chosen.
        public var slack: Double
    }

    /// Per level NONE...SHUTDOWN: expected `slowdown` and allowed `energy` (docs/policy.md, section 5).
    public struct ThermalParams: Equatable, Sendable {
        public var slowdown: [Double]
        public var energy: [Double]
        public var headroomThresholds: [Double]
        public var unknownLevel: Thermal
        public var iosLevels: [Thermal]
    }

    /// A battery below `below` (fraction, strict <) allows `energy` of the full energy per inference.
    public struct BatteryTier: Equatable, Sendable {
        public var below: Double
        public var energy: Double
    }

    public struct Battery: Equatable, Sendable {
        public var tiers: [BatteryTier]
        public var unknownFraction: Double
        public var powerSaveEnergy: Double
        public var chargingIgnoresBattery: Bool
    }

    public struct Hysteresis: Equatable, Sendable {
        public var upgradeMargin: Double
        public var minDwellUpS: Double
        public var minDwellDownS: Double
    }

    public var latency: Latency
    public var accuracy: Accuracy
    public var thermal: ThermalParams
    public var battery: Battery
    public var hysteresis: Hysteresis

    /// Reads `policy.json` as strictly as the Python reader: another `policy_version`, a missing or an unknown key
    /// is an error (a typo must not fall back to a default), and so is a value the decision cannot use. The
    /// monotonicity rules of docs/policy.md, section 5, are checked by Python when it writes the file.
    public static func decode(_ data: Data) throws -> PolicyConfig {
        do {
            return try JSONDecoder().decode(PolicyConfig.self, from: data)
        } catch let error as PolicyConfigError {
            throw error
        } catch DecodingError.typeMismatch(_, let context) {
            throw PolicyConfigError.malformed("\(context.codingPath.dotted): \(context.debugDescription)")
        } catch DecodingError.valueNotFound(_, let context) {
            throw PolicyConfigError.malformed("\(context.codingPath.dotted): \(context.debugDescription)")
        } catch DecodingError.dataCorrupted(let context) {
            throw PolicyConfigError.malformed("not valid JSON: \(context.debugDescription)")
        }
    }

    public static func load(contentsOf url: URL) throws -> PolicyConfig {
        try decode(Data(contentsOf: url))
    }
}

extension PolicyConfig: Decodable {
    private enum Keys: String, CodingKey, CaseIterable {
        case policyVersion = "policy_version", ondeviceVersion = "ondevice_version"
        case latency, accuracy, thermal, battery, hysteresis
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let found = try? c.decode(Int.self, forKey: .policyVersion)
        guard found == Self.version else { throw PolicyConfigError.version(found: found) }
        try decoder.requireExactKeys(Keys.self, optional: [Keys.ondeviceVersion.rawValue])
        latency = try c.decode(Latency.self, forKey: .latency)
        accuracy = try c.decode(Accuracy.self, forKey: .accuracy)
        thermal = try c.decode(ThermalParams.self, forKey: .thermal)
        battery = try c.decode(Battery.self, forKey: .battery)
        hysteresis = try c.decode(Hysteresis.self, forKey: .hysteresis)
    }
}

extension PolicyConfig.Latency: Decodable {
    private enum Keys: String, CodingKey, CaseIterable {
        case statistic, defaultBudgetMs = "default_budget_ms", fallbackMsPerGflop = "fallback_ms_per_gflop"
    }

    public init(from decoder: Decoder) throws {
        try decoder.requireExactKeys(Keys.self)
        let c = try decoder.container(keyedBy: Keys.self)
        let key = try c.decode(String.self, forKey: .statistic)
        guard let statistic = LatencyStatistic(rawValue: key) else {
            throw PolicyConfigError.invalid(
                key: "latency.statistic", rule: "= \"\(key)\": must be median_ms, p90_ms or min_ms")
        }
        self.statistic = statistic
        defaultBudgetMs = try c.number(.defaultBudgetMs, where: { $0 > 0 }, rule: "must be > 0")
        fallbackMsPerGflop = try c.number(.fallbackMsPerGflop, where: { $0 > 0 }, rule: "must be > 0")
    }
}

extension PolicyConfig.Accuracy: Decodable {
    private enum Keys: String, CodingKey, CaseIterable {
        case precision, defaultFloor = "default_floor", slack
    }

    public init(from decoder: Decoder) throws {
        try decoder.requireExactKeys(Keys.self)
        let c = try decoder.container(keyedBy: Keys.self)
        precision = try c.decodeIfPresent(String.self, forKey: .precision)
        defaultFloor = try c.number(.defaultFloor, where: { (0...1).contains($0) }, rule: "must be in [0, 1]")
        slack = try c.number(.slack, where: { $0 >= 0 && $0 < 1 }, rule: "must be in [0, 1)")
    }
}

extension PolicyConfig.ThermalParams: Decodable {
    private enum Keys: String, CodingKey, CaseIterable {
        case slowdown, energy, headroomThresholds = "headroom_thresholds", unknownLevel = "unknown_level"
        case iosLevels = "ios_levels"
    }

    public init(from decoder: Decoder) throws {
        try decoder.requireExactKeys(Keys.self)
        let c = try decoder.container(keyedBy: Keys.self)
        let levels = Thermal.allCases.count
        slowdown = try c.numbers(.slowdown, count: levels, where: { $0 >= 1 }, rule: "must be >= 1")
        energy = try c.numbers(.energy, count: levels, where: { (0...1).contains($0) }, rule: "must be in [0, 1]")
        headroomThresholds = try c.numbers(.headroomThresholds, where: { $0.isFinite }, rule: "must be finite")
        guard headroomThresholds.count < levels else {
            throw PolicyConfigError.invalid(
                key: "thermal.headroom_thresholds", rule: "has at most \(levels - 1) numbers")
        }
        unknownLevel = try c.level(.unknownLevel)
        iosLevels = try c.decode([Int].self, forKey: .iosLevels).map { code in
            guard let level = Thermal(rawValue: code) else {
                throw PolicyConfigError.invalid(key: "thermal.ios_levels", rule: "= \(code): levels are 0...6")
            }
            return level
        }
        guard iosLevels.count == 4 else {
            throw PolicyConfigError.invalid(
                key: "thermal.ios_levels", rule: "must list 4 levels (nominal, fair, serious, critical)")
        }
    }
}

extension PolicyConfig.BatteryTier: Decodable {
    private enum Keys: String, CodingKey, CaseIterable {
        case below, energy
    }

    public init(from decoder: Decoder) throws {
        try decoder.requireExactKeys(Keys.self)
        let c = try decoder.container(keyedBy: Keys.self)
        below = try c.number(.below, where: { $0 > 0 && $0 <= 1 }, rule: "must be in (0, 1]")
        energy = try c.number(.energy, where: { (0...1).contains($0) }, rule: "must be in [0, 1]")
    }
}

extension PolicyConfig.Battery: Decodable {
    private enum Keys: String, CodingKey, CaseIterable {
        case tiers, unknownFraction = "unknown_fraction", powerSaveEnergy = "power_save_energy"
        case chargingIgnoresBattery = "charging_ignores_battery"
    }

    public init(from decoder: Decoder) throws {
        try decoder.requireExactKeys(Keys.self)
        let c = try decoder.container(keyedBy: Keys.self)
        tiers = try c.decode([PolicyConfig.BatteryTier].self, forKey: .tiers)
        unknownFraction = try c.number(.unknownFraction, where: { (0...1).contains($0) }, rule: "must be in [0, 1]")
        powerSaveEnergy = try c.number(.powerSaveEnergy, where: { (0...1).contains($0) }, rule: "must be in [0, 1]")
        chargingIgnoresBattery = try c.decode(Bool.self, forKey: .chargingIgnoresBattery)
    }
}

extension PolicyConfig.Hysteresis: Decodable {
    private enum Keys: String, CodingKey, CaseIterable {
        case upgradeMargin = "upgrade_margin", minDwellUpS = "min_dwell_up_s", minDwellDownS = "min_dwell_down_s"
    }

    public init(from decoder: Decoder) throws {
        try decoder.requireExactKeys(Keys.self)
        let c = try decoder.container(keyedBy: Keys.self)
        upgradeMargin = try c.number(.upgradeMargin, where: { $0 >= 0 && $0 < 1 }, rule: "must be in [0, 1)")
        minDwellUpS = try c.number(.minDwellUpS, where: { $0 >= 0 }, rule: "must be >= 0")
        minDwellDownS = try c.number(.minDwellDownS, where: { $0 >= 0 }, rule: "must be >= 0")
    }
}

// MARK: - Strict decoding helpers

/// Any key of a JSON object, to see the ones a type does not declare.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Array where Element == CodingKey {
    /// "battery.tiers[0].below": a coding path as people read it.
    var dotted: String {
        reduce(into: "") { path, key in
            if let index = key.intValue {
                path += "[\(index)]"
            } else if key.stringValue.hasPrefix("Index "), let index = Int(key.stringValue.dropFirst(6)) {
                path += "[\(index)]"
            } else {
                path += path.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
    }
}

extension Decoder {
    /// Throws when this object has a key `Keys` does not list, or lacks one that is not `optional`.
    func requireExactKeys<Keys: CodingKey & CaseIterable>(_: Keys.Type, optional: Set<String> = []) throws {
        let present = Set(try container(keyedBy: AnyKey.self).allKeys.map(\.stringValue))
        let known = Set(Keys.allCases.map(\.stringValue))
        let prefix = codingPath.dotted.isEmpty ? "" : codingPath.dotted + "."
        if let unknown = present.subtracting(known).sorted().first {
            throw PolicyConfigError.unknownKey(prefix + unknown, known: known.sorted().map { prefix + $0 })
        }
        if let missing = known.subtracting(present).subtracting(optional).sorted().first {
            throw PolicyConfigError.missingKey(prefix + missing)
        }
    }
}

extension KeyedDecodingContainer {
    func number(_ key: Key, where valid: (Double) -> Bool, rule: String) throws -> Double {
        let value = try decode(Double.self, forKey: key)
        guard value.isFinite, valid(value) else {
            throw PolicyConfigError.invalid(key: (codingPath + [key]).dotted, rule: "= \(value): \(rule)")
        }
        return value
    }

    func numbers(_ key: Key, count: Int? = nil, where valid: (Double) -> Bool, rule: String) throws -> [Double] {
        let values = try decode([Double].self, forKey: key)
        let name = (codingPath + [key]).dotted
        if let count, values.count != count {
            throw PolicyConfigError.invalid(
                key: name, rule: "has \(values.count) numbers: must list \(count), one per level")
        }
        for (i, value) in values.enumerated() where !(value.isFinite && valid(value)) {
            throw PolicyConfigError.invalid(key: "\(name)[\(i)]", rule: "= \(value): \(rule)")
        }
        return values
    }

    func level(_ key: Key) throws -> Thermal {
        let code = try decode(Int.self, forKey: key)
        guard let level = Thermal(rawValue: code) else {
            throw PolicyConfigError.invalid(key: (codingPath + [key]).dotted, rule: "= \(code): must be a level 0...6")
        }
        return level
    }
}

import Foundation

/// Android's `PowerManager.THERMAL_STATUS_*` levels: the policy's common thermal scale (docs/policy.md, section 1).
/// iOS's `ProcessInfo.ThermalState` is mapped onto it by `policy.json` (`thermal.ios_levels`).
public enum Thermal: Int, CaseIterable, Comparable, Sendable {
    case none, light, moderate, severe, critical, emergency, shutdown

    /// A status code as an OS reports it: negative is unknown (nil), above 6 counts as `.shutdown`.
    public init?(status: Int) {
        guard status >= 0 else { return nil }
        self = Thermal(rawValue: min(status, Thermal.shutdown.rawValue)) ?? .shutdown
    }

    /// A thermal table's key in a manifest or latency file: Android's status name in lower case ("severe"); nil
    /// for `.none` (the cool table has no key).
    public init?(tableKey: String) {
        guard tableKey != Thermal.none.name, let level = Thermal.allCases.first(where: { $0.name == tableKey }) else {
            return nil
        }
        self = level
    }

    /// Android's status name in lower case: "none", "light", "moderate", "severe", "critical", "emergency",
    /// "shutdown" (a thermal table's key above `.none`).
    public var name: String {
        switch self {
        case .none: return "none"
        case .light: return "light"
        case .moderate: return "moderate"
        case .severe: return "severe"
        case .critical: return "critical"
        case .emergency: return "emergency"
        case .shutdown: return "shutdown"
        }
    }

    /// `ProcessInfo.ThermalState.rawValue` (0 nominal ... 3 critical) on the common scale through `levels`
    /// (`PolicyConfig.thermal.iosLevels`); a state above 3 counts as critical, a negative one (or no levels) is
    /// unknown.
    public init?(iosThermalState state: Int, levels: [Thermal]) {
        guard state >= 0, !levels.isEmpty else { return nil }
        self = levels[min(state, levels.count - 1)]
    }

    public static func < (lhs: Thermal, rhs: Thermal) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One reading of the phone on the common scale; `nil` means "the phone did not say".
///
/// Unknown readings are inputs, not errors: the policy gives each one a meaning from `policy.json`. Out-of-range
/// values are accepted here and clamped by the policy.
public struct DeviceState: Equatable, Sendable {
    /// Charge as a fraction 0...1.
    public var battery: Double?
    /// On external power (charging, or full while plugged in).
    public var charging: Bool?
    /// Low Power Mode.
    public var powerSave: Bool?
    public var thermal: Thermal?
    /// Android's thermal headroom; iOS has none, so the iOS app leaves it nil.
    public var headroom: Double?
    /// The app's latency budget per inference; nil means `latency.default_budget_ms`.
    public var latencyBudgetMs: Double?
    /// The lowest acceptable top-1 (0...1); nil means `accuracy.default_floor`.
    public var accuracyFloor: Double?

    public init(
        battery: Double? = nil,
        charging: Bool? = nil,
        powerSave: Bool? = nil,
        thermal: Thermal? = nil,
        headroom: Double? = nil,
        latencyBudgetMs: Double? = nil,
        accuracyFloor: Double? = nil
    ) {
        self.battery = battery
        self.charging = charging
        self.powerSave = powerSave
        self.thermal = thermal
        self.headroom = headroom
        self.latencyBudgetMs = latencyBudgetMs
        self.accuracyFloor = accuracyFloor
    }

    /// From iOS readings as the platform encodes them: `UIDevice.batteryLevel` (0...1, -1 while monitoring is off),
    /// `UIDevice.BatteryState.rawValue` (0 unknown, 1 unplugged, 2 charging, 3 full),
    /// `ProcessInfo.isLowPowerModeEnabled` and `ProcessInfo.ThermalState.rawValue` (0 nominal ... 3 critical),
    /// mapped through `levels` (`PolicyConfig.thermal.iosLevels`). A thermal state above 3 counts as critical.
    public init(
        iosBatteryLevel batteryLevel: Double?,
        batteryState: Int?,
        lowPowerMode: Bool?,
        thermalState: Int?,
        levels: [Thermal],
        latencyBudgetMs: Double? = nil,
        accuracyFloor: Double? = nil
    ) {
        self.init(
            battery: batteryLevel.flatMap { $0 >= 0 ? $0 : nil },  // `>= 0` is false for NaN as well
            charging: batteryState.flatMap(Self.iosCharging),
            powerSave: lowPowerMode,
            thermal: thermalState.flatMap { Thermal(iosThermalState: $0, levels: levels) },
            headroom: nil,
            latencyBudgetMs: latencyBudgetMs,
            accuracyFloor: accuracyFloor
        )
    }

    private static func iosCharging(_ state: Int) -> Bool? {
        switch state {
        case 1: return false
        case 2, 3: return true  // full is only reported while plugged in
        default: return nil
        }
    }
}

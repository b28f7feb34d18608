import Combine
import Foundation
import OndevicePolicy
import UIKit

/// Reads what the policy needs from iOS: `ProcessInfo.thermalState`, Low Power Mode, and `UIDevice` battery level
/// and state. iOS has no thermal headroom; a battery level of -1 (monitoring off) becomes unknown.
@MainActor
final class DeviceStateReader {
    private let levels: [Thermal]

    /// `levels`: `policy.json`'s `thermal.ios_levels` (nominal, fair, serious, critical on the common scale).
    init(levels: [Thermal]) {
        self.levels = levels
        UIDevice.current.isBatteryMonitoringEnabled = true
    }

    /// One reading, normalized by `DeviceState(iosBatteryLevel:...)`, which the XCTest vectors check.
    func read(latencyBudgetMs: Double? = nil, accuracyFloor: Double? = nil) -> DeviceState {
        let device = UIDevice.current
        let process = ProcessInfo.processInfo
        return DeviceState(
            iosBatteryLevel: Double(device.batteryLevel),
            batteryState: device.batteryState.rawValue,
            lowPowerMode: process.isLowPowerModeEnabled,
            thermalState: process.thermalState.rawValue,
            levels: levels,
            latencyBudgetMs: latencyBudgetMs,
            accuracyFloor: accuracyFloor
        )
    }

    /// Fires on the main queue when a reading may have changed: thermal state, Low Power Mode, battery level or state.
    var changes: AnyPublisher<Void, Never> {
        let center = NotificationCenter.default
        return Publishers.MergeMany(
            center.publisher(for: ProcessInfo.thermalStateDidChangeNotification),
            center.publisher(for: .NSProcessInfoPowerStateDidChange),
            center.publisher(for: UIDevice.batteryLevelDidChangeNotification),
            center.publisher(for: UIDevice.batteryStateDidChangeNotification)
        )
        .map { _ in Void() }
        .receive(on: DispatchQueue.main)
        .eraseToAnyPublisher()
    }

    /// This phone's name as a latency-table key ("Apple iPhone16,1"): the benchmark writes it, the policy reads it.
    nonisolated static var deviceName: String {
        var info = utsname()
        uname(&info)
        let machine = withUnsafeBytes(of: &info.machine) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return "Apple \(machine)"
    }
}

import OndeviceModel
import OndevicePolicy
import PhotosUI
import SwiftUI

/// The prediction, the sub-network and its latency, the device state and why the policy chose that sub-network.
struct ContentView: View {
    @StateObject private var model = DemoModel()
    @State private var pick: PhotosPickerItem?

    var body: some View {
        NavigationStack {
            List {
                Section {
                    Text(model.status).font(.footnote)
                    PhotosPicker("Pick image", selection: $pick, matching: .images)
                    NavigationLink("Benchmark") { BenchmarkView(bundle: model.bundle) }
                }
                Section("Prediction") {
                    if let result = model.result {
                        Text("\(result.label)  \(result.probability * 100, specifier: "%.1f")%").font(.title2)
                        Text("sub-network \(result.gates), \(result.latencyMs, specifier: "%.1f") ms")
                    } else {
                        Text(model.hasImage ? "classifying ..." : "pick an image to classify")
                    }
                }
                if let d = model.decision {
                    Section("Policy") {
                        Text("\(d.gates) (target \(d.target))").font(.headline)
                        Text("level \(String(describing: d.level)), battery \(d.battery * 100, specifier: "%.0f")%")
                        Text("latency table \(d.tableLevel == Thermal.none ? "cool" : "measured \(d.tableLevel.name)")")
                        Text("energy \(d.energy, specifier: "%.2f"), cap \(d.capMs, specifier: "%.1f") ms")
                        Text(d.limit == .latency ? "the latency budget limits" : "energy (heat, battery) limits")
                        if d.held { Text("held by hysteresis") }
                        if d.overBudget { Text("over budget: nothing fits, so the cheapest") }
                        if d.belowFloor { Text("below the accuracy floor") }
                    }
                }
                if let s = model.state {
                    Section("Device: \(DeviceStateReader.deviceName)") {
                        Text("thermal \(s.thermal.map { String(describing: $0) } ?? "unknown")")
                        Text("battery \(s.battery.map { String(format: "%.0f%%", $0 * 100) } ?? "unknown")")
                        Text("charging \(s.charging.map { String($0) } ?? "unknown")")
                        Text("low power mode \(s.powerSave.map { String($0) } ?? "unknown")")
                    }
                }
            }
            .navigationTitle("ondevice")
        }
        .task { await model.start() }
        .onChange(of: pick) { _, item in
            Task {
                guard let data = try? await item?.loadTransferable(type: Data.self) else { return }
                await model.pick(data)
            }
        }
    }
}

import Foundation
import OndeviceModel
import OndevicePolicy
import SwiftUI

/// Times every sub-network the bundle's program holds and writes Documents/latency.json, the file
/// `ondevice profile BUNDLE --merge latency.json` reads. Each round is filed under the thermal state read before it:
/// the coolest state's rounds are the latency table, each hotter state's (20 rounds or more) a thermal table. Start
/// with the phone idle and cool; the sustained mode keeps timing rounds for some minutes so that it heats up.
struct BenchmarkView: View {
    let bundle: ModelBundle?
    @State private var runs = 50
    @State private var warmup = 5
    @State private var sustainedMinutes = 0
    @State private var report = ""
    @State private var running = false

    var body: some View {
        Form {
            Stepper("runs \(runs)", value: $runs, in: 1...1000, step: 10)
            Stepper("warm-up \(warmup)", value: $warmup, in: 0...50)
            Stepper(
                sustainedMinutes == 0 ? "sustained: off" : "sustained: at least \(sustainedMinutes) min",
                value: $sustainedMinutes, in: 0...60, step: 5)
            Button(running ? "Running ..." : "Run") { Task { await run() } }
                .disabled(running || bundle == nil)
            Text(report).font(.system(.footnote, design: .monospaced))
        }
        .navigationTitle("Benchmark")
    }

    private func run() async {
        guard let bundle else { return }
        running = true
        defer { running = false }
        let (runs, warmup, minutes) = (runs, warmup, sustainedMinutes)
        do {
            let classifier = try await DemoModel.makeClassifier(bundle)
            report = try await Task.detached(priority: .userInitiated) {
                try Self.benchmark(
                    bundle: bundle, classifier: classifier, runs: runs, warmup: warmup, sustainedMinutes: minutes)
            }.value
        } catch {
            report = "benchmark failed: \(error)"
        }
    }

    /// Every sub-network the classifier's program holds, on one fixed random image, interleaved: `runs` rounds, or
    /// with `sustainedMinutes` > 0 as many as fit in that time (at least `runs`); writes the latency file. Each sample
    /// times the whole `logits` call, as the Android app does; `ProcessInfo.thermalState` is read before each round.
    private static func benchmark(
        bundle: ModelBundle, classifier: ImageClassifier, runs: Int, warmup: Int, sustainedMinutes: Int
    ) throws -> String {
        let gates = bundle.manifest.gates(in: classifier.program)
        var generator = SystemRandomNumberGenerator()
        let count = bundle.manifest.input.shape.reduce(1, *)
        let image = (0..<count).map { _ in Float.random(in: -1...1, using: &generator) }
        let levels = bundle.config.thermal.iosLevels
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(sustainedMinutes) * 60_000_000_000
        let rounds = try measureInterleavedRounds(
            gates: gates, warmup: warmup,
            // thermalState is 0...3 and policy.json lists 4 levels: never unknown
            thermal: { Thermal(iosThermalState: ProcessInfo.processInfo.thermalState.rawValue, levels: levels)! },
            while: { done in done < runs || DispatchTime.now().uptimeNanoseconds < deadline }
        ) { g in
            _ = try classifier.logits(image: image, gates: g)
        }
        let measured = ThermalLatency(rounds: rounds)
        let version = Bundle.main.object(forInfoDictionaryKey: "CFBundleShortVersionString") as? String ?? "?"
        let latency = LatencyReport(
            device: DeviceStateReader.deviceName, model: bundle.manifest.model.name, backend: classifier.backend,
            warmup: warmup, app: "ondevice demo \(version) (iOS)", latency: measured)
        let documents = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
        let url = documents.appendingPathComponent(LatencyReport.fileName)
        try latency.jsonData().write(to: url, options: .atomic)
        var lines = ["\(latency.device), \(rounds.count) rounds, \(latency.backend)"]
        let hot = measured.hot.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        for (level, group) in [(measured.coolest, measured.cool)] + hot {
            lines += ["", "\(level.name): \(group.runs) rounds", "gates   median ms    p90 ms    min ms"]
            lines += gates.compactMap { g in
                group.subnets[g].map { String(format: "%@  %9.3f %9.3f %9.3f", g, $0.medianMs, $0.p90Ms, $0.minMs) }
            }
        }
        for (level, count) in measured.dropped.sorted(by: { $0.key < $1.key }) {
            lines.append("\(level.name): \(count) rounds, fewer than \(ThermalLatency.minimumRuns): left out")
        }
        return (lines + ["", "wrote \(url.path)", "merge it: ondevice profile BUNDLE --merge latency.json"])
            .joined(separator: "\n")
    }
}

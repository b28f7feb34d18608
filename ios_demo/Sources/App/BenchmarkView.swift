import OndeviceModel
import SwiftUI

/// Times every sub-network the bundle's program holds and writes Documents/latency.json, the file
/// `ondevice profile BUNDLE --merge latency.json` reads. Keep the phone idle and cool while it runs.
struct BenchmarkView: View {
    let bundle: ModelBundle?
    @State private var runs = 50
    @State private var warmup = 5
    @State private var report = ""
    @State private var running = false

    var body: some View {
        Form {
            Stepper("runs \(runs)", value: $runs, in: 1...1000, step: 10)
            Stepper("warm-up \(warmup)", value: $warmup, in: 0...50)
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
        let (runs, warmup) = (runs, warmup)
        do {
            let classifier = try await DemoModel.makeClassifier(bundle)
            report = try await Task.detached(priority: .userInitiated) {
                try Self.benchmark(bundle: bundle, classifier: classifier, runs: runs, warmup: warmup)
            }.value
        } catch {
            report = "benchmark failed: \(error)"
        }
    }

    /// Every sub-network the classifier's program holds, on one fixed random image, interleaved; writes the latency
    /// file. Each sample times the whole `logits` call, as the Android app does.
    private static func benchmark(bundle: ModelBundle, classifier: ImageClassifier, runs: Int, warmup: Int) throws
        -> String
    {
        let gates = bundle.manifest.gates(in: classifier.program)
        var generator = SystemRandomNumberGenerator()
        let count = bundle.manifest.input.shape.reduce(1, *)
        let image = (0..<count).map { _ in Float.random(in: -1...1, using: &generator) }
        let stats = try measureInterleaved(gates: gates, runs: runs, warmup: warmup) { g in
            _ = try classifier.logits(image: image, gates: g)
        }
        let version = Bundle.main.object(forInfoDictionaryKey: "CFBundleShortVersionString") as? String ?? "?"
        let latency = LatencyReport(
            device: DeviceStateReader.deviceName, model: bundle.manifest.model.name, backend: classifier.backend,
            runs: runs, warmup: warmup, app: "ondevice demo \(version) (iOS)", subnets: stats)
        let documents = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
        let url = documents.appendingPathComponent(LatencyReport.fileName)
        try latency.jsonData().write(to: url, options: .atomic)
        let rows = gates.compactMap { g in
            stats[g].map { String(format: "%@  %9.3f %9.3f %9.3f", g, $0.medianMs, $0.p90Ms, $0.minMs) }
        }
        return (["\(latency.device), \(runs) runs, \(latency.backend)", "gates   median ms    p90 ms    min ms"]
            + rows + ["", "wrote \(url.path)", "merge it: ondevice profile BUNDLE --merge latency.json"])
            .joined(separator: "\n")
    }
}

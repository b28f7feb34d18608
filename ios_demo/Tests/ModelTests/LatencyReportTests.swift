import Foundation
import OndeviceModel
import OndevicePolicy
import XCTest

/// The benchmark's statistics and file format (what `ondevice profile BUNDLE --merge latency.json` reads), and the
/// preprocessing arithmetic. Runs with `swift test` on a Mac; no model file is needed.
final class LatencyReportTests: XCTestCase {
    func testStatisticsMatchOndeviceProfile() {
        let stats = LatencyStats(samplesMs: [4, 1, 3, 2])
        XCTAssertEqual(stats.medianMs, 2.5)
        XCTAssertEqual(stats.p90Ms, 3.7, accuracy: 1e-12)
        XCTAssertEqual(stats.minMs, 1)
    }

    func testInterleavedRoundsRotate() {
        var now: UInt64 = 0
        var order: [String] = []
        let cost: [String: UInt64] = ["FF": 3_000_000, "FT": 2_000_000, "TT": 1_000_000]
        let stats = measureInterleaved(gates: ["FF", "FT", "TT"], runs: 3, warmup: 1, clock: { now }) { g in
            order.append(g)
            now += cost[g]!
        }
        XCTAssertEqual(order, ["FF", "FT", "TT", "FF", "FT", "TT", "FT", "TT", "FF", "TT", "FF", "FT"])
        XCTAssertEqual(stats["FF"], LatencyStats(medianMs: 3, p90Ms: 3, minMs: 3))
    }

    func testFileHasTheMergeFormat() throws {
        let report = LatencyReport(
            device: "Apple iPhone16,1", model: "tiny", backend: "xnnpack", runs: 3, warmup: 1,
            app: "test", subnets: ["FF": LatencyStats(medianMs: 2.123456, p90Ms: 3, minMs: 1)])
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: report.jsonData()) as? [String: Any])
        XCTAssertEqual(json["format"] as? String, "ondevice-latency")
        XCTAssertEqual(json["version"] as? Int, 1)
        XCTAssertEqual(json["device"] as? String, "Apple iPhone16,1")
        XCTAssertNotNil(json["measured_at"] as? String)
        let row = try XCTUnwrap((json["subnets"] as? [String: Any])?["FF"] as? [String: Double])
        XCTAssertEqual(row, ["median_ms": 2.1235, "p90_ms": 3, "min_ms": 1])
    }

    /// Rounds at three levels, by hand: 4 cool rounds (FF 4, 1, 3, 2 ms), 20 at MODERATE (FF 1 ... 20 ms: median
    /// 10.5, p90 = 18 + (19 - 18) x 0.1 = 18.1, min 1), 19 at SEVERE (one short of a table: dropped).
    func testRoundsAreGroupedByTheThermalLevelReadBeforeEach() throws {
        var rounds = [4.0, 1, 3, 2].map { TimedRound(thermal: .none, samplesMs: ["FF": $0, "TT": 1]) }
        rounds += (1...20).map { TimedRound(thermal: .moderate, samplesMs: ["FF": Double($0), "TT": 2]) }
        rounds += (1...19).map { TimedRound(thermal: .severe, samplesMs: ["FF": Double($0), "TT": 3]) }
        rounds.shuffle()  // the order of the rounds does not matter, only the level each was timed at

        let latency = ThermalLatency(rounds: rounds)
        XCTAssertEqual(latency.coolest, Thermal.none)
        XCTAssertEqual(latency.cool.runs, 4)
        XCTAssertEqual(latency.cool.subnets["FF"]?.medianMs, 2.5)
        XCTAssertEqual(latency.cool.subnets["TT"], LatencyStats(medianMs: 1, p90Ms: 1, minMs: 1))
        XCTAssertEqual(Array(latency.hot.keys), [.moderate])
        XCTAssertEqual(latency.dropped, [.severe: 19])
        let moderate = try XCTUnwrap(latency.hot[.moderate])
        XCTAssertEqual(moderate.runs, 20)
        let ff = try XCTUnwrap(moderate.subnets["FF"])
        XCTAssertEqual(ff.medianMs, 10.5)
        XCTAssertEqual(ff.p90Ms, 18.1, accuracy: 1e-12)
        XCTAssertEqual(ff.minMs, 1)
        XCTAssertEqual(moderate.subnets["TT"], LatencyStats(medianMs: 2, p90Ms: 2, minMs: 2))

        let report = LatencyReport(
            device: "Apple iPhone16,1", model: "tiny", backend: "xnnpack", warmup: 5, app: "test", latency: latency)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: report.jsonData()) as? [String: Any])
        XCTAssertEqual(json["runs"] as? Int, 4)
        XCTAssertEqual((json["subnets"] as? [String: Any])?.keys.sorted(), ["FF", "TT"])
        let thermal = try XCTUnwrap(json["thermal"] as? [String: [String: Any]])
        XCTAssertEqual(Array(thermal.keys), ["moderate"])
        XCTAssertEqual(thermal["moderate"]?["runs"] as? Int, 20)
        XCTAssertEqual(Set(thermal["moderate"]!.keys), ["runs", "subnets"])  // the schema allows nothing else
        let rows = try XCTUnwrap(thermal["moderate"]?["subnets"] as? [String: [String: Double]])
        XCTAssertEqual(rows["FF"], ["median_ms": 10.5, "p90_ms": 18.1, "min_ms": 1])
        XCTAssertEqual(rows["TT"], ["median_ms": 2, "p90_ms": 2, "min_ms": 2])
    }

    /// A phone already warm at the start: its coolest level is the table, and only hotter levels become thermal
    /// tables; without any hotter level kept the file has no `thermal` at all.
    func testTheCoolestLevelSeenIsTheLatencyTable() throws {
        let light = (0..<3).map { _ in TimedRound(thermal: .light, samplesMs: ["FF": 5]) }
        let critical = (0..<20).map { _ in TimedRound(thermal: .critical, samplesMs: ["FF": 9]) }
        let warm = ThermalLatency(rounds: critical + light)
        XCTAssertEqual(warm.coolest, .light)
        XCTAssertEqual(warm.cool.subnets["FF"], LatencyStats(medianMs: 5, p90Ms: 5, minMs: 5))
        XCTAssertEqual(Array(warm.hot.keys), [.critical])
        let report = LatencyReport(device: "d", model: "m", backend: "b", warmup: 0, app: "a", latency: warm)
        XCTAssertEqual(report.runs, 3)
        XCTAssertEqual(report.thermal.map { Array($0.keys) }, ["critical"])

        let cool = ThermalLatency(rounds: light + critical.prefix(19))
        XCTAssertTrue(cool.hot.isEmpty)
        XCTAssertEqual(cool.dropped, [.critical: 19])
        let plain = LatencyReport(device: "d", model: "m", backend: "b", warmup: 0, app: "a", latency: cool)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: plain.jsonData()) as? [String: Any])
        XCTAssertNil(json["thermal"])
    }

    /// The thermal level is read once per timed round, just before it (never during warm-up), and the rounds go on
    /// while `more` says so.
    func testEachRoundRecordsTheThermalLevelReadBeforeIt() {
        var now: UInt64 = 0
        var order: [String] = []
        var readsAt: [Int] = []
        var levels: [Thermal] = [.none, .light, .severe, .severe]
        let rounds = measureInterleavedRounds(
            gates: ["FF", "FT", "TT"], warmup: 1, clock: { now },
            thermal: {
                readsAt.append(order.count)
                return levels.removeFirst()
            },
            while: { $0 < 3 }
        ) { g in
            order.append(g)
            now += 1_000_000
        }
        XCTAssertEqual(readsAt, [3, 6, 9])
        XCTAssertEqual(rounds.map(\.thermal), [.none, .light, .severe])
        XCTAssertEqual(order.suffix(3), ["TT", "FF", "FT"])  // rotated as measureInterleaved rotates
        XCTAssertEqual(rounds[2].samplesMs, ["FF": 1, "FT": 1, "TT": 1])
    }

    /// `ProcessInfo.thermalState` onto the policy's scale through `thermal.ios_levels` (default 0, 1, 3, 4).
    func testTheIOSThermalStateIsMappedThroughTheLevels() {
        let levels: [Thermal] = [.none, .light, .severe, .critical]
        let mapped: [Thermal?] = (0...4).map { Thermal(iosThermalState: $0, levels: levels) }
        XCTAssertEqual(mapped, [Thermal.none, .light, .severe, .critical, .critical])
        XCTAssertNil(Thermal(iosThermalState: -1, levels: levels))
        XCTAssertEqual(Thermal.allCases.map(\.name), [
            "none", "light", "moderate", "severe", "critical", "emergency", "shutdown",
        ])
        XCTAssertEqual(Thermal(tableKey: "severe"), .severe)
        XCTAssertNil(Thermal(tableKey: "none"))
    }

    /// The latency file of timed rounds. tests/test_swift.py sets `ONDEVICE_LATENCY_ROUNDS` (rounds with iOS thermal
    /// states, written by Python) and `ONDEVICE_LATENCY_OUT`, then validates the file against the schema, compares
    /// its statistics with `ondevice profile`'s and merges it into a bundle; without them, a small built-in run.
    func testWritesTheLatencyFileOfTimedRounds() throws {
        let env = ProcessInfo.processInfo.environment
        let input: RoundsFile
        if let path = env["ONDEVICE_LATENCY_ROUNDS"] {
            input = try JSONDecoder().decode(RoundsFile.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } else {
            let states = Array(repeating: 0, count: 3) + Array(repeating: 2, count: 20)
            input = RoundsFile(
                device: "Apple iPhone16,1", model: "tiny", backend: "xnnpack", warmup: 1, app: "test",
                iosLevels: [0, 1, 3, 4],
                rounds: states.enumerated().map { .init(thermalState: $1, samplesMs: ["FF": Double($0)]) })
        }
        let levels = input.iosLevels.map { Thermal(rawValue: $0)! }
        let rounds = input.rounds.map {
            TimedRound(thermal: Thermal(iosThermalState: $0.thermalState, levels: levels)!, samplesMs: $0.samplesMs)
        }
        let report = LatencyReport(
            device: input.device, model: input.model, backend: input.backend, warmup: input.warmup, app: input.app,
            latency: ThermalLatency(rounds: rounds))
        let out = env["ONDEVICE_LATENCY_OUT"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("ondevice-\(UUID().uuidString).json")
        try report.jsonData().write(to: out, options: .atomic)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        XCTAssertEqual(json["format"] as? String, "ondevice-latency")
        XCTAssertNotNil(json["subnets"] as? [String: Any])
        if env["ONDEVICE_LATENCY_OUT"] == nil {
            XCTAssertEqual(json["runs"] as? Int, 3)
            XCTAssertEqual((json["thermal"] as? [String: Any]).map { Array($0.keys) }, ["severe"])
            try FileManager.default.removeItem(at: out)
        }
    }

    func testNormalizationUsesTheManifestInFloat32() throws {
        let input = try JSONDecoder().decode(BundleManifest.Input.self, from: Data("""
            {"name": "image", "shape": [1, 3, 1, 2], "mean": [0.5, 0.25, 0.125], "std": [0.5, 0.5, 2.0]}
            """.utf8))
        let out = try ImageNormalizer(input: input).normalize(rgba: [255, 0, 128, 255, 0, 255, 0, 0], width: 2, height: 1)
        let expected: [Float] = [
            (1 - 0.5) / 0.5, (0 - 0.5) / 0.5,
            (0 - 0.25) / 0.5, (1 - 0.25) / 0.5,
            (Float(128) / 255 - 0.125) / 2, (0 - 0.125) / 2,
        ]
        XCTAssertEqual(out, expected)
    }
}

/// Timed rounds as tests/test_swift.py writes them: raw `ProcessInfo.thermalState` values, `thermal.ios_levels`.
private struct RoundsFile: Decodable {
    struct Round: Decodable {
        var thermalState: Int
        var samplesMs: [String: Double]

        enum CodingKeys: String, CodingKey {
            case thermalState = "thermal_state", samplesMs = "samples_ms"
        }
    }

    var device: String
    var model: String
    var backend: String
    var warmup: Int
    var app: String
    var iosLevels: [Int]
    var rounds: [Round]

    enum CodingKeys: String, CodingKey {
        case device, model, backend, warmup, app, iosLevels = "ios_levels", rounds
    }
}

import Foundation
import OndeviceModel
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

import Foundation
import OndeviceModel
import XCTest

/// Every case of `tests/resize_vectors.json` (training's resize and normalization, written by torch): the app's
/// `ImageResize` and `ImageNormalizer` must agree with both arrays within the file's tolerance.
final class ResizeVectorsTests: XCTestCase {
    private struct Vectors: Decodable {
        var tolerance: Float
        var cases: [Case]
    }

    private struct Case: Decodable {
        var name: String
        var channels: Int
        var height: Int
        var width: Int
        var outHeight: Int
        var outWidth: Int
        var pixels: [UInt8]
        var mean: [Double]
        var std: [Double]
        var resized: [Float]
        var normalized: [Float]

        enum CodingKeys: String, CodingKey {
            case name, channels, height, width, outHeight = "out_height", outWidth = "out_width", pixels, mean, std
            case resized, normalized
        }
    }

    func testEveryCaseMatchesTorch() throws {
        let url = PolicyVectors.repository.appendingPathComponent("tests/resize_vectors.json")
        let vectors = try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
        XCTAssertFalse(vectors.cases.isEmpty)
        for c in vectors.cases {
            let plane = c.height * c.width
            // HWC bytes -> CHW floats in [0, 1]
            let planes = (0..<c.channels).flatMap { ch in
                (0..<plane).map { Float(c.pixels[$0 * c.channels + ch]) / 255 }
            }
            let resized = ImageResize.resize(
                planes, channels: c.channels, height: c.height, width: c.width, toHeight: c.outHeight,
                toWidth: c.outWidth
            ).map { min(max($0, 0), 1) }
            assertClose(resized, c.resized, vectors.tolerance, "\(c.name): resized")

            let json: [String: Any] = [
                "name": "image", "shape": [1, c.channels, c.outHeight, c.outWidth], "mean": c.mean, "std": c.std,
            ]
            let input = try JSONDecoder().decode(
                BundleManifest.Input.self, from: JSONSerialization.data(withJSONObject: json))
            // gray cases hold PIL's L already: r = g = b = L has luma L
            let rgba = (0..<plane).flatMap { i -> [UInt8] in
                let px = (0..<c.channels).map { c.pixels[i * c.channels + $0] }
                return c.channels == 1 ? [px[0], px[0], px[0], 255] : px + [255]
            }
            let normalized = try ImageNormalizer(input: input).normalize(rgba: rgba, width: c.width, height: c.height)
            assertClose(normalized, c.normalized, vectors.tolerance, "\(c.name): normalized")
        }
    }

    private func assertClose(_ got: [Float], _ expected: [Float], _ tolerance: Float, _ what: String) {
        XCTAssertEqual(got.count, expected.count, what)
        let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, what)
    }
}

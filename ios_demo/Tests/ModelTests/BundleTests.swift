import Foundation
import OndeviceModel
import OndevicePolicy
import XCTest

/// What the app reads from a bundle: the sub-networks each program holds (the benchmark times those and the policy
/// chooses among those), the backend label, and the preprocessing that turns any photo into the model input.
final class BundleTests: XCTestCase {
    private let manifestJSON = """
        {"manifest_version": 1, "model": {"name": "tiny", "class_names": ["a", "b"]},
         "input": {"name": "image", "shape": [1, 1, 2, 2], "mean": [0.5], "std": [0.25]},
         "gates": {"num_stages": 2},
         "subnets": [
           {"gates": "FF", "name": "super-net", "flops": 400, "params": 10, "accuracy": {"fp32": 0.9}},
           {"gates": "FT", "name": "FT", "flops": 300, "params": 8, "accuracy": {"fp32": 0.8}},
           {"gates": "TF", "name": "TF", "flops": 250, "params": 8, "accuracy": {"fp32": 0.85}},
           {"gates": "TT", "name": "base-net", "flops": 100, "params": 6, "accuracy": {"fp32": 0.7}}],
         "formats": {
           "executorch": {"file": "model.pte", "method": "forward", "inputs": ["image", "gates"],
                          "gates_input": {"dtype": "int32", "shape": [2]}, "backend": "vulkan"},
           "coreml": {"file": "model.mlpackage", "functions": {"TT": "subnet_TT", "FF": "subnet_FF"}}}}
        """

    private func manifest(_ json: String? = nil) throws -> BundleManifest {
        try JSONDecoder().decode(BundleManifest.self, from: Data((json ?? manifestJSON).utf8))
    }

    func testEachProgramRunsItsOwnSubNetworks() throws {
        let manifest = try manifest()
        XCTAssertEqual(manifest.gates(in: .executorch), ["FF", "FT", "TF", "TT"])
        XCTAssertEqual(manifest.gates(in: .coreml), ["FF", "TT"])  // catalog order, not the functions' order
    }

    func testThePolicyChoosesOnlyAmongWhatTheProgramHolds() throws {
        let vectors = try JSONSerialization.jsonObject(with: Data(contentsOf: PolicyVectors.url)) as? [String: Any]
        let policyJSON = try JSONSerialization.data(withJSONObject: XCTUnwrap(vectors?["policy"]))
        let bundle = ModelBundle(
            directory: URL(fileURLWithPath: "/nonexistent"), manifest: try manifest(),
            config: try PolicyConfig.decode(policyJSON))
        let coreml = try bundle.policy(device: nil, program: .coreml)
        XCTAssertEqual(Set(coreml.table.candidates.map(\.gates)), ["FF", "TT"])
        let executorch = try bundle.policy(device: nil, program: .executorch)
        XCTAssertEqual(Set(executorch.table.candidates.map(\.gates)), ["FF", "FT", "TF", "TT"])
    }

    func testTheBackendLabelComesFromTheManifest() throws {
        XCTAssertEqual(try manifest().formats.executorch?.backend, "vulkan")
        let older = manifestJSON.replacingOccurrences(of: #", "backend": "vulkan""#, with: "")
        XCTAssertNil(try manifest(older).formats.executorch?.backend)
    }

    /// 4 -> 2 pixels: scale 2, so each output reads 3 source pixels with triangle weights 3/7, 3/7, 1/7 (by hand).
    func testResizeShrinksWithTheAntialiasedTriangleFilter() {
        let out = ImageResize.resize([0, 1, 2, 3], channels: 1, height: 1, width: 4, toHeight: 1, toWidth: 2)
        XCTAssertEqual(out.count, 2)
        XCTAssertEqual(out[0], 5 / 7, accuracy: 1e-6)
        XCTAssertEqual(out[1], 16 / 7, accuracy: 1e-6)
        let column = ImageResize.resize([0, 1, 2, 3], channels: 1, height: 4, width: 1, toHeight: 2, toWidth: 1)
        XCTAssertEqual(column, out)
    }

    func testAnyPhotoSizeBecomesTheModelInput() throws {
        let normalizer = try ImageNormalizer(input: manifest().input)
        XCTAssertEqual(normalizer.decodeMaxPixelSize, 8)
        // 4 x 2 gray pixels -> 2 x 2: each output pixel is the mean of its two source columns' triangle weights
        let gray: [UInt8] = [0, 255, 0, 255, 255, 255, 0, 0]
        let rgba = gray.flatMap { [$0, $0, $0, UInt8(255)] }
        let out = try normalizer.normalize(rgba: rgba, width: 4, height: 2)
        let first = (Float(3) / 7 * 0 + Float(3) / 7 * 1 + Float(1) / 7 * 0 - 0.5) / 0.25
        XCTAssertEqual(out.count, 4)
        XCTAssertEqual(out[0], first, accuracy: 1e-5)
        XCTAssertThrowsError(try normalizer.normalize(rgba: rgba, width: 3, height: 2)) { error in
            XCTAssertTrue(String(describing: error).contains("3 x 2"), "\(error)")
        }
    }
}

/// `tests/policy_vectors.json`: from `ONDEVICE_VECTORS`, else the repository this test file lives in.
enum PolicyVectors {
    static var url: URL {
        if let path = ProcessInfo.processInfo.environment["ONDEVICE_VECTORS"] { return URL(fileURLWithPath: path) }
        return repository.appendingPathComponent("tests/policy_vectors.json")
    }

    /// ios_demo/Tests/ModelTests/<this file> -> the repository root.
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }
}

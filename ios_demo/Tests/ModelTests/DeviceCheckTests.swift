import Foundation
import OndeviceModel
import XCTest

/// The first-run check against `device_check.json`: the input rule (values from numpy, as `ondevice export` writes
/// them), the tolerance, and that every sub-network of the file runs.
final class DeviceCheckTests: XCTestCase {
    private func check(head: [Double] = [-0.8980392217636108, 0.9764705896377563, 0.843137264251709]) throws
        -> DeviceCheck
    {
        let json: [String: Any] = [
            "format": "ondevice-device-check", "version": 1, "program": "model.pte", "sha256": "00",
            "input": ["shape": [1, 1, 4, 4], "rule": "see DeviceCheck", "head": head, "sum": -0.2509801387786865],
            "atol": 0.01, "logits": ["FT": [1.0, -2.0], "FF": [0.5, 0.25]],
        ]
        return try JSONDecoder().decode(DeviceCheck.self, from: JSONSerialization.data(withJSONObject: json))
    }

    func testTheInputFollowsTheRuleOfTheFile() throws {
        let x = try check().checkedInput()
        XCTAssertEqual(x.count, 16)
        XCTAssertEqual(x[3], 0.7098039388656616)
        XCTAssertThrowsError(try check(head: [-0.8980392217636108, 0.9764705896377563, 0.8431373]).checkedInput())
    }

    func testLogitsPassWithinTheToleranceOnly() throws {
        let check = try check()
        XCTAssertNil(check.mismatch(gates: "FT", logits: [1.009, -2.009]))
        XCTAssertEqual(check.mismatch(gates: "FT", logits: [1.02, -2]).map { $0.hasPrefix("FT: a logit is") }, true)
        XCTAssertEqual(check.mismatch(gates: "FT", logits: [1]), "FT: 1 logits, expected 2")
        XCTAssertNotNil(check.mismatch(gates: "FT", logits: [.nan, -2]))
        XCTAssertEqual(check.mismatch(gates: "TT", logits: [1, 2]), "TT: not in device_check.json")
    }

    func testEverySubNetworkOfTheFileRuns() throws {
        var ran: [String] = []
        let failures = try check().failures { gates in
            ran.append(gates)
            return gates == "FF" ? [0.5, 0.25] : [0, 0]
        }
        XCTAssertEqual(ran, ["FF", "FT"])
        XCTAssertEqual(failures.count, 1)
        XCTAssertTrue(failures[0].hasPrefix("FT: a logit is 2.0 off"), failures[0])
    }

    func testAnotherVersionIsRefused() {
        let newer = Data(#"{"format": "ondevice-device-check", "version": 2}"#.utf8)
        XCTAssertThrowsError(try JSONDecoder().decode(DeviceCheck.self, from: newer)) { error in
            XCTAssertTrue(String(describing: error).contains("this app reads version 1"), "\(error)")
        }
    }
}

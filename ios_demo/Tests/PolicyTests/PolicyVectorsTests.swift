import Foundation
import OndevicePolicy
import XCTest

/// Every vector of `tests/policy_vectors.json` (written by the Python policy): the table and its variants, the iOS
/// normalization rows, every step of every case, and the thermal section (latency tables per thermal status: its
/// table with the per-level fronts and its cases), compared exactly (numbers bit for bit). The cases are not listed
/// here: the test reads the file and runs whatever it holds.
///
/// The file is found through the environment variable `ONDEVICE_VECTORS`, else at `tests/policy_vectors.json` in
/// the repository this test file lives in.
final class PolicyVectorsTests: XCTestCase {
    private var vectors: Vectors!

    override func setUpWithError() throws {
        vectors = try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: Self.vectorsURL))
    }

    func testTable() throws {
        let table = try SubnetTable(catalog: vectors.manifest, config: vectors.policy, device: vectors.table.device)
        assertTable(table, equals: vectors.table, "table")
    }

    func testEveryTableSelection() throws {
        XCTAssertFalse(vectors.tableSelection.isEmpty)
        for variant in vectors.tableSelection {
            var catalog = vectors.manifest
            catalog.latency = variant.latency
            let table = try SubnetTable(catalog: catalog, config: vectors.policy, device: variant.device)
            assertTable(table, equals: variant.expect, "table selection '\(variant.name)'")
        }
    }

    func testEveryIOSNormalization() {
        let rows = vectors.normalization.filter { $0.platform == "ios" }  // Android rows: the Kotlin JUnit tests
        XCTAssertFalse(rows.isEmpty)
        for row in rows {
            let r = row.reading
            let state = DeviceState(
                iosBatteryLevel: r.batteryLevel, batteryState: r.batteryState, lowPowerMode: r.lowPowerMode,
                thermalState: r.thermalState, levels: vectors.policy.thermal.iosLevels)
            XCTAssertEqual(state, row.state.deviceState, "normalization of \(r)")
        }
    }

    func testEveryCaseStepByStep() throws {
        let policy = try Policy(config: vectors.policy, catalog: vectors.manifest, device: vectors.table.device)
        var checked = 0
        for testCase in vectors.cases {
            var session = PolicySession(policy: policy)
            for (i, step) in testCase.steps.enumerated() {
                let decision = session.decide(step.state.deviceState, now: step.tS)
                assertDecision(decision, equals: step.expect, "case '\(testCase.name)' step \(i)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, vectors.cases.map(\.steps.count).reduce(0, +))
        XCTAssertGreaterThan(checked, 0)
    }

    /// The thermal section's manifest: the vectors' manifest with its latency tables, which hold thermal tables.
    private func thermalSection() throws -> (ThermalSection, SubnetCatalog) {
        let section = try XCTUnwrap(vectors.thermal, "no thermal section: regenerate with `ondevice policy vectors`")
        var catalog = vectors.manifest
        catalog.latency = section.latency
        return (section, catalog)
    }

    func testThermalTable() throws {
        let (section, catalog) = try thermalSection()
        let table = try SubnetTable(catalog: catalog, config: section.policy, device: section.table.device)
        XCTAssertFalse(section.table.thermal.isEmpty, "the thermal section's table has no thermal tables")
        assertTable(table, equals: section.table, "thermal table")
    }

    func testEveryThermalCaseStepByStep() throws {
        let (section, catalog) = try thermalSection()
        let policy = try Policy(config: section.policy, catalog: catalog, device: section.table.device)
        var checked = 0
        for testCase in section.cases {
            var session = PolicySession(policy: policy)
            for (i, step) in testCase.steps.enumerated() {
                let decision = session.decide(step.state.deviceState, now: step.tS)
                assertDecision(decision, equals: step.expect, "thermal case '\(testCase.name)' step \(i)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, section.cases.map(\.steps.count).reduce(0, +))
        XCTAssertGreaterThan(checked, 0)
        XCTAssertTrue(section.cases.flatMap(\.steps).contains { $0.expect.tableLevel > 0 }, "no step ranks hot")
    }

    /// A thermal table must time exactly the cool table's sub-networks, and be keyed by a status name.
    func testThermalTablesAreCheckedAgainstTheCoolTable() throws {
        let (section, catalog) = try thermalSection()
        let device = try XCTUnwrap(section.table.device)
        let status = try XCTUnwrap(catalog.latency[device]?.thermal?.keys.min())
        var partial = catalog
        let dropped = try XCTUnwrap(partial.latency[device]?.thermal?[status]?.subnets.keys.min())
        partial.latency[device]?.thermal?[status]?.subnets[dropped] = nil
        XCTAssertThrowsError(try SubnetTable(catalog: partial, config: section.policy, device: device)) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains("the \"\(status)\" thermal table lists"), message)
            XCTAssertTrue(message.contains("must time the same sub-networks"), message)
        }
        var misnamed = catalog
        misnamed.latency[device]?.thermal?["warm"] = catalog.latency[device]?.thermal?[status]
        XCTAssertThrowsError(try SubnetTable(catalog: misnamed, config: section.policy, device: device)) { error in
            XCTAssertTrue(String(describing: error).contains("thermal table \"warm\" is not one of light"), "\(error)")
        }
    }

    /// The bit-for-bit comparison above needs JSONDecoder to parse every number like `strtod` (`Double(String)`),
    /// which Foundation does from iOS 17 / macOS 14 on: check it on every number in the file.
    func testJSONDecoderParsesEveryNumberExactly() throws {
        let text = try String(contentsOf: Self.vectorsURL, encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?"#)  // JSON numbers
        let tokens = pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)).map {
            String(text[Range($0.range, in: text)!])
        }
        let decoded = try JSONDecoder().decode([Double].self, from: Data("[\(tokens.joined(separator: ","))]".utf8))
        XCTAssertEqual(decoded.count, tokens.count)
        for (token, value) in zip(tokens, decoded) {
            XCTAssertEqual(value.bitPattern, Double(token)!.bitPattern, "JSONDecoder parsed \(token) as \(value)")
        }
    }

    func testPolicyJSONIsReadStrictly() throws {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.vectorsURL)) as? [String: Any]
        let policy = try XCTUnwrap(json?["policy"] as? [String: Any])
        XCTAssertNoThrow(try PolicyConfig.decode(JSONSerialization.data(withJSONObject: policy)))

        var typo = policy
        var thermal = try XCTUnwrap(policy["thermal"] as? [String: Any])
        thermal["energyy"] = thermal["energy"]
        typo["thermal"] = thermal
        XCTAssertThrowsError(try PolicyConfig.decode(JSONSerialization.data(withJSONObject: typo))) { error in
            XCTAssertTrue(String(describing: error).contains("unknown key thermal.energyy"), "\(error)")
        }
        var newer = policy
        newer["policy_version"] = 2
        XCTAssertThrowsError(try PolicyConfig.decode(JSONSerialization.data(withJSONObject: newer))) { error in
            XCTAssertTrue(String(describing: error).contains("policy_version 2"), "\(error)")
        }
    }

    /// The accuracy slack, by hand: FFFF 0.814, FFFT 0.812, TTFF 0.809 in the vectors' manifest; with a cool phone
    /// and a generous budget the caps allow FFFF, and the cheapest within the slack stands in for it.
    func testTheCheapestSubNetworkWithinTheSlackIsChosen() throws {
        let cool = DeviceState(
            battery: 1, charging: false, powerSave: false, thermal: Thermal(status: 0), headroom: nil,
            latencyBudgetMs: 1000, accuracyFloor: nil)
        for (slack, expected) in [(0.0, "FFFF"), (0.003, "FFFT"), (0.0055, "TTFF")] {
            var config = vectors.policy
            config.accuracy.slack = slack
            let policy = try Policy(config: config, catalog: vectors.manifest, device: vectors.table.device)
            var session = PolicySession(policy: policy)
            XCTAssertEqual(session.decide(cool, now: 0).gates, expected, "slack \(slack)")
        }
    }

    // MARK: - Helpers

    private func assertTable(_ table: SubnetTable, equals expect: TableExpect, _ what: String) {
        XCTAssertEqual(table.source.kind, expect.source.kind, what)
        XCTAssertEqual(table.source.tableName, expect.source.device, what)
        XCTAssertEqual(table.accuracyKey, expect.accuracyKey, what)
        assertFront(table.front, table.candidates, equals: expect.front, expect.candidates, what)
        XCTAssertEqual(table.thermal.map(\.level.rawValue), expect.thermal.map(\.level), "\(what): thermal levels")
        for (got, hot) in zip(table.thermal, expect.thermal) {
            assertFront(got.front, got.candidates, equals: hot.front, hot.candidates, "\(what) at level \(hot.level)")
        }
    }

    private func assertFront(
        _ front: [SubNetwork], _ candidates: [SubNetwork], equals expectFront: [String],
        _ expectCandidates: [TableExpect.Candidate], _ what: String
    ) {
        XCTAssertEqual(candidates.map(\.gates), expectCandidates.map(\.gates), what)
        for (got, row) in zip(candidates, expectCandidates) {
            XCTAssertEqual(got.latencyMs.bitPattern, row.latencyMs.bitPattern, "\(what): \(row.gates) latency_ms")
            XCTAssertEqual(got.accuracy.bitPattern, row.accuracy.bitPattern, "\(what): \(row.gates) accuracy")
        }
        XCTAssertEqual(front.map(\.gates), expectFront, what)
    }

    private func assertDecision(_ d: Decision, equals e: Expect, _ what: String) {
        XCTAssertEqual(d.gates, e.gates, "\(what): gates")
        XCTAssertEqual(d.target, e.target, "\(what): target")
        XCTAssertEqual(d.belowFloor, e.belowFloor, "\(what): below_floor")
        XCTAssertEqual(d.overBudget, e.overBudget, "\(what): over_budget")
        XCTAssertEqual(d.switched, e.switched, "\(what): switched")
        XCTAssertEqual(d.held, e.held, "\(what): held")
        XCTAssertEqual(d.level.rawValue, e.level, "\(what): level")
        XCTAssertEqual(d.tableLevel.rawValue, e.tableLevel, "\(what): table_level")
        let numbers: [(String, Double, Double)] = [
            ("battery", d.battery, e.battery), ("energy", d.energy, e.energy),
            ("latency_budget_ms", d.latencyBudgetMs, e.latencyBudgetMs),
            ("latency_cap_ms", d.latencyCapMs, e.latencyCapMs), ("energy_cap_ms", d.energyCapMs, e.energyCapMs),
            ("cap_ms", d.capMs, e.capMs), ("floor", d.floor, e.floor),
        ]
        for (name, got, expected) in numbers {
            XCTAssertEqual(got.bitPattern, expected.bitPattern, "\(what): \(name) \(got) != \(expected) (bit for bit)")
        }
    }

    static var vectorsURL: URL {
        if let path = ProcessInfo.processInfo.environment["ONDEVICE_VECTORS"] { return URL(fileURLWithPath: path) }
        // ios_demo/Tests/PolicyTests/<this file> -> the repository root
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("tests/policy_vectors.json")
    }
}

// MARK: - The vectors file

private struct Vectors: Decodable {
    var policy: PolicyConfig
    var manifest: SubnetCatalog
    var table: TableExpect
    var tableSelection: [TableVariant]
    var normalization: [NormalizationRow]
    var cases: [Case]
    var thermal: ThermalSection?

    enum CodingKeys: String, CodingKey {
        case policy, manifest, table, tableSelection = "table_selection", normalization, cases, thermal
    }
}

/// The vectors' manifest with these latency tables (thermal tables included), its own policy, table and cases.
private struct ThermalSection: Decodable {
    var policy: PolicyConfig
    var latency: [String: LatencyTable]
    var table: TableExpect
    var cases: [Case]
}

private struct TableExpect: Decodable {
    struct Source: Decodable {
        var kind: String
        var device: String?
    }

    struct Candidate: Decodable {
        var gates: String
        var latencyMs: Double
        var accuracy: Double

        enum CodingKeys: String, CodingKey {
            case gates, latencyMs = "latency_ms", accuracy
        }
    }

    /// The front and candidates of one thermal table.
    struct HotTable: Decodable {
        var level: Int
        var candidates: [Candidate]
        var front: [String]
    }

    var device: String?
    var source: Source
    var accuracyKey: String
    var candidates: [Candidate]
    var front: [String]
    var thermal: [HotTable]

    enum CodingKeys: String, CodingKey {
        case device, source, accuracyKey = "accuracy_key", candidates, front, thermal
    }
}

private struct TableVariant: Decodable {
    var name: String
    var device: String
    var latency: [String: LatencyTable]
    var expect: TableExpect
}

/// A reading as the vectors write it: null headroom is NaN (unknown), null battery or thermal is unknown, null
/// budget or floor means policy.json's default, null charging or power save counts as false.
private struct StateJSON: Decodable {
    var battery: Double?
    var charging: Bool?
    var powerSave: Bool?
    var thermal: Int?
    var headroom: Double?
    var latencyBudgetMs: Double?
    var accuracyFloor: Double?

    enum CodingKeys: String, CodingKey {
        case battery, charging, powerSave = "power_save", thermal, headroom
        case latencyBudgetMs = "latency_budget_ms", accuracyFloor = "accuracy_floor"
    }

    var deviceState: DeviceState {
        DeviceState(
            battery: battery, charging: charging, powerSave: powerSave, thermal: thermal.flatMap(Thermal.init(status:)),
            headroom: headroom, latencyBudgetMs: latencyBudgetMs, accuracyFloor: accuracyFloor)
    }
}

private struct NormalizationRow: Decodable {
    struct Reading: Decodable, CustomStringConvertible {
        var batteryLevel: Double?
        var batteryState: Int?
        var lowPowerMode: Bool?
        var thermalState: Int?

        enum CodingKeys: String, CodingKey {
            case batteryLevel = "battery_level", batteryState = "battery_state", lowPowerMode = "low_power_mode"
            case thermalState = "thermal_state"
        }

        var description: String {
            "level \(String(describing: batteryLevel)), state \(String(describing: batteryState)), "
                + "low power \(String(describing: lowPowerMode)), thermal \(String(describing: thermalState))"
        }
    }

    var platform: String
    var reading: Reading
    var state: StateJSON

    enum CodingKeys: String, CodingKey {
        case platform, reading, state
    }

    // Android rows hold other reading keys: decode the reading only for iOS rows.
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        platform = try c.decode(String.self, forKey: .platform)
        state = try c.decode(StateJSON.self, forKey: .state)
        reading = platform == "ios" ? try c.decode(Reading.self, forKey: .reading) : Reading()
    }
}

private struct Expect: Decodable {
    var gates: String
    var target: String
    var belowFloor: Bool
    var overBudget: Bool
    var switched: Bool
    var held: Bool
    var level: Int
    var battery: Double
    var energy: Double
    var latencyBudgetMs: Double
    var latencyCapMs: Double
    var energyCapMs: Double
    var capMs: Double
    var floor: Double
    var tableLevel: Int

    enum CodingKeys: String, CodingKey {
        case gates, target, belowFloor = "below_floor", overBudget = "over_budget", switched, held, level, battery
        case energy, latencyBudgetMs = "latency_budget_ms", latencyCapMs = "latency_cap_ms"
        case energyCapMs = "energy_cap_ms", capMs = "cap_ms", floor, tableLevel = "table_level"
    }
}

private struct Case: Decodable {
    struct Step: Decodable {
        var tS: Double
        var state: StateJSON
        var expect: Expect

        enum CodingKeys: String, CodingKey {
            case tS = "t_s", state, expect
        }
    }

    var name: String
    var steps: [Step]
}

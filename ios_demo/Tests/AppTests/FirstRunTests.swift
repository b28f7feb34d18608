import OndeviceModel
import XCTest

@testable import OndeviceDemo

/// The first run on an iPhone, hosted by the app (project.yml: OndeviceDemoTests; needs a phone and the ExecuTorch
/// package, so not in Package.swift). With a bundle in the app's Documents/bundle, it runs every sub-network of the
/// bundle's device_check.json on the real program, compares the logits with those of the export, then times every
/// sub-network and writes Documents/latency.json for `ondevice profile BUNDLE --merge`.
final class FirstRunTests: XCTestCase {
    func testTheProgramGivesTheExportedLogitsThenItsLatencyIsWritten() throws {
        let directory = DemoModel.bundleDirectory
        let bundle = try ModelBundle.load(from: directory)
        let check = try DeviceCheck.load(from: directory)
        let classifier = try ExecuTorchClassifier(bundle: bundle)
        let input = try check.checkedInput()
        XCTAssertEqual(try check.failures { try classifier.logits(image: input, gates: $0) }, [])

        let (runs, warmup) = (20, 3)
        let stats = try measureInterleaved(gates: bundle.manifest.gates(in: classifier.program), runs: runs,
                                           warmup: warmup) { gates in
            _ = try classifier.logits(image: input, gates: gates)
        }
        let report = LatencyReport(
            device: DeviceStateReader.deviceName, model: bundle.manifest.model.name, backend: classifier.backend,
            runs: runs, warmup: warmup, app: "ondevice FirstRunTests (iOS)", subnets: stats)
        let url = directory.deletingLastPathComponent().appendingPathComponent(LatencyReport.fileName)
        try report.jsonData().write(to: url, options: .atomic)
        print("wrote \(url.path)")
    }
}

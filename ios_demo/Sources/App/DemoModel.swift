import Combine
import Foundation
import OndeviceModel
import OndevicePolicy

/// The app's state: loads the bundle from Documents/bundle, reads the device state every second (and on every OS
/// notification), lets the policy pick a sub-network and classifies the chosen image with it on a background queue.
@MainActor
final class DemoModel: ObservableObject {
    /// The app's budget per inference; nil would mean policy.json's default.
    static let latencyBudgetMs = 250.0

    @Published private(set) var status = "loading the bundle ..."
    @Published private(set) var state: DeviceState?
    @Published private(set) var decision: Decision?
    @Published private(set) var result: Classification?
    @Published private(set) var hasImage = false

    private(set) var bundle: ModelBundle?
    private var session: PolicySession?
    private var reader: DeviceStateReader?
    private var classifier: ImageClassifier?
    private var normalizer: ImageNormalizer?
    private var input: [Float]?  // the picked photo, normalized once
    private var busy = false
    private var subscriptions = Set<AnyCancellable>()
    private let queue = DispatchQueue(label: "ondevice.inference", qos: .userInitiated)

    /// Where the bundle goes: the app's Documents/bundle (Finder or the Files app can copy it there).
    static var bundleDirectory: URL {
        FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0].appendingPathComponent("bundle")
    }

    func start() async {
        do {
            let bundle = try ModelBundle.load(from: Self.bundleDirectory)
            self.bundle = bundle
            normalizer = try ImageNormalizer(input: bundle.manifest.input)
            let classifier = try await Self.makeClassifier(bundle)
            self.classifier = classifier
            session = PolicySession(
                policy: try bundle.policy(device: DeviceStateReader.deviceName, program: classifier.program))
            let reader = DeviceStateReader(levels: bundle.config.thermal.iosLevels)
            self.reader = reader
            reader.changes.sink { [weak self] _ in self?.tick() }.store(in: &subscriptions)
            let source = session?.policy.table.source.kind ?? "-"
            status = "\(bundle.manifest.model.name): \(bundle.manifest.catalog.subnets.count) sub-networks, "
                + "\(classifier?.backend ?? "-"), latency \(source) for \(DeviceStateReader.deviceName)"
        } catch {
            status = "cannot load the bundle: \(error)"
            return
        }
        while !Task.isCancelled {
            tick()
            try? await Task.sleep(for: .seconds(1))  // sensors update about once a second
        }
    }

    /// ExecuTorch when the bundle has a program; else the Core ML package (iOS 18+).
    static func makeClassifier(_ bundle: ModelBundle) async throws -> ImageClassifier {
        if bundle.manifest.formats.executorch != nil { return try ExecuTorchClassifier(bundle: bundle) }
        if #available(iOS 18.0, *) { return try await CoreMLClassifier.load(bundle: bundle) }
        throw BundleError.noProgram("the bundle has no ExecuTorch program, and its Core ML package needs iOS 18")
    }

    /// Decodes (upright, at most `decodeMaxPixelSize`) and normalizes a picked photo off the main thread.
    func pick(_ data: Data) async {
        guard let normalizer else { return }
        do {
            input = try await Task.detached(priority: .userInitiated) {
                try normalizer.normalize(normalizer.decode(data))
            }.value
            hasImage = true
            tick()
        } catch {
            status = "\(error)"
        }
    }

    /// Read the state, decide, and classify the current image with the chosen sub-network.
    func tick() {
        guard var session, let reader else { return }
        let reading = reader.read(latencyBudgetMs: Self.latencyBudgetMs)
        let chosen = session.decide(reading, now: ProcessInfo.processInfo.systemUptime)
        self.session = session
        state = reading
        decision = chosen
        guard let input, let classifier, let classNames = bundle?.manifest.model.classNames, !busy
        else { return }  // busy: skip this tick, as a camera pipeline drops frames
        busy = true
        queue.async {
            let outcome = Result {
                try classifier.classify(image: input, gates: chosen.gates, classNames: classNames)
            }
            Task { @MainActor in
                self.busy = false
                switch outcome {
                case .success(let classification): self.result = classification
                case .failure(let error): self.status = "inference failed: \(error)"
                }
            }
        }
    }
}

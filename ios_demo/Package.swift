// swift-tools-version:5.9
// The demo's libraries and tests. The app target itself is an Xcode project generated from project.yml
// (XcodeGen): SwiftPM cannot build an iOS app bundle. `swift test` runs Tests/ on a Mac, and on Linux, where
// the ExecuTorch binary package does not exist: there OndeviceModel builds without its ExecuTorch and Core ML
// classifiers (their files are `#if canImport(...)`), and every XCTest runs.
import PackageDescription

#if os(Linux)
let dependencies: [Package.Dependency] = []
let runtime: [Target.Dependency] = []
#else
let dependencies: [Package.Dependency] = [
    // The ExecuTorch runtime as prebuilt frameworks; the branch names the release (docs: using-executorch-ios).
    // Use the release matching the pip executorch that exported model.pte (pyproject.toml pins 1.5.1).
    .package(url: "https://github.com/pytorch/executorch.git", branch: "swiftpm-1.5.1"),
]
let runtime: [Target.Dependency] = [
    .product(name: "executorch", package: "executorch"),
    .product(name: "backend_xnnpack", package: "executorch"),
    .product(name: "kernels_optimized", package: "executorch"),
]
#endif

let package = Package(
    name: "OndeviceDemo",
    platforms: [
        .iOS(.v17),  // iOS 17 / macOS 14: JSONDecoder parses doubles exactly (see Tests/PolicyTests)
        .macOS(.v14),
    ],
    products: [
        .library(name: "OndevicePolicy", targets: ["OndevicePolicy"]),
        .library(name: "OndeviceModel", targets: ["OndeviceModel"]),
    ],
    dependencies: dependencies,
    targets: [
        // Plain Swift, Foundation only: policy.json, the manifest's sub-networks, the decision.
        .target(name: "OndevicePolicy", path: "Sources/Policy"),
        // The bundle, preprocessing, ExecuTorch and Core ML classifiers, the latency file.
        .target(
            name: "OndeviceModel",
            dependencies: ["OndevicePolicy"] + runtime,
            path: "Sources/Model"
            // The app links with -all_load (project.yml): backends and kernels register from static initializers.
        ),
        .testTarget(name: "PolicyTests", dependencies: ["OndevicePolicy"], path: "Tests/PolicyTests"),
        .testTarget(name: "ModelTests", dependencies: ["OndeviceModel"], path: "Tests/ModelTests"),
    ]
)

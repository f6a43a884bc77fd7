// swift-tools-version:6.0
import PackageDescription

/// Hot numeric targets are compiled with -Ounchecked in release builds: their
/// loops index raw buffers whose bounds are checked once, up front, per op.
let hotSettings: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
]

let package = Package(
    name: "PILOT",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "pilot", targets: ["pilot"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, libzmq3-dev).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),

        .target(name: "SafeTensors"),
        .target(name: "Tensors", dependencies: ["CBLAS", "SafeTensors"], swiftSettings: hotSettings),
        .executableTarget(
            name: "pilot",
            dependencies: [
                "Tensors", "SafeTensors", "CBLAS", "CZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .executableTarget(
            name: "pilot-bench", dependencies: ["Tensors", "CBLAS"], path: "Benchmarks/pilot-bench",
            swiftSettings: hotSettings),

        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "SafeTensors"]),
    ]
)

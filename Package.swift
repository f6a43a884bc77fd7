// swift-tools-version:6.0
import PackageDescription

import Foundation

/// The CPU level hot targets are compiled for. haswell (AVX2 + FMA, every
/// x86 CPU since 2013) lets the SIMD kernels use 8-wide registers; set
/// PILOT_TARGET_CPU=x86-64 to build for older machines, or =native.
#if arch(x86_64)
let targetCPU = ProcessInfo.processInfo.environment["PILOT_TARGET_CPU"] ?? "haswell"
#else
let targetCPU = ProcessInfo.processInfo.environment["PILOT_TARGET_CPU"] ?? ""
#endif

/// Hot numeric targets are compiled with -Ounchecked in release builds: their
/// loops index raw buffers whose bounds are checked once, up front, per op.
let hotSettings: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"] + (targetCPU.isEmpty ? [] : ["-target-cpu", targetCPU]),
                 .when(configuration: .release)),
]

let package = Package(
    name: "PILOT",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "pilot", targets: ["pilot"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "SafeTensors", targets: ["SafeTensors"]),
        .library(name: "Imaging", targets: ["Imaging"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // System libraries (Debian: libopenblas-dev, libzmq3-dev, zlib1g-dev).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // libpq, PostgreSQL's client library: the shared job queue (PostgresJobQueue). Synchronous like
        // the rest of the daemon, and a few seconds to build, where postgres-nio would bring SwiftNIO.
        .systemLibrary(name: "CPostgres", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

        // Our C shim over libpng: turns libpng's longjmp errors into return codes.
        .target(name: "CPNG", linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("z")]),
        // JPEG (libjpeg-turbo) and WebP (libwebp) readers behind setjmp-safe C functions.
        .target(name: "CImageCodecs", linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("webp")]),

        .target(name: "SafeTensors"),
        // CUDA is loaded at run time (dlopen): no CUDA header or library at build time.
        // Kernels/ holds the .cu sources NVRTC compiles on first use.
        .target(name: "Tensors", dependencies: ["CBLAS", "SafeTensors", .product(name: "Crypto", package: "swift-crypto")],
                resources: [.copy("CUDA/Kernels")], swiftSettings: hotSettings),
        .target(name: "Imaging", dependencies: ["CPNG", "CImageCodecs"], swiftSettings: hotSettings),
        .target(
            name: "Diffusion",
            dependencies: ["Tensors", "SafeTensors", "CZlib", .product(name: "Crypto", package: "swift-crypto")],
            resources: [.copy("Resources")],
            swiftSettings: hotSettings),
        // The workflow engine: knows graphs, not models (Nodes → Workflow, Nodes → Diffusion).
        // SafeTensors for ReadConfinement (a run's file reads kept inside the allowed folders).
        .target(name: "Workflow", dependencies: ["Yams", "SafeTensors", .product(name: "Crypto", package: "swift-crypto")]),
        // The node library: one file per workflow node, over the models and imaging.
        .target(name: "Nodes", dependencies: ["Workflow", "Diffusion", "Imaging", "Tensors", "SafeTensors"],
                path: "Nodes", exclude: ["README.md"], swiftSettings: hotSettings),
        // The daemon: ZeroMQ protocol, job store (SQLite through GRDB), events, clients. It runs
        // workflows through the engine and knows no node: `pilot` hands it the node library.
        .target(name: "Daemon", dependencies: [
            "CZeroMQ", "CPostgres", "Workflow", "SafeTensors", "Imaging",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(
            name: "pilot",
            dependencies: [
                "Tensors", "SafeTensors", "Imaging", "Diffusion", "CBLAS", "CZeroMQ", "Nodes", "Workflow", "Daemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        .executableTarget(
            name: "pilot-bench", dependencies: ["Tensors", "Diffusion", "CBLAS", "Daemon", "Workflow", "Nodes", "Imaging",
                                                .product(name: "Logging", package: "swift-log")], path: "Benchmarks/pilot-bench",
            swiftSettings: hotSettings),

        .testTarget(name: "SafeTensorsTests", dependencies: ["SafeTensors"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "SafeTensors"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "SafeTensors"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "Tensors", "SafeTensors"]),
        // Broken/ holds the invalid workflows the validator tests read by path.
        .testTarget(name: "WorkflowTests", dependencies: ["Workflow"], exclude: ["Broken"]),
        .testTarget(name: "DaemonTests", dependencies: [
            "Daemon", "Nodes", "Workflow", "Diffusion", "Imaging", "pilot",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        .testTarget(name: "NodesTests", dependencies: ["Nodes", "Workflow", "Diffusion", "Imaging", "SafeTensors", "Tensors"]),
    ]
)

// Fuzz targets (libFuzzer), declared only when PILOT_FUZZ is set so the
// normal build and test never see them; scripts/fuzz.sh builds them into
// .build-fuzz with AddressSanitizer and libFuzzer's coverage. Each target's
// main.swift hands its input function to libFuzzer's driver (FuzzSupport).
if ProcessInfo.processInfo.environment["PILOT_FUZZ"] != nil {
    package.targets.append(.target(name: "FuzzSupport", path: "Fuzz/Support"))
    let fuzzTargets: [(String, [Target.Dependency])] = [
        ("workflow", ["Workflow", "Nodes"]),
        ("safetensors", ["SafeTensors"]),
        ("png", ["Imaging"]),
        ("image", ["Imaging"]),
        ("wire", ["Daemon", "Workflow", "Nodes", .product(name: "Logging", package: "swift-log")]),
        ("tokenizer", ["Diffusion"]),
        ("json", ["Daemon", "Workflow"]),
    ]
    for (name, dependencies) in fuzzTargets {
        package.targets.append(.executableTarget(
            name: "fuzz-\(name)", dependencies: dependencies + ["FuzzSupport"], path: "Fuzz/\(name)"))
    }
}

import Foundation
import XCTest
@testable import Tensors

/// The device plumbing (moves, mixed-device ops, gradients across devices)
/// on an emulated device, and the CUDA backend's host-side logic: none of
/// it needs a GPU.
final class DeviceTests: XCTestCase {
    static let device = Device.cuda(7)
    var emulated: EmulatedDeviceBackend!

    override func setUp() {
        emulated = EmulatedDeviceBackend(Self.device)
        Backends.register(emulated, for: Self.device)
    }

    override func tearDown() {
        Backends.register(nil, for: Self.device)
        emulated = nil   // XCTest keeps every test case until the process exits
    }

    func testMovingToADeviceAndBackKeepsValuesAndReadsDownload() {
        let x = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let d = x.to(Self.device)
        XCTAssertEqual(d.device, Self.device, "to(device) must tag the tensor with the device")
        XCTAssertEqual(d.scalars, x.scalars, "scalars of a device tensor are its values, copied down")
        XCTAssertEqual(d.to(.cpu).device, .cpu)
        XCTAssertEqual(emulated.copies.uploads, 1, "one upload expected")
        XCTAssertTrue(d.to(Self.device).storage === d.storage, "moving to the device it is on must not copy")
    }

    func testAnOpMixingHostAndDeviceOperandsRunsOnTheDevice() {
        let a = Tensor(shape: [2, 2], values: [1, 2, 3, 4]).to(Self.device)
        let b = Tensor(shape: [2], values: [10, 20])
        for y in [a + b, b + a, a * b, matmul(a, Tensor(shape: [2, 1], values: [1, 1]))] {
            XCTAssertEqual(y.device, Self.device, "an op with any device operand must run on that device")
        }
        XCTAssertEqual((b + a).scalars, [11, 22, 13, 24])
        XCTAssertEqual(concat([Tensor.zeros([1, 2]), a], axis: 0).device, Self.device)
    }

    func testGradientsFlowThroughMovesAndMixedOps() throws {
        let x = Tensor(shape: [3], values: [1, 2, 3])
        let tape = Tape()
        let xw = tape.watch(x)
        let w = Tensor(shape: [3], values: [4, 5, 6])
        let loss = ((xw.to(Self.device) * w).squared()).sum()   // Σ (x·w)²
        XCTAssertEqual(loss.device, Self.device)
        let g = try tape.gradient(of: loss, wrt: [xw])[0]
        XCTAssertEqual(g.device, .cpu, "the gradient of a host leaf moved to a device comes back to the host")
        let expected: [Float] = [32, 100, 216]   // 2·x·w² for x = 1, 2, 3 and w = 4, 5, 6
        XCTAssertEqual(g.scalars, expected, "d/dx Σ(xw)² = 2xw²")
    }

    func testGradientOfAHostLeafUsedDirectlyByADeviceOpIsCorrect() throws {
        let tape = Tape()
        let x = tape.watch(Tensor(shape: [1, 1, 4, 4], values: (0..<16).map(Float.init)))
        let weight = Tensor(shape: [1, 1, 3, 3], values: [Float](repeating: 1, count: 9)).to(Self.device)
        let y = conv2d(x, weight: weight, bias: nil, stride: 1, padding: 1)
        let g = try tape.gradient(of: y.sum(), wrt: [x])[0]
        // Each input pixel is counted once per output window containing it.
        XCTAssertEqual(g.scalars, [4, 6, 6, 4, 6, 9, 9, 6, 6, 9, 9, 6, 4, 6, 6, 4])
    }

    func testNormalisationOnADeviceMatchesTheHostWithItsGradient() throws {
        var rng = SplitMix64(seed: 3)
        let x = Tensor.randn([2, 8, 3, 3], using: &rng)
        let w = Tensor.randn([8], using: &rng), b = Tensor.randn([8], using: &rng)
        func run(_ input: Tensor) throws -> ([Float], [Float]) {
            let tape = Tape()
            let xw = tape.watch(input)
            let y = groupNorm(xw, groups: 4, weight: w, bias: b)
            let g = try tape.gradient(of: y.squared().sum(), wrt: [xw])[0]
            return (y.scalars, g.scalars)
        }
        let host = try run(x), dev = try run(x.to(Self.device))
        XCTAssertEqual(dev.0, host.0, "groupNorm on the device must equal the host's")
        XCTAssertEqual(dev.1, host.1, "its gradient (statistics kept on the device) must equal the host's")
    }

    // MARK: CUDA host-side logic

    func testDeviceSizeClassesRoundToTheirGranule() {
        XCTAssertEqual(DeviceSizeClasses.rounded(1), 512)
        XCTAssertEqual(DeviceSizeClasses.rounded(513), 1024)
        XCTAssertEqual(DeviceSizeClasses.rounded((1 << 20) - 1), 1 << 20)
        XCTAssertEqual(DeviceSizeClasses.rounded(1 << 20), 2 << 20, "from 1 MiB blocks round to 2 MiB")
        XCTAssertEqual(DeviceSizeClasses.rounded((2 << 20) + 1), 4 << 20)
    }

    func testBlockCacheReusesFreedBlocksAndTracksPeaks() {
        var next: UInt64 = 0x1000
        var allocated: [Int] = [], released: [UInt64] = []
        let cache = DeviceBlockCache(allocate: { size in
            allocated.append(size); next += UInt64(size); return next
        }, release: { released.append($0) })
        let a = cache.take(1000)!
        XCTAssertEqual(a.size, 1024)
        cache.give(a.address, size: a.size)
        let b = cache.take(900)!
        XCTAssertEqual(b.address, a.address, "a freed block of the same class must be reused")
        XCTAssertEqual(allocated, [1024], "the reuse must not allocate")
        let c = cache.take(3 << 20)!
        var s = cache.statistics
        XCTAssertEqual(s.live, 1024 + (4 << 20))
        XCTAssertEqual(s.peakLive, s.live)
        XCTAssertEqual(s.hits, 1)
        XCTAssertEqual(s.misses, 2)
        cache.give(c.address, size: c.size)
        cache.give(b.address, size: b.size)
        s = cache.statistics
        XCTAssertEqual(s.live, 0)
        XCTAssertEqual(s.cached, 1024 + (4 << 20))
        cache.emptyCache()
        XCTAssertEqual(Set(released), Set([a.address, c.address]), "emptying the cache frees every cached block")
        XCTAssertEqual(cache.statistics.cached, 0)
    }

    func testBlockCacheEmptiesItselfAndRetriesWhenTheDeviceIsFull() {
        var capacity = 4096
        var released = 0
        let cache = DeviceBlockCache(allocate: { size in
            guard size <= capacity else { return nil }
            capacity -= size
            return UInt64(0x10000 + capacity)
        }, release: { _ in released += 1; capacity += 2048 })
        let a = cache.take(2048)!, b = cache.take(2048)!
        cache.give(a.address, size: a.size)
        cache.give(b.address, size: b.size)
        XCTAssertNotNil(cache.take(4096), "a request that fits once the cache is emptied must succeed")
        XCTAssertEqual(released, 2)
        XCTAssertNil(cache.take(1 << 30), "a request larger than the device must fail, not crash")
    }

    func testLaunchShapesCoverTheWorkWithoutOverfillingTheDevice() {
        XCTAssertEqual(LaunchShape.elementwiseBlocks(1, multiprocessors: 132), 1)
        XCTAssertEqual(LaunchShape.elementwiseBlocks(1000, multiprocessors: 132), 4)
        XCTAssertEqual(LaunchShape.elementwiseBlocks(1 << 30, multiprocessors: 132), 132 * 16)
        XCTAssertEqual(LaunchShape.rowThreads(1), 32)
        XCTAssertEqual(LaunchShape.rowThreads(77), 96)
        XCTAssertEqual(LaunchShape.rowThreads(4096), 256)
        XCTAssertEqual(LaunchShape.attentionRows(queries: 4096, keys: 4096, heads: 8, budget: 1 << 30), 4096)
        XCTAssertEqual(LaunchShape.attentionRows(queries: 4096, keys: 4096, heads: 8, budget: 64 << 20), 512)
        XCTAssertEqual(LaunchShape.attentionRows(queries: 10, keys: 1 << 20, heads: 8, budget: 1024), 1, "at least one row")
    }

    func testKernelStructsUseTheCLayout() {
        let d = KernelStructs.dims(size: [2, 3], a: [3, 1], b: [0, 1])
        XCTAssertEqual(d.count, 200, "struct Dims is 8 + 3·64 bytes")
        XCTAssertEqual(Array(d[0..<4]), [2, 0, 0, 0], "rank at offset 0")
        XCTAssertEqual(d[8], 2); XCTAssertEqual(d[16], 3)
        XCTAssertEqual(d[72], 3); XCTAssertEqual(d[80], 1)
        XCTAssertEqual(d[136], 0); XCTAssertEqual(d[144], 1)
        let r = KernelStructs.reduceDims(keptSize: [5], keptStride: [1], reducedSize: [2, 3], reducedStride: [15, 5])
        XCTAssertEqual(r.count, 272)
        XCTAssertEqual(r[4], 2, "reducedRank at offset 4")
        XCTAssertEqual(r[264], 6, "reducedCount at offset 264")
        XCTAssertEqual(KernelStructs.conv(Array(1...12)).count, 48)
        let a = KernelStructs.attentionRows(rows: 5, first: 9, heads: 8, keys: 77, causal: true)
        XCTAssertEqual([a[0], a[8], a[16], a[20], a[24]], [5, 9, 8, 77, 1])
    }

    func testBroadcastStridesZeroTheBroadcastDimensions() {
        XCTAssertEqual(CUDABackend.broadcastStrides([3, 1], to: [2, 3, 4]), [0, 1, 0])
        XCTAssertEqual(CUDABackend.broadcastStrides([2, 3, 4], to: [2, 3, 4]), [12, 4, 1])
    }

    func testKernelCacheKeyChangesWithSourceOptionsArchitectureAndCompiler() {
        let base = KernelCompiler.cacheKey(source: "a", options: ["-x"], architecture: 90, compilerVersion: "13.0")
        XCTAssertEqual(base.count, 64)
        XCTAssertEqual(base, KernelCompiler.cacheKey(source: "a", options: ["-x"], architecture: 90, compilerVersion: "13.0"))
        for other in [KernelCompiler.cacheKey(source: "b", options: ["-x"], architecture: 90, compilerVersion: "13.0"),
                      KernelCompiler.cacheKey(source: "a", options: ["-y"], architecture: 90, compilerVersion: "13.0"),
                      KernelCompiler.cacheKey(source: "a", options: ["-x"], architecture: 80, compilerVersion: "13.0"),
                      KernelCompiler.cacheKey(source: "a", options: ["-x"], architecture: 90, compilerVersion: "13.1")] {
            XCTAssertNotEqual(other, base, "a changed input must change the cache key")
        }
        XCTAssertEqual(KernelCompiler.cacheFolder(environment: ["PILOT_KERNEL_CACHE": "/x/y"]).path, "/x/y")
        XCTAssertEqual(KernelCompiler.cacheFolder(environment: ["HOME": "/h"]).path, "/h/.cache/pilot/kernels")
    }

    func testLibrarySearchTakesTheEnvironmentFirst() {
        let folders = CUDALibrarySearch.folders(environment: ["PILOT_CUDA_LIBRARY_PATH": "/a:/b:", "HOME": "/nonexistent"])
        XCTAssertEqual(Array(folders.prefix(2)), ["/a", "/b"])
        XCTAssertTrue(folders.contains("/usr/local/cuda/lib64"))
        XCTAssertEqual(folders.count, Set(folders).count, "no folder twice")
        if case .failure(let why) = CUDALibrarySearch.open("libnothing", names: ["libpilot-does-not-exist.so.9"], folders: ["/nonexistent"]) {
            XCTAssertTrue(why.reason.contains("libpilot-does-not-exist.so.9"), "the reason must name what was tried: \(why)")
        } else {
            XCTFail("a missing library must not load")
        }
    }

    func testDeviceRequestsParseAndResolveWithTheirReasons() throws {
        XCTAssertEqual(try DeviceRequest(parsing: "auto"), .auto)
        XCTAssertEqual(try DeviceRequest(parsing: "CPU"), .cpu)
        XCTAssertEqual(try DeviceRequest(parsing: "cuda"), .cuda(0))
        XCTAssertEqual(try DeviceRequest(parsing: "cuda:2"), .cuda(2))
        XCTAssertThrowsError(try DeviceRequest(parsing: "cuda:-1"))
        XCTAssertThrowsError(try DeviceRequest(parsing: "tpu"))
        XCTAssertThrowsError(try ComputePrecision(parsing: "fp8"))

        let none = { CUDAProbe(unavailableReason: "the NVIDIA driver library (libcuda.so.1) not found") }
        let auto = try DeviceRequest.auto.resolve(precision: nil, probe: none)
        XCTAssertEqual(auto.device, .cpu)
        XCTAssertEqual(auto.precision, .fp32)
        XCTAssertTrue(auto.reason.contains("libcuda.so.1"), "auto must say why CUDA is not used: \(auto.reason)")
        XCTAssertThrowsError(try DeviceRequest.cuda(0).resolve(precision: nil, probe: none)) { e in
            XCTAssertTrue("\(e)".contains("libcuda.so.1"), "cuda:0 must fail with the reason: \(e)")
        }
        XCTAssertThrowsError(try DeviceRequest.cpu.resolve(precision: .fp16, probe: none), "fp16 needs a GPU")

        var gpu = CUDAProbe()
        gpu.devices = [CUDADeviceInfo(ordinal: 0, name: "NVIDIA H200", computeCapability: 90, totalMemory: 1 << 37, multiprocessors: 132)]
        let chosen = try DeviceRequest.auto.resolve(precision: nil, probe: { gpu })
        XCTAssertEqual(chosen.device, .cuda(0))
        XCTAssertEqual(chosen.precision, .fp16, "the GPU default precision is fp16")
        XCTAssertTrue(chosen.reason.contains("H200"))
        XCTAssertThrowsError(try DeviceRequest.cuda(1).resolve(precision: nil, probe: { gpu }), "only one device exists")
    }

    func testUnaryAndBinaryKernelCodesMatchTheKernelSource() throws {
        let source = try KernelSources.program()
        XCTAssertTrue(source.contains("U_NEG = 0, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_SQUARE, U_ABS, U_RELU, U_SIGMOID, U_TANH, U_SILU,"),
                      "the unary op order in pilot_kernels.cu must match UnaryOp.kernelCode")
        XCTAssertTrue(source.contains("U_GELU, U_GELU_TANH, U_QUICK_GELU, U_SCALE, U_SHIFT, U_POW, U_CLAMP"))
        XCTAssertEqual(UnaryOp.clamp(0, 1).kernelCode.0, 17)
        XCTAssertTrue(source.contains("OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_DIV = 3"))
        XCTAssertEqual(BinaryOp.div.kernelCode, 3)
    }

    /// Every kernel source compiles with NVRTC for sm_80 and sm_90 without
    /// an error or a warning. NVRTC needs no GPU; scripts/test.sh installs
    /// it from PyPI (nvidia-cuda-nvrtc) and sets PILOT_REQUIRE_NVRTC=1, so
    /// CI cannot skip this.
    func testEveryKernelCompilesWithNVRTCForSm80AndSm90WithoutWarnings() throws {
        let required = ProcessInfo.processInfo.environment["PILOT_REQUIRE_NVRTC"] == "1"
        guard KernelCompiler.nvrtcVersion() != nil else {
            if required { XCTFail("NVRTC not found although PILOT_REQUIRE_NVRTC=1 (PILOT_CUDA_LIBRARY_PATH?)") }
            throw XCTSkip("NVRTC not installed (scripts/test.sh installs it)")
        }
        for arch in [80, 90] {
            let out = try KernelCompiler.compileShippedKernels(architecture: arch)
            XCTAssertGreaterThan(out.cubin.count, 10_000, "sm_\(arch): a cubin is expected")
            XCTAssertEqual(out.log, "", "sm_\(arch): NVRTC must print no warning")
            // Every kernel the backend launches exists, for every element type.
            for name in Self.launchedKernels {
                for suffix in ["f32", "f16", "bf16"] {
                    XCTAssertTrue(out.cubin.range(of: Data("\(name)_\(suffix)\u{0}".utf8)) != nil,
                                  "sm_\(arch): kernel \(name)_\(suffix) missing from the cubin")
                }
            }
        }
    }

    /// The kernels CUDABackend launches by name.
    static let launchedKernels = [
        "to_float", "from_float", "gather", "copy_rows", "binary_same", "binary_broadcast", "unary", "unary_backward",
        "geglu", "geglu_backward", "sum_block", "sum_thread", "max_axis", "add_bias", "im2col", "col2im",
        "group_norm", "group_norm_backward", "group_norm_params", "layer_norm", "layer_norm_backward",
        "layer_norm_params", "softmax", "softmax_backward", "attention_probs", "attention_probs_backward",
        "upsample", "upsample_backward", "embedding", "embedding_backward",
    ]

    func testTheKernelNamesListedAreExactlyThoseTheBackendLaunches() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("Sources/Tensors/CUDA")
        var launched = Set<String>()
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) where file.hasSuffix(".swift") {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            let pattern = try NSRegularExpression(pattern: #"launch(?:Elementwise|Rows)?\("([a-z_0-9]+)""#)
            for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                launched.insert(String(text[Range(m.range(at: 1), in: text)!]))
            }
        }
        launched.formUnion(["to_float", "from_float"])
        XCTAssertEqual(launched, Set(Self.launchedKernels), "update launchedKernels when the backend launches another kernel")
    }
}

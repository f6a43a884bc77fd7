import Crypto
import Foundation

/// The CUDA C++ sources shipped with the package (Sources/Tensors/CUDA/Kernels).
public enum KernelSources {
    /// File names of every kernel source, compiled together as one program.
    public static let files = ["pilot_kernels.cu"]

    /// The text of `name`, from the package's resources (or, for a binary
    /// moved without its resource bundle, from `PILOT_KERNEL_DIR`).
    public static func text(_ name: String) throws -> String {
        // The override first: Bundle.module stops the process when the bundle is missing.
        if let dir = ProcessInfo.processInfo.environment["PILOT_KERNEL_DIR"] {
            let url = URL(fileURLWithPath: dir).appendingPathComponent(name)
            guard let s = try? String(contentsOf: url, encoding: .utf8) else {
                throw CUDAUnavailable("kernel source \(url.path) not readable (PILOT_KERNEL_DIR)")
            }
            return s
        }
        guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Kernels"),
              let s = try? String(contentsOf: url, encoding: .utf8) else {
            throw CUDAUnavailable("kernel source \(name) not found in the Tensors resources; set PILOT_KERNEL_DIR")
        }
        return s
    }

    /// All sources, concatenated in `files` order.
    public static func program() throws -> String { try files.map(text).joined(separator: "\n") }
}

/// NVRTC options and the on-disk cache of compiled kernels.
///
/// A program compiles once per device architecture: the cubin is stored
/// under `PILOT_KERNEL_CACHE` (default `~/.cache/pilot/kernels`) named by the
/// SHA-256 of source, options, architecture and NVRTC version, so a changed
/// kernel, option or compiler never reuses a stale binary.
public enum KernelCompiler {
    /// Options for `sm_XY`. No fast-math: kernels must match the CPU to 1e-4.
    public static func options(architecture: Int) -> [String] {
        ["--gpu-architecture=sm_\(architecture)", "--std=c++17"]
    }

    /// The cache key of a compilation.
    public static func cacheKey(source: String, options: [String], architecture: Int, compilerVersion: String) -> String {
        var h = SHA256()
        h.update(data: Data(source.utf8))
        h.update(data: Data([0]))
        h.update(data: Data(options.joined(separator: "\u{1}").utf8))
        h.update(data: Data([0]))
        h.update(data: Data("sm_\(architecture)|nvrtc \(compilerVersion)".utf8))
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }

    public static func cacheFolder(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let dir = environment["PILOT_KERNEL_CACHE"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        let home = environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: environment["HOME"] ?? NSTemporaryDirectory()).appendingPathComponent(".cache")
        return home.appendingPathComponent("pilot/kernels")
    }

    /// The result of one NVRTC compilation.
    public struct Output {
        public let cubin: Data
        /// NVRTC's log: empty when it had nothing to say (no warning).
        public let log: String
    }

    /// Compiles `source` for `sm_<architecture>` with NVRTC; throws with
    /// NVRTC's log on an error.
    static func compile(_ nvrtc: NVRTCAPI, source: String, name: String, architecture: Int) throws -> Output {
        var program: OpaquePointer?
        let created = source.withCString { src in name.withCString { nvrtc.createProgram(&program, src, $0, 0, nil, nil) } }
        guard created == 0 else { throw CUDAError(call: "nvrtcCreateProgram", status: created, message: nvrtcMessage(nvrtc, created)) }
        defer { _ = nvrtc.destroyProgram(&program) }
        let opts = options(architecture: architecture)
        let cStrings = opts.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        let status = cStrings.map { UnsafePointer($0) }.withUnsafeBufferPointer { buf in
            nvrtc.compileProgram(program, Int32(opts.count), buf.baseAddress)
        }
        var logSize = 0
        _ = nvrtc.getProgramLogSize(program, &logSize)
        var logBytes = [CChar](repeating: 0, count: Swift.max(logSize, 1))
        if logSize > 1 { _ = nvrtc.getProgramLog(program, &logBytes) }
        let log = logBytes.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.trimmingCharacters(in: .whitespacesAndNewlines)
        guard status == 0 else {
            throw CUDAError(call: "nvrtcCompileProgram(\(name), sm_\(architecture))", status: status, message: "\(nvrtcMessage(nvrtc, status))\n\(log)")
        }
        var size = 0
        _ = nvrtc.getCUBINSize(program, &size)
        var bytes = [CChar](repeating: 0, count: size)
        let got = nvrtc.getCUBIN(program, &bytes)
        guard got == 0, size > 0 else { throw CUDAError(call: "nvrtcGetCUBIN", status: got, message: nvrtcMessage(nvrtc, got)) }
        return Output(cubin: bytes.withUnsafeBytes { Data($0) }, log: log)
    }

    static func nvrtcMessage(_ nvrtc: NVRTCAPI, _ status: Int32) -> String {
        nvrtc.getErrorString(status).map { String(cString: $0) } ?? ""
    }

    /// Compiles every shipped kernel source for `architecture` with the
    /// NVRTC found on this machine; used by the CI test that needs no GPU.
    /// Returns the cubin size and NVRTC's log.
    public static func compileShippedKernels(architecture: Int) throws -> Output {
        let nvrtc = try loadNVRTCOnly()
        return try compile(nvrtc, source: try KernelSources.program(), name: "pilot_kernels.cu", architecture: architecture)
    }

    /// NVRTC alone (no driver needed), e.g. for compile tests on a machine without a GPU.
    static func loadNVRTCOnly() throws -> NVRTCAPI {
        let (h, path) = try CUDALibrarySearch.open("NVRTC (libnvrtc.so)", names: CUDALibrarySearch.nvrtcNames,
                                                   folders: CUDALibrarySearch.folders()).get()
        CUDARuntime.preloadBuiltins(besides: path)
        return try NVRTCAPI(handle: h, path: path)
    }

    /// The NVRTC version this machine has, when it has one.
    public static func nvrtcVersion() -> String? { (try? loadNVRTCOnly())?.versionString }

    /// The cubin for the shipped kernels on `architecture`: from the disk
    /// cache when present, else compiled and stored (atomically).
    static func cubin(_ nvrtc: NVRTCAPI, architecture: Int) throws -> Data {
        let source = try KernelSources.program()
        let key = cacheKey(source: source, options: options(architecture: architecture), architecture: architecture,
                           compilerVersion: nvrtc.versionString)
        let folder = cacheFolder()
        let file = folder.appendingPathComponent("\(key).cubin")
        if let cached = try? Data(contentsOf: file), !cached.isEmpty { return cached }
        let out = try compile(nvrtc, source: source, name: "pilot_kernels.cu", architecture: architecture)
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let temp = folder.appendingPathComponent(".\(key).\(getpid()).tmp")
        if (try? out.cubin.write(to: temp)) != nil {
            if rename(temp.path, file.path) != 0 { try? FileManager.default.removeItem(at: temp) }
        }
        return out.cubin
    }
}

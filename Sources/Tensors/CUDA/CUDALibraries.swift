import Foundation

/// Why CUDA cannot be used, said the way `pilot info` and the fallback
/// log line say it.
public struct CUDAUnavailable: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A CUDA library call that failed: which call, its status and the
/// library's own words for it.
public struct CUDAError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let status: Int32
    public let message: String
    public var description: String { "\(call) failed with status \(status)\(message.isEmpty ? "" : ": \(message)")" }
}

/// Where the CUDA libraries are looked for, in order. Nothing here needs
/// CUDA's headers or libraries at build time: every symbol is found with
/// `dlsym` and called through a C function type declared in this module.
///
/// - `PILOT_CUDA_LIBRARY_PATH` (colon-separated folders) first;
/// - then the dynamic loader's own search (`LD_LIBRARY_PATH`, ld.so.cache);
/// - then the usual install folders: the driver's (`/usr/local/nvidia/lib64`,
///   `/usr/lib/x86_64-linux-gnu`), a CUDA toolkit (`/usr/local/cuda/lib64`),
///   and the `nvidia/*/lib` folders of NVIDIA's Python wheels in any
///   `site-packages` under `/usr`, `/opt` and `~/.local`.
public enum CUDALibrarySearch {
    /// File names tried for each library, newest first.
    public static let driverNames = ["libcuda.so.1", "libcuda.so"]
    public static let cublasNames = ["libcublas.so.13", "libcublas.so.12", "libcublas.so"]
    public static let nvrtcNames = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]

    /// Folders to try after the loader's own search.
    public static func folders(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var out: [String] = []
        if let extra = environment["PILOT_CUDA_LIBRARY_PATH"] {
            out += extra.split(separator: ":").map(String.init).filter { !$0.isEmpty }
        }
        out += ["/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64",
                "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"]
        out += wheelFolders(environment: environment)
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    /// `nvidia/<component>/lib` folders of pip-installed NVIDIA wheels.
    static func wheelFolders(environment: [String: String]) -> [String] {
        let fm = FileManager.default
        var roots: [String] = []
        if let env = environment["PILOT_CUDA_WHEELS"] { roots.append(env) }
        var pythonRoots = ["/usr/lib", "/usr/local/lib", "/opt"]
        if let home = environment["HOME"] { pythonRoots.append(home + "/.local/lib") }
        // site-packages / dist-packages up to three levels below each root
        // (e.g. /opt/torch/.venv/lib/python3.12/site-packages).
        for root in pythonRoots {
            var frontier = [root]
            for _ in 0..<4 {
                var next: [String] = []
                for dir in frontier {
                    guard let items = try? fm.contentsOfDirectory(atPath: dir) else { continue }
                    for item in items {
                        let path = dir + "/" + item
                        if item == "site-packages" || item == "dist-packages" {
                            roots.append(path)
                        } else if item.hasPrefix("python3") || item == "lib" || item == ".venv" || item == "venv"
                                    || root == "/opt" && dir == "/opt" {
                            next.append(path)
                        }
                    }
                }
                frontier = next
            }
        }
        var out: [String] = []
        for root in roots {
            let nvidia = root.hasSuffix("/nvidia") ? root : root + "/nvidia"
            guard let parts = try? fm.contentsOfDirectory(atPath: nvidia) else { continue }
            for part in parts.sorted() where fm.fileExists(atPath: nvidia + "/" + part + "/lib") {
                out.append(nvidia + "/" + part + "/lib")
            }
        }
        return out
    }

    /// Opens the first of `names` found, by the loader's search and then in
    /// `folders`; the error lists what was tried.
    public static func open(_ what: String, names: [String], folders: [String]) -> Result<(UnsafeMutableRawPointer, String), CUDAUnavailable> {
        for name in names {
            if let h = dlopen(name, RTLD_NOW | RTLD_GLOBAL) { return .success((h, name)) }
        }
        for folder in folders {
            for name in names {
                let path = folder + "/" + name
                guard FileManager.default.fileExists(atPath: path) else { continue }
                if let h = dlopen(path, RTLD_NOW | RTLD_GLOBAL) { return .success((h, path)) }
            }
        }
        let last = dlerror().map { String(cString: $0) } ?? ""
        return .failure(CUDAUnavailable("\(what) not found (tried \(names.joined(separator: ", ")) through the loader and in \(folders.count) folders; set PILOT_CUDA_LIBRARY_PATH)\(last.isEmpty ? "" : "; last loader error: \(last)")"))
    }
}

/// Looks up `name` in `handle` as the C function type `T`.
func cudaSymbol<T>(_ handle: UnsafeMutableRawPointer, _ name: String) throws -> T {
    guard let sym = dlsym(handle, name) else {
        throw CUDAUnavailable("symbol \(name) missing from a loaded CUDA library (too old a version?)")
    }
    return unsafeBitCast(sym, to: T.self)
}

// MARK: - The driver API (libcuda.so.1)

typealias CUresult = Int32
typealias CUdevice = Int32
typealias CUdeviceptr = UInt64
typealias CUhandle = OpaquePointer

/// The driver entry points PILOT calls, resolved once.
struct CUDADriverAPI: @unchecked Sendable {
    let path: String
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<CUdevice>, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, CUdevice) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, CUdevice) -> CUresult
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, CUdevice) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<CUhandle?>, CUdevice) -> CUresult
    let cuCtxSetCurrent: @convention(c) (CUhandle?) -> CUresult
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<CUhandle?>, UInt32) -> CUresult
    let cuStreamSynchronize: @convention(c) (CUhandle?) -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemAllocHost: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int) -> CUresult
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> CUresult
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> CUresult
    let cuMemcpyHtoDAsync: @convention(c) (CUdeviceptr, UnsafeRawPointer?, Int, CUhandle?) -> CUresult
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, CUdeviceptr, Int, CUhandle?) -> CUresult
    let cuMemcpyDtoDAsync: @convention(c) (CUdeviceptr, CUdeviceptr, Int, CUhandle?) -> CUresult
    let cuMemsetD8Async: @convention(c) (CUdeviceptr, UInt8, Int, CUhandle?) -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<CUhandle?>, UnsafeRawPointer) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<CUhandle?>, CUhandle?, UnsafePointer<CChar>) -> CUresult
    let cuFuncSetAttribute: @convention(c) (CUhandle?, Int32, Int32) -> CUresult
    let cuLaunchKernel: @convention(c) (CUhandle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUhandle?,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult

    init(handle h: UnsafeMutableRawPointer, path: String) throws {
        self.path = path
        cuInit = try cudaSymbol(h, "cuInit")
        cuDriverGetVersion = try cudaSymbol(h, "cuDriverGetVersion")
        cuDeviceGetCount = try cudaSymbol(h, "cuDeviceGetCount")
        cuDeviceGet = try cudaSymbol(h, "cuDeviceGet")
        cuDeviceGetName = try cudaSymbol(h, "cuDeviceGetName")
        cuDeviceGetAttribute = try cudaSymbol(h, "cuDeviceGetAttribute")
        cuDeviceTotalMem = try cudaSymbol(h, "cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try cudaSymbol(h, "cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try cudaSymbol(h, "cuCtxSetCurrent")
        cuStreamCreate = try cudaSymbol(h, "cuStreamCreate")
        cuStreamSynchronize = try cudaSymbol(h, "cuStreamSynchronize")
        cuMemAlloc = try cudaSymbol(h, "cuMemAlloc_v2")
        cuMemFree = try cudaSymbol(h, "cuMemFree_v2")
        cuMemAllocHost = try cudaSymbol(h, "cuMemAllocHost_v2")
        cuMemFreeHost = try cudaSymbol(h, "cuMemFreeHost")
        cuMemGetInfo = try cudaSymbol(h, "cuMemGetInfo_v2")
        cuMemcpyHtoDAsync = try cudaSymbol(h, "cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try cudaSymbol(h, "cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try cudaSymbol(h, "cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try cudaSymbol(h, "cuMemsetD8Async")
        cuModuleLoadData = try cudaSymbol(h, "cuModuleLoadData")
        cuModuleGetFunction = try cudaSymbol(h, "cuModuleGetFunction")
        cuFuncSetAttribute = try cudaSymbol(h, "cuFuncSetAttribute")
        cuLaunchKernel = try cudaSymbol(h, "cuLaunchKernel")
        cuGetErrorString = try cudaSymbol(h, "cuGetErrorString")
    }

    func message(_ status: CUresult) -> String {
        var p: UnsafePointer<CChar>?
        guard cuGetErrorString(status, &p) == 0, let p else { return "" }
        return String(cString: p)
    }

    /// Throws `CUDAError` naming `call` unless `status` is CUDA_SUCCESS.
    func check(_ status: CUresult, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        throw CUDAError(call: call(), status: status, message: message(status))
    }
}

// MARK: - cuBLAS

/// cuBLAS's data-type and compute-type codes (library_types.h, cublas_api.h).
enum CUBLASCode {
    static let opN: Int32 = 0, opT: Int32 = 1
    static let realF32: Int32 = 0, realF16: Int32 = 2, realBF16: Int32 = 14
    static let compute32F: Int32 = 68, compute32FFastTF32: Int32 = 77
    static let gemmDefault: Int32 = -1
    static let defaultMath: Int32 = 0

    static func dataType(_ t: ElementType) -> Int32 {
        switch t {
        case .float32: return realF32
        case .float16: return realF16
        case .bfloat16: return realBF16
        }
    }
}

struct CUBLASAPI: @unchecked Sendable {
    let path: String
    let create: @convention(c) (UnsafeMutablePointer<CUhandle?>) -> Int32
    let setStream: @convention(c) (CUhandle?, CUhandle?) -> Int32
    let setMathMode: @convention(c) (CUhandle?, Int32) -> Int32
    let getVersion: @convention(c) (CUhandle?, UnsafeMutablePointer<Int32>) -> Int32
    let setWorkspace: @convention(c) (CUhandle?, UnsafeMutableRawPointer?, Int) -> Int32
    /// cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA,
    /// B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType, algo)
    let gemmStridedBatchedEx: @convention(c) (CUhandle?, Int32, Int32, Int32, Int32, Int32, UnsafeRawPointer,
                                              UnsafeRawPointer?, Int32, Int32, Int64,
                                              UnsafeRawPointer?, Int32, Int32, Int64, UnsafeRawPointer,
                                              UnsafeMutableRawPointer?, Int32, Int32, Int64, Int32, Int32, Int32) -> Int32

    init(handle h: UnsafeMutableRawPointer, path: String) throws {
        self.path = path
        create = try cudaSymbol(h, "cublasCreate_v2")
        setStream = try cudaSymbol(h, "cublasSetStream_v2")
        setMathMode = try cudaSymbol(h, "cublasSetMathMode")
        getVersion = try cudaSymbol(h, "cublasGetVersion_v2")
        setWorkspace = try cudaSymbol(h, "cublasSetWorkspace_v2")
        gemmStridedBatchedEx = try cudaSymbol(h, "cublasGemmStridedBatchedEx")
    }
}

// MARK: - NVRTC

struct NVRTCAPI: @unchecked Sendable {
    let path: String
    let version: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    let getErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    let createProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?,
                                       Int32, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let compileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    let getProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    let getProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32
    let getCUBINSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    let getCUBIN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32
    let destroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32

    init(handle h: UnsafeMutableRawPointer, path: String) throws {
        self.path = path
        version = try cudaSymbol(h, "nvrtcVersion")
        getErrorString = try cudaSymbol(h, "nvrtcGetErrorString")
        createProgram = try cudaSymbol(h, "nvrtcCreateProgram")
        compileProgram = try cudaSymbol(h, "nvrtcCompileProgram")
        getProgramLogSize = try cudaSymbol(h, "nvrtcGetProgramLogSize")
        getProgramLog = try cudaSymbol(h, "nvrtcGetProgramLog")
        getCUBINSize = try cudaSymbol(h, "nvrtcGetCUBINSize")
        getCUBIN = try cudaSymbol(h, "nvrtcGetCUBIN")
        destroyProgram = try cudaSymbol(h, "nvrtcDestroyProgram")
    }

    /// "13.0" and the like.
    var versionString: String {
        var major: Int32 = 0, minor: Int32 = 0
        _ = version(&major, &minor)
        return "\(major).\(minor)"
    }
}

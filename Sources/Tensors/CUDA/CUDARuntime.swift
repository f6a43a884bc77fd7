import Foundation

/// One CUDA device as the driver describes it.
public struct CUDADeviceInfo: Sendable, Equatable {
    public let ordinal: Int
    public let name: String
    /// e.g. 90 for sm_90.
    public let computeCapability: Int
    public let totalMemory: Int
    public let multiprocessors: Int
}

/// What the CUDA libraries on this machine offer, or why they cannot be used.
public struct CUDAProbe: Sendable {
    public var driverPath: String?
    public var cublasPath: String?
    public var nvrtcPath: String?
    /// e.g. "13.0".
    public var driverVersion: String?
    public var cublasVersion: String?
    public var nvrtcVersion: String?
    public var devices: [CUDADeviceInfo] = []
    /// Nil when CUDA can run kernels here.
    public var unavailableReason: String?

    public init(unavailableReason: String? = nil) { self.unavailableReason = unavailableReason }

    /// Lines for `pilot info`.
    public var summary: [String] {
        var out: [String] = []
        if let why = unavailableReason { out.append("cuda:     not used: \(why)") }
        if let p = driverPath { out.append("driver:   \(driverVersion.map { "CUDA \($0), " } ?? "")\(p)") }
        if let p = cublasPath { out.append("cublas:   \(cublasVersion ?? "?"), \(p)") }
        if let p = nvrtcPath { out.append("nvrtc:    \(nvrtcVersion ?? "?"), \(p)") }
        for d in devices {
            out.append("cuda:\(d.ordinal):   \(d.name), sm_\(d.computeCapability), \(d.multiprocessors) SMs, \(d.totalMemory >> 20) MiB")
        }
        return out
    }
}

/// The loaded CUDA libraries (process-wide, loaded on first use).
public final class CUDARuntime: @unchecked Sendable {
    let driver: CUDADriverAPI
    let cublas: CUBLASAPI
    let nvrtc: NVRTCAPI
    public let probe: CUDAProbe

    private init(driver: CUDADriverAPI, cublas: CUBLASAPI, nvrtc: NVRTCAPI, probe: CUDAProbe) {
        self.driver = driver
        self.cublas = cublas
        self.nvrtc = nvrtc
        self.probe = probe
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var loaded: Result<CUDARuntime, CUDAUnavailable>?

    /// The runtime, loading the libraries the first time.
    public static func shared() -> Result<CUDARuntime, CUDAUnavailable> {
        lock.lock()
        defer { lock.unlock() }
        if let loaded { return loaded }
        let r = load()
        loaded = r
        return r
    }

    /// What CUDA offers here, without failing: the reason when it cannot run.
    public static func probe() -> CUDAProbe {
        switch shared() {
        case .success(let rt): return rt.probe
        case .failure(let why):
            var p = partialProbe
            p.unavailableReason = why.reason
            return p
        }
    }

    nonisolated(unsafe) private static var partialProbe = CUDAProbe()

    /// Oldest driver we run on (CUDA 12.0 = 12000).
    public static let minimumDriverVersion: Int32 = 12000

    private static func load() -> Result<CUDARuntime, CUDAUnavailable> {
        if ProcessInfo.processInfo.environment["PILOT_CUDA"] == "0" {
            return .failure(CUDAUnavailable("disabled by PILOT_CUDA=0"))
        }
        let folders = CUDALibrarySearch.folders()
        var probe = CUDAProbe()
        do {
            let (dh, dpath) = try CUDALibrarySearch.open("the NVIDIA driver library (libcuda.so.1)", names: CUDALibrarySearch.driverNames, folders: folders).get()
            probe.driverPath = dpath
            let driver = try CUDADriverAPI(handle: dh, path: dpath)
            var version: Int32 = 0
            _ = driver.cuDriverGetVersion(&version)
            probe.driverVersion = "\(version / 1000).\(version % 1000 / 10)"
            let status = driver.cuInit(0)
            if status != 0 {
                partialProbe = probe
                return .failure(CUDAUnavailable("cuInit failed (\(status): \(driver.message(status))): no usable NVIDIA GPU or driver"))
            }
            if version < minimumDriverVersion {
                partialProbe = probe
                return .failure(CUDAUnavailable("driver too old: CUDA \(probe.driverVersion ?? "?") (need 12.0 or newer)"))
            }
            var count: Int32 = 0
            try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
            for i in 0..<Int(count) {
                var dev: CUdevice = 0
                try driver.check(driver.cuDeviceGet(&dev, Int32(i)), "cuDeviceGet")
                var name = [CChar](repeating: 0, count: 256)
                _ = driver.cuDeviceGetName(&name, 255, dev)
                var major: Int32 = 0, minor: Int32 = 0, sms: Int32 = 0
                _ = driver.cuDeviceGetAttribute(&major, 75, dev)
                _ = driver.cuDeviceGetAttribute(&minor, 76, dev)
                _ = driver.cuDeviceGetAttribute(&sms, 16, dev)
                var mem = 0
                _ = driver.cuDeviceTotalMem(&mem, dev)
                let nameText = name.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
                probe.devices.append(CUDADeviceInfo(ordinal: i, name: nameText,
                                                    computeCapability: Int(major * 10 + minor),
                                                    totalMemory: mem, multiprocessors: Int(sms)))
            }
            guard !probe.devices.isEmpty else {
                partialProbe = probe
                return .failure(CUDAUnavailable("no CUDA device found"))
            }
            if let old = probe.devices.first(where: { $0.computeCapability < 80 }) {
                partialProbe = probe
                return .failure(CUDAUnavailable("\(old.name) is sm_\(old.computeCapability); the kernels need sm_80 or newer"))
            }
            let (bh, bpath) = try CUDALibrarySearch.open("cuBLAS (libcublas.so)", names: CUDALibrarySearch.cublasNames, folders: folders).get()
            probe.cublasPath = bpath
            let cublas = try CUBLASAPI(handle: bh, path: bpath)
            let (nh, npath) = try CUDALibrarySearch.open("NVRTC (libnvrtc.so)", names: CUDALibrarySearch.nvrtcNames, folders: folders).get()
            probe.nvrtcPath = npath
            preloadBuiltins(besides: npath)
            let nvrtc = try NVRTCAPI(handle: nh, path: npath)
            probe.nvrtcVersion = nvrtc.versionString
            return .success(CUDARuntime(driver: driver, cublas: cublas, nvrtc: nvrtc, probe: probe))
        } catch let e as CUDAUnavailable {
            partialProbe = probe
            return .failure(e)
        } catch {
            partialProbe = probe
            return .failure(CUDAUnavailable("\(error)"))
        }
    }

    /// NVRTC opens `libnvrtc-builtins.so.MAJOR.MINOR` by name when it
    /// compiles; loading it from NVRTC's own folder first lets a wheel's
    /// copy be found without LD_LIBRARY_PATH.
    static func preloadBuiltins(besides nvrtcPath: String) {
        let folder = (nvrtcPath as NSString).deletingLastPathComponent
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for item in items.sorted() where item.hasPrefix("libnvrtc-builtins.so") && !item.contains(".alt.") {
            _ = dlopen(folder + "/" + item, RTLD_NOW | RTLD_GLOBAL)
        }
    }

    /// The cuBLAS version, read through a handle (needs a context).
    func cublasVersion(handle: CUhandle?) -> String {
        var v: Int32 = 0
        _ = cublas.getVersion(handle, &v)
        return "\(v / 10000).\(v / 100 % 100).\(v % 100)"
    }

    /// The CUDA backend of `device` (`Backends`' default device factory):
    /// nil when CUDA cannot run there, with the reason on standard error.
    @Sendable static func makeBackend(_ device: Device) -> (any DeviceBackend)? {
        guard case .cuda(let i) = device else { return nil }
        switch shared() {
        case .failure(let why):
            FileHandle.standardError.write(Data("pilot: CUDA is not available: \(why)\n".utf8))
            return nil
        case .success(let rt):
            guard i < rt.probe.devices.count else { return nil }
            do {
                return try CUDABackend(runtime: rt, ordinal: i)
            } catch {
                FileHandle.standardError.write(Data("pilot: cannot start CUDA on cuda:\(i): \(error)\n".utf8))
                return nil
            }
        }
    }

    /// The CUDA backend of `cuda:ordinal`, or why there is none.
    public static func backend(ordinal: Int) throws -> CUDABackend {
        guard let b = Backends.deviceBackend(for: .cuda(ordinal)) as? CUDABackend else {
            throw CUDAUnavailable(probe().unavailableReason ?? "cuda:\(ordinal) could not be started")
        }
        return b
    }
}

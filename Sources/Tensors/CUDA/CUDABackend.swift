import Foundation

/// The `Backend` for one NVIDIA GPU: device memory through a caching
/// allocator, one stream, products on cuBLAS, every other kernel from
/// pilot_kernels.cu compiled by NVRTC for the device's architecture.
///
/// Tensors on this backend hold float32, float16 or bfloat16 elements (the
/// type they were uploaded as); a kernel computes in float32 and writes the
/// type of its first device operand. Host operands (constants a model makes
/// on the CPU: masks, ones, timestep embeddings) are copied up as they come.
public final class CUDABackend: DeviceBackend, @unchecked Sendable {
    public let device: Device
    public let info: CUDADeviceInfo
    let runtime: CUDARuntime
    let driver: CUDADriverAPI
    let context: CUhandle?
    let stream: CUhandle?
    let blas: CUhandle?
    let module: CUhandle?
    public let blocks: DeviceBlockCache
    public let cublasVersion: String
    /// Whether float32 products may run on TF32 tensor cores (`--precision tf32`).
    public var allowTF32: Bool {
        get { lock.lock(); defer { lock.unlock() }; return tf32 }
        set { lock.lock(); tf32 = newValue; lock.unlock() }
    }

    private var tf32 = false
    private let lock = NSLock()
    private var functions: [String: CUhandle] = [:]
    private var staging: UnsafeMutableRawPointer?
    private var stagingBytes = 0
    private let stagingLock = NSLock()

    init(runtime: CUDARuntime, ordinal: Int) throws {
        self.runtime = runtime
        driver = runtime.driver
        info = runtime.probe.devices[ordinal]
        device = .cuda(ordinal)
        var dev: CUdevice = 0
        try driver.check(driver.cuDeviceGet(&dev, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var ctx: CUhandle?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain")
        context = ctx
        try driver.check(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        var s: CUhandle?
        try driver.check(driver.cuStreamCreate(&s, 1), "cuStreamCreate")
        stream = s
        var h: CUhandle?
        let created = runtime.cublas.create(&h)
        guard created == 0 else { throw CUDAError(call: "cublasCreate", status: created, message: "") }
        blas = h
        _ = runtime.cublas.setStream(h, s)
        cublasVersion = runtime.cublasVersion(handle: h)
        let drv = driver
        blocks = DeviceBlockCache(allocate: { bytes in
            var p: CUdeviceptr = 0
            return drv.cuMemAlloc(&p, bytes) == 0 ? p : nil
        }, release: { p in _ = drv.cuMemFree(p) })
        let arch = runtime.probe.devices[ordinal].computeCapability
        let cubin = try KernelCompiler.cubin(runtime.nvrtc, architecture: arch)
        var m: CUhandle?
        try cubin.withUnsafeBytes { raw in
            try drv.check(drv.cuModuleLoadData(&m, raw.baseAddress!), "cuModuleLoadData(pilot_kernels, sm_\(arch))")
        }
        module = m
    }

    // MARK: - Context, memory, copies

    @inline(__always)
    func makeCurrent() { _ = driver.cuCtxSetCurrent(context) }

    func fail(_ what: String, _ status: CUresult) -> Never {
        fatalError("CUDA on \(device): \(what) failed with status \(status): \(driver.message(status))")
    }

    @inline(__always)
    func check(_ status: CUresult, _ what: @autoclosure () -> String) {
        if status != 0 { fail(what(), status) }
    }

    /// Fresh, uninitialised device storage for `shape`.
    func empty(_ shape: [Int], _ type: ElementType) -> Tensor {
        let count = Shape.count(shape)
        let bytes = Swift.max(count, 1) * type.byteSize
        makeCurrent()
        guard let (address, size) = blocks.take(bytes) else {
            var free = 0, total = 0
            _ = driver.cuMemGetInfo(&free, &total)
            fatalError("CUDA out of memory on \(device): \(bytes >> 20) MiB requested, \(free >> 20) of \(total >> 20) MiB free, \(blocks.statistics.live >> 20) MiB in live tensors")
        }
        let block = DeviceBlock(address: address, size: size, cache: blocks)
        let storage = TensorStorage(device: device, address: address, count: count, elementType: type, owner: block)
        return Tensor(shape: shape, storage: storage)
    }

    func zeros(_ shape: [Int], _ type: ElementType) -> Tensor {
        let t = empty(shape, type)
        check(driver.cuMemsetD8Async(t.storage.deviceAddress, 0, Swift.max(t.storage.byteCount, 1), stream), "cuMemsetD8Async")
        return t
    }

    /// Pinned host memory of at least `bytes` for staging copies (grow-only).
    private func stagingBuffer(_ bytes: Int) -> UnsafeMutableRawPointer {
        if stagingBytes < bytes {
            if let old = staging { _ = driver.cuMemFreeHost(old) }
            let size = Swift.max(bytes, 1 << 20)
            var p: UnsafeMutableRawPointer?
            check(driver.cuMemAllocHost(&p, size), "cuMemAllocHost(\(size))")
            staging = p
            stagingBytes = size
        }
        return staging!
    }

    static let stagingChunk = 64 << 20

    /// Runs `piece(offset, count, staging)` over `bytes` in staging-sized
    /// pieces, holding the pinned buffer; each piece waits for the stream.
    private func staged(_ bytes: Int, _ piece: (Int, Int, UnsafeMutableRawPointer) -> Void) {
        stagingLock.lock()
        defer { stagingLock.unlock() }
        makeCurrent()
        var done = 0
        while done < bytes {
            let n = Swift.min(Self.stagingChunk, bytes - done)
            piece(done, n, stagingBuffer(Swift.min(bytes, Self.stagingChunk)))
            check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
            done += n
        }
    }

    /// Copies `bytes` from host `source` to device `address` through pinned staging.
    func copyToDevice(_ source: UnsafeRawPointer, _ address: UInt64, bytes: Int) {
        staged(bytes) { offset, n, buffer in
            buffer.copyMemory(from: source + offset, byteCount: n)
            check(driver.cuMemcpyHtoDAsync(address + UInt64(offset), buffer, n, stream), "cuMemcpyHtoDAsync")
        }
    }

    /// Copies `bytes` from device `address` to host `target` (waits for the stream).
    func copyToHost(_ address: UInt64, _ target: UnsafeMutableRawPointer, bytes: Int) {
        var pending: (Int, Int, UnsafeMutableRawPointer)?
        staged(bytes) { offset, n, buffer in
            if let (o, c, b) = pending { (target + o).copyMemory(from: b, byteCount: c) }
            check(driver.cuMemcpyDtoHAsync(buffer, address + UInt64(offset), n, stream), "cuMemcpyDtoHAsync")
            pending = (offset, n, buffer)
        }
        if let (o, c, b) = pending { (target + o).copyMemory(from: b, byteCount: c) }
    }

    public func upload(_ x: Tensor, as type: ElementType) -> Tensor {
        if x.device == device { return convert(x, to: type) }
        if x.device != .cpu { return upload(x.to(.cpu), as: type) }
        let f32 = empty(x.shape, .float32)
        if x.count > 0 {
            copyToDevice(UnsafeRawPointer(x.storage.pointer), f32.storage.deviceAddress, bytes: x.count * 4)
        }
        return convert(f32, to: type)
    }

    public func download(_ x: Tensor) -> Tensor {
        precondition(x.device == device, "download of a \(x.device) tensor from \(device)")
        let f32 = convert(x, to: .float32)
        let host = Tensor(shape: x.shape, storage: TensorStorage(count: x.count))
        if x.count > 0 { copyToHost(f32.storage.deviceAddress, UnsafeMutableRawPointer(host.storage.pointer), bytes: x.count * 4) }
        return host
    }

    public func synchronize() {
        makeCurrent()
        check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize")
    }

    /// `x` as `type` on this device (a conversion kernel when it differs).
    func convert(_ x: Tensor, to type: ElementType) -> Tensor {
        precondition(x.device == device)
        if x.elementType == type { return x.detached }
        let n = x.count
        if x.elementType == .float32 {
            let y = empty(x.shape, type)
            launchElementwise("from_float", type, n) { $0.pointer(x); $0.pointer(y); $0.i64(n) }
            return y
        }
        let f = empty(x.shape, .float32)
        launchElementwise("to_float", x.elementType, n) { $0.pointer(x); $0.pointer(f); $0.i64(n) }
        return type == .float32 ? f : convert(f, to: type)
    }

    /// The element type an op over `tensors` computes in: that of the first
    /// operand already on this device (float32 when none is).
    func workingType(_ tensors: Tensor?...) -> ElementType {
        for case let t? in tensors where t.device == device { return t.elementType }
        return .float32
    }

    /// `x` on this device as `type` (uploaded or converted when needed).
    func operand(_ x: Tensor, _ type: ElementType) -> Tensor {
        if x.device == device && x.elementType == type { return x }
        return upload(x, as: type)
    }

    // MARK: - Launching

    func function(_ name: String) -> CUhandle {
        lock.lock()
        defer { lock.unlock() }
        if let f = functions[name] { return f }
        var f: CUhandle?
        let status = name.withCString { driver.cuModuleGetFunction(&f, module, $0) }
        guard status == 0, let f else { fail("cuModuleGetFunction(\(name))", status) }
        functions[name] = f
        return f
    }

    /// Launches `base_<type>` on `grid` × `block` threads.
    func launch(_ base: String, _ type: ElementType, grid: Int, block: Int, shared: Int = 0,
                _ fill: (inout KernelArguments) -> Void) {
        let f = function("\(base)_\(type.kernelSuffix)")
        var args = KernelArguments()
        fill(&args)
        defer { args.release() }
        makeCurrent()
        var pointers: [UnsafeMutableRawPointer?] = args.slots.map { Optional($0) }
        let status = pointers.withUnsafeMutableBufferPointer { buf in
            driver.cuLaunchKernel(f, UInt32(grid), 1, 1, UInt32(block), 1, 1, UInt32(shared), stream, buf.baseAddress, nil)
        }
        if status != 0 { fail("cuLaunchKernel(\(base)_\(type.kernelSuffix), grid \(grid), block \(block))", status) }
    }

    func launchElementwise(_ base: String, _ type: ElementType, _ n: Int, _ fill: (inout KernelArguments) -> Void) {
        guard n > 0 else { return }
        launch(base, type, grid: LaunchShape.elementwiseBlocks(n, multiprocessors: info.multiprocessors),
               block: LaunchShape.threads, fill)
    }

    func launchRows(_ base: String, _ type: ElementType, rows: Int, width: Int, _ fill: (inout KernelArguments) -> Void) {
        guard rows > 0 else { return }
        launch(base, type, grid: LaunchShape.rowBlocks(rows), block: LaunchShape.rowThreads(width), fill)
    }

    /// Row-major `C = alpha·op(A)·op(B) + beta·C`, batched with element
    /// strides; cuBLAS is column-major, so it computes Cᵀ = op(B)ᵀ·op(A)ᵀ.
    func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
              a: UInt64, aType: ElementType, lda: Int, strideA: Int = 0,
              b: UInt64, bType: ElementType, ldb: Int, strideB: Int = 0,
              beta: Float = 0, c: UInt64, cType: ElementType, ldc: Int, strideC: Int = 0, batch: Int = 1) {
        guard m > 0, n > 0, batch > 0 else { return }
        makeCurrent()
        var al = alpha, be = beta
        let allF32 = aType == .float32 && bType == .float32 && cType == .float32
        let compute = allF32 && allowTF32 ? CUBLASCode.compute32FFastTF32 : CUBLASCode.compute32F
        let status = runtime.cublas.gemmStridedBatchedEx(
            blas, transB ? CUBLASCode.opT : CUBLASCode.opN, transA ? CUBLASCode.opT : CUBLASCode.opN,
            Int32(n), Int32(m), Int32(k), &al,
            UnsafeRawPointer(bitPattern: UInt(b)), CUBLASCode.dataType(bType), Int32(ldb), Int64(strideB),
            UnsafeRawPointer(bitPattern: UInt(a)), CUBLASCode.dataType(aType), Int32(lda), Int64(strideA), &be,
            UnsafeMutableRawPointer(bitPattern: UInt(c)), CUBLASCode.dataType(cType), Int32(ldc), Int64(strideC),
            Int32(batch), compute, CUBLASCode.gemmDefault)
        if status != 0 {
            fatalError("cublasGemmStridedBatchedEx on \(device) failed with status \(status) (m \(m), n \(n), k \(k), batch \(batch), types \(aType)/\(bType)/\(cType))")
        }
    }

    /// Device memory use of this backend.
    public var memoryStatistics: DeviceBlockCache.Statistics { blocks.statistics }
}

extension Tensor {
    /// Byte address of element `index` of device storage.
    func deviceAddress(at index: Int) -> UInt64 { storage.deviceAddress + UInt64(index * elementType.byteSize) }
}

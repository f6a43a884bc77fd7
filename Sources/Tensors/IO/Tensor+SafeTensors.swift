import SafeTensors

extension Tensor {
    /// Loads tensor `name` from a safetensors file as Float32: an aligned F32
    /// tensor is a zero-copy view of the file's read-only mapping (the file
    /// stays mapped while the tensor lives); F16/BF16 widen straight into new
    /// storage; other dtypes go through `floats`.
    public init(_ file: SafeTensorsFile, _ name: String) throws {
        let info = try file.info(name)
        let n = info.elementCount
        switch info.dtype {
        case .F32 where file.isMapped:
            let view: TensorStorage? = try file.withUnsafeRawBytes(name) { raw in
                guard let base = raw.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 else { return nil }
                let p = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Float.self))
                return TensorStorage(borrowing: p, count: n, owner: file)
            }
            if let view {
                self.init(shape: info.shape, storage: view)
                return
            }
        case .F16, .BF16:
            let storage = TensorStorage(count: n)
            let half = info.dtype == .F16
            try file.withUnsafeRawBytes(name) { raw in
                let dst = storage.pointer
                for i in 0..<n {
                    let bits = raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                    dst[i] = half ? HalfPrecision.float(fromFloat16Bits: UInt16(littleEndian: bits))
                                  : HalfPrecision.float(fromBFloat16Bits: UInt16(littleEndian: bits))
                }
            }
            self.init(shape: info.shape, storage: storage)
            return
        default:
            break
        }
        self.init(shape: info.shape, values: try file.floats(name))
    }
}

extension SafeTensorsWriter {
    /// Adds `tensor` (host values) under `name`, narrowed to `dtype`.
    public mutating func add(_ name: String, _ tensor: Tensor, dtype: SafeTensorsDType = .F32) throws {
        try add(name, shape: tensor.shape, floats: tensor.scalars, dtype: dtype)
    }
}

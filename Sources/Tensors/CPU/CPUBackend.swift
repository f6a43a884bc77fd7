/// The CPU backend: OpenBLAS `sgemm` for every matrix product (convolution
/// through im2col), Swift loops that LLVM vectorises for the rest, and
/// `parallelFor` over `ComputeThreads.count` threads.
public final class CPUBackend: Backend, @unchecked Sendable {
    public let device = Device.cpu
    init() {}

    /// A fresh, uninitialised host tensor.
    @inline(__always)
    func empty(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: TensorStorage(count: Shape.count(shape)))
    }
}

extension Tensor {
    /// Host pointer for kernels (storage is written only by the op creating it).
    @inline(__always)
    var ptr: UnsafeMutablePointer<Float> { storage.pointer }
}

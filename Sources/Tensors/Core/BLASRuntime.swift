import CBLAS

/// What OpenBLAS is running with.
///
/// OpenBLAS picks its kernels (its "core type") when the library loads, from
/// the CPU or from `OPENBLAS_CORETYPE`. On this project's AVX-512 build
/// machines the environment pins `OPENBLAS_CORETYPE=Haswell` (AVX2
/// kernels); unset, OpenBLAS 0.3.21 selects Cooperlake (AVX-512), about
/// 1.85× faster at sgemm (Benchmarks/README.md). We honour the environment.
public enum BLASRuntime {
    /// The kernel family OpenBLAS chose (e.g. "Haswell", "Cooperlake").
    public static var coreName: String {
        openblas_get_corename().map { String(cString: $0) } ?? "unknown"
    }
}

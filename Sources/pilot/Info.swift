import ArgumentParser
import CBLAS
import CZeroMQ
import Foundation
import Tensors

/// `pilot info`: what this build is and what it found on this machine.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the version, compute backend, thread count and linked libraries.")

    @Option(name: .long, help: "Compute threads (default: PILOT_THREADS or all cores).")
    var threads: Int?

    func run() throws {
        if let threads { ComputeThreads.count = threads }
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        let blasConfig = openblas_get_config().map { String(cString: $0) } ?? "unknown"
        print("pilot \(PilotVersion.string)")
        let probe = CUDARuntime.probe()
        if let why = probe.unavailableReason {
            print("device:   cpu (CUDA not used: \(why))")
        } else {
            print("device:   cuda:0 by default (--device auto), cpu available")
        }
        print("backends: cpu" + (probe.unavailableReason == nil ? ", " + probe.devices.map { "cuda:\($0.ordinal)" }.joined(separator: ", ") : ""))
        for line in probe.summary { print(line) }
        if probe.nvrtcPath == nil, let version = KernelCompiler.nvrtcVersion() { print("nvrtc:    \(version) (compiler only)") }
        print("threads:  \(ComputeThreads.count) of \(ProcessInfo.processInfo.activeProcessorCount) cores (OpenBLAS and parallel loops)")
        print("openblas: \(blasConfig), kernels \(BLASRuntime.coreName)"
              + (ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { " (OPENBLAS_CORETYPE=\($0))" } ?? ""))
        print("libzmq:   \(major).\(minor).\(patch)")
    }
}

import CBLAS
import Foundation
import Tensors

// pilot-bench: times the tensor ops against this machine's own raw sgemm and
// memcpy, and merges rounds of ours and the PyTorch peer. The driver is
// Benchmarks/tensor_ops.sh; Benchmarks/README.md says what each row measures.
// `pilot-bench models …` times whole Stable Diffusion components and PILOT
// (ModelBench.swift; driver Benchmarks/models.sh).

/// Progress and errors go to stderr, so `--json` output stays clean on stdout.
func log(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// OpenBLAS's config string and the kernels it picked, for the records' `library`.
func blasDescription() -> String {
    (openblas_get_config().map { String(cString: $0) } ?? "OpenBLAS (unknown config)")
        + ", kernels \(BLASRuntime.coreName)"
}

func runCases(threads: Int, reps: Int, only: Set<String>?) -> BenchRecord {
    ComputeThreads.count = threads
    let blas = blasDescription()
    var results: [CaseResult] = []
    for c in TensorOpCases.all where only?.contains(c.op) ?? true {
        let call = c.prepare()
        let samples = Stopwatch.samples(reps: reps, call)
        let ms = median(samples)
        log(c.op.padding(toLength: 16, withPad: " ", startingAt: 0) + String(format: "%9.2f ms", ms))
        var flops: Double?, bytes: Double?
        switch c.work {
        case .flops(let f): flops = f
        case .bytes(let b): bytes = b
        }
        results.append(CaseResult(op: c.op, shape: c.shape, flops: flops, bytes: bytes,
                                  reference: c.reference.rawValue, targetPercent: c.targetPercent,
                                  medianMs: ms, samplesMs: samples))
    }
    return BenchRecord(schema: BenchRecord.currentSchema, implementation: "pilot", library: blas,
                       threads: ComputeThreads.count, reps: reps, results: results)
}

do {
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.first == "daemon" {
        try DaemonBench.main(Array(arguments.dropFirst()))
        exit(0)
    }
    if arguments.first == "models" {
        try ModelBench.main(Array(arguments.dropFirst()))
        exit(0)
    }
    if arguments.first == "gpu" {
        try GPUBench.main(Array(arguments.dropFirst()))
        exit(0)
    }
    switch try Command.parse(arguments) {
    case .help:
        print(Command.usage)
    case .list:
        for c in TensorOpCases.all { print("\(c.op)\t\(c.shape)") }
    case let .run(threads, reps, only, json):
        let record = runCases(threads: threads, reps: reps, only: only)
        print(json ? try record.encoded() : try MergedReport(ours: [record]).render())
    case let .report(oursPaths, peerPaths):
        let ours = try oursPaths.map(BenchRecord.decode(contentsOf:))
        let peer = try peerPaths.map(BenchRecord.decode(contentsOf:))
        print(try MergedReport(ours: ours, peer: peer).render())
    }
} catch {
    log("pilot-bench: \(error)")
    exit(2)
}

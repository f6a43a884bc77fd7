import Diffusion
import Foundation
import Tensors

/// `pilot-bench models`: loads a diffusers folder and times one model case.
enum ModelBench {
    static func main(_ arguments: [String]) throws {
        switch try ModelCommand.parse(arguments) {
        case .help:
            print(ModelCommand.usage)
        case .list:
            for c in ModelCases.all { print("\(c.name)\t\(c.shape)") }
        case let .run(name, model, threads, reps, json, profile):
            guard let c = ModelCases.named(name) else { throw BenchError.usage("unknown case \(name)") }
            let opProfile = profile ? OpProfile() : nil
            let record = try run(c, model: model, threads: threads, reps: reps, profile: opProfile)
            if let opProfile {
                FileHandle.standardError.write(Data(("\(c.name): kernels over \(record.results[0].reps) timed call(s)\n\n"
                    + opProfile.table(top: 30)).utf8))
            }
            print(json ? try record.encoded() : try ModelReport(ours: [record]).render())
        case let .report(oursPaths, peerPaths):
            let ours = try oursPaths.map(ModelRecord.decode(contentsOf:))
            let peer = try peerPaths.map(ModelRecord.decode(contentsOf:))
            print(try ModelReport(ours: ours, peer: peer).render())
        }
    }

    /// Loads the folder (untimed in the case), makes the inputs, then runs
    /// the warm-ups and the timed calls. The peak is reset after loading, so
    /// the record tells the loader's peak from the case's.
    static func run(_ c: ModelCase, model path: String, threads: Int, reps: Int,
                    profile: OpProfile? = nil) throws -> ModelRecord {
        ComputeThreads.count = threads
        if c.compactWeights { WeightPlacement.current = WeightPlacement(device: .cpu, compactHost: true) }
        let loadStart = Stopwatch.now()
        let model = try StableDiffusionModel.load(path: path)
        let loadMs = (Stopwatch.now() - loadStart) * 1e3
        let call = try c.prepare(model)
        let loadedRSS = ResidentMemory.current()
        let loadPeak = ResidentMemory.peak()
        let reset = ResidentMemory.resetPeak()
        log("\(c.name): loaded in \(String(format: "%.1f", loadMs / 1e3)) s, RSS \(gib(loadedRSS ?? 0)) GiB "
            + "(loader's peak \(gib(loadPeak)) GiB)")

        for _ in 0..<c.warmups { _ = try call() }
        Backends.profile(into: profile)
        defer { Backends.profile(into: nil) }
        var samples: [Double] = [], cpuSamples: [Double] = []
        var phases: [Phase] = []
        for _ in 0..<(c.fixedReps ?? reps) {
            let start = Stopwatch.now(), cpuStart = ResidentMemory.cpuSeconds()
            phases = try call()
            samples.append((Stopwatch.now() - start) * 1e3)
            cpuSamples.append((ResidentMemory.cpuSeconds() - cpuStart) * 1e3)
        }
        let runPeak = ResidentMemory.peak()
        let ms = median(samples)
        log("\(c.name): \(String(format: "%.2f", ms / 1e3)) s (median of \(samples.count)), peak RSS \(gib(max(loadPeak, runPeak))) GiB")

        let result = ModelCaseResult(
            name: c.name, shape: c.shape, warmups: c.warmups, reps: samples.count, medianMs: ms, samplesMs: samples,
            cpuMedianMs: median(cpuSamples), cpuSamplesMs: cpuSamples,
            phases: phases.isEmpty ? nil : phases, timeRatioTarget: c.timeRatioTarget,
            rssRatioTarget: 1,   // every case: peak RSS ≤ PyTorch's (the project's issues)
            loadMs: loadMs, loadedRssBytes: loadedRSS,
            loadPeakRssBytes: loadPeak, runPeakRssBytes: runPeak, peakReset: reset,
            peakRssBytes: max(loadPeak, runPeak))
        return ModelRecord(schema: ModelRecord.currentSchema, implementation: "pilot", library: blasDescription(),
                           threads: ComputeThreads.count, model: path, results: [result])
    }

    static func gib(_ bytes: Int) -> String { String(format: "%.2f", Double(bytes) / Double(1 << 30)) }
}

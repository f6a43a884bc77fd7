import Foundation

/// What `pilot-bench models …` was asked to do.
enum ModelCommand {
    /// Load the folder and time one case (one per process, so the peak RSS is the case's).
    case run(name: String, model: String, threads: Int, reps: Int, json: Bool, profile: Bool)
    /// Merge records written by `--json` runs (ours and optionally the peer's).
    case report(ours: [String], peer: [String])
    case list
    case help

    static let defaultModel = "/work/bench-models/sd15-random"

    static let usage = """
        usage: pilot-bench models CASE [--model DIR] [--threads N] [--reps N] [--json] [--profile]
               pilot-bench models report --ours FILE… [--peer FILE…]
               pilot-bench models --list

          CASE          one of --list; one case per process, so the peak RSS is that case's
          --model DIR   diffusers folder, e.g. from Benchmarks/models/make_random_sd15.py
                        (default: $PILOT_BENCH_MODEL or \(defaultModel))
          --threads N   compute threads (default: all cores); sets ComputeThreads.count,
                        which also sets OpenBLAS's thread count
          --reps N      timed calls after one warm-up (default 3); each case reports the
                        median. pilot_run_256 always runs once, without a warm-up
          --json        print the run as a JSON record instead of a table
          --profile     time every kernel of the timed calls (not the warm-up) and print
                        per-kernel totals and the costliest operand shapes to stderr
          report        merge rounds: each case's time is the median of the rounds' medians,
                        its peak RSS the median of the rounds' peaks
        """

    static func parse(_ arguments: [String]) throws -> ModelCommand {
        var args = arguments[...]
        if args.first == "report" {
            let (ours, peer) = try ReportArguments.parse(args.dropFirst(), command: "models report", usage: usage)
            return .report(ours: ours, peer: peer)
        }

        var name: String?
        var model = ProcessInfo.processInfo.environment["PILOT_BENCH_MODEL"] ?? defaultModel
        var threads = ProcessInfo.processInfo.activeProcessorCount
        var reps = 3
        var json = false
        var profile = false
        while let arg = args.popFirst() {
            switch arg {
            case "--model":
                guard let dir = args.popFirst() else { throw BenchError.usage("--model needs a folder") }
                model = dir
            case "--threads": threads = try ReportArguments.positive(args.popFirst(), for: arg)
            case "--reps": reps = try ReportArguments.positive(args.popFirst(), for: arg)
            case "--json": json = true
            case "--profile": profile = true
            case "--list": return .list
            case "-h", "--help": return .help
            case _ where !arg.hasPrefix("-") && name == nil:
                guard ModelCases.named(arg) != nil else {
                    throw BenchError.usage("unknown case \(arg); known: \(ModelCases.all.map(\.name))")
                }
                name = arg
            default: throw BenchError.usage("unexpected argument \(arg)\n\(usage)")
            }
        }
        guard let name else { throw BenchError.usage("models: name one case\n\(usage)") }
        return .run(name: name, model: model, threads: threads, reps: reps, json: json, profile: profile)
    }
}

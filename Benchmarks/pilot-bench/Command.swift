import Foundation

/// What `pilot-bench` was asked to do for the tensor ops, parsed from its
/// arguments by hand (no argument-parser dependency); `models` has its own
/// (ModelCommand.swift).
enum Command {
    /// Time the cases and print a table, or the JSON record with `json`.
    case run(threads: Int, reps: Int, only: Set<String>?, json: Bool)
    /// Merge records written by `--json` runs (ours and optionally the peer's).
    case report(ours: [String], peer: [String])
    case list
    case help

    static let usage = """
        usage: pilot-bench [--threads N] [--reps N] [--only OP,OP…] [--json]
               pilot-bench report --ours FILE… [--peer FILE…]
               pilot-bench --list
               pilot-bench models …   (model-level cases: pilot-bench models --help)

          --threads N   compute threads (default: all cores); sets ComputeThreads.count,
                        which also sets OpenBLAS's thread count
          --reps N      timed repetitions per case after one warm-up (default 5);
                        each case reports the median
          --only OPS    comma-separated op names (see --list)
          --json        print the run as a JSON record instead of a table
          report        merge rounds: each op's time is the median of the rounds'
                        medians; the peer's records add PyTorch columns
        """

    static func parse(_ arguments: [String]) throws -> Command {
        var args = arguments[...]
        if args.first == "report" {
            let (ours, peer) = try ReportArguments.parse(args.dropFirst(), command: "report", usage: usage)
            return .report(ours: ours, peer: peer)
        }

        var threads = ProcessInfo.processInfo.activeProcessorCount
        var reps = 5
        var only: Set<String>?
        var json = false
        while let arg = args.popFirst() {
            switch arg {
            case "--threads": threads = try ReportArguments.positive(args.popFirst(), for: arg)
            case "--reps": reps = try ReportArguments.positive(args.popFirst(), for: arg)
            case "--only":
                guard let list = args.popFirst() else { throw BenchError.usage("--only needs a list of ops") }
                let names = Set(list.split(separator: ",").map(String.init))
                let known = Set(TensorOpCases.all.map(\.op))
                let unknown = names.subtracting(known)
                guard unknown.isEmpty else {
                    throw BenchError.usage("unknown op(s) \(unknown.sorted()); known: \(TensorOpCases.all.map(\.op))")
                }
                only = names
            case "--json": json = true
            case "--list": return .list
            case "-h", "--help": return .help
            default: throw BenchError.usage("unexpected argument \(arg)\n\(usage)")
            }
        }
        return .run(threads: threads, reps: reps, only: only, json: json)
    }
}

/// Argument pieces the tensor-op and model commands share.
enum ReportArguments {
    /// `--ours FILE… [--peer FILE…]` after `report`.
    static func parse(_ args: ArraySlice<String>, command: String, usage: String) throws -> (ours: [String], peer: [String]) {
        var ours: [String] = [], peer: [String] = []
        var addingPeer: Bool?   // which list the file names that follow go to
        for arg in args {
            switch (arg, addingPeer) {
            case ("--ours", _): addingPeer = false
            case ("--peer", _): addingPeer = true
            case (_, false?) where !arg.hasPrefix("--"): ours.append(arg)
            case (_, true?) where !arg.hasPrefix("--"): peer.append(arg)
            default: throw BenchError.usage("\(command): unexpected \(arg)\n\(usage)")
            }
        }
        guard !ours.isEmpty else { throw BenchError.noRecords }
        return (ours, peer)
    }

    /// `value` as a positive integer, or a usage error naming `flag`.
    static func positive(_ value: String?, for flag: String) throws -> Int {
        guard let value, let n = Int(value), n > 0 else {
            throw BenchError.usage("\(flag) needs a positive integer")
        }
        return n
    }
}

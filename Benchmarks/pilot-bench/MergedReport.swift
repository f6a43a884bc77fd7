import Foundation

/// One or more rounds of our records, and optionally the peer's, merged into
/// one table. Each op's time is the median over rounds of each round's
/// median, so one round slowed by a neighbour on the shared cores moves the
/// result only when it is the middle one.
struct MergedReport {
    let ours: [BenchRecord]
    let peer: [BenchRecord]
    /// Each op's definition (shape, work, yardstick, target), from our first
    /// record that has it, in our order.
    let cases: [CaseResult]

    init(ours: [BenchRecord], peer: [BenchRecord] = []) throws {
        guard !ours.isEmpty else { throw BenchError.noRecords }
        self.ours = ours
        self.peer = peer
        var seen = Set<String>()
        cases = ours.flatMap(\.results).filter { seen.insert($0.op).inserted }
    }

    /// Median over rounds of the per-round medians of `op`, in milliseconds.
    static func milliseconds(_ records: [BenchRecord], op: String) -> Double? {
        let perRound = records.compactMap { r in r.results.first { $0.op == op }?.medianMs }
        return perRound.isEmpty ? nil : median(perRound)
    }

    /// (max − min) / median of our times for `op`: across rounds when there
    /// are several, else across the one round's repetitions.
    func spread(op: String) -> Double? {
        let times = ours.count > 1
            ? ours.compactMap { r in r.results.first { $0.op == op }?.medianMs }
            : ours[0].results.first { $0.op == op }?.samplesMs ?? []
        guard let lo = times.min(), let hi = times.max(), times.count > 1 else { return nil }
        return (hi - lo) / median(times)
    }

    /// GFLOP/s or GB/s of one call of `c` taking `ms`.
    static func rate(_ c: CaseResult, ms: Double) -> Double? {
        guard ms > 0, let work = c.flops ?? c.bytes else { return nil }
        return work / ms / 1e6
    }

    /// Our rate for the yardstick row named `reference`.
    func yardstickRate(_ reference: String) -> Double? {
        guard let c = cases.first(where: { $0.op == reference }),
              let ms = MergedReport.milliseconds(ours, op: reference) else { return nil }
        return MergedReport.rate(c, ms: ms)
    }

    func render() -> String {
        let withPeer = !peer.isEmpty
        var header = ["op", "shape", "ours ms", ours.count > 1 ? "spread (rounds)" : "spread (reps)"]
        if withPeer { header += ["PyTorch ms", "ours/PyTorch"] }
        header += ["ours rate", "% of yardstick", "target"]

        var rows: [[String]] = []
        for c in cases {
            guard let ms = MergedReport.milliseconds(ours, op: c.op) else { continue }
            let rate = MergedReport.rate(c, ms: ms)
            let unit = c.flops != nil ? "GFLOP/s" : "GB/s"
            let percent = both(rate, yardstickRate(c.reference)).map { 100 * $0.0 / $0.1 }
            var row = [c.op, c.shape, format(ms), spread(op: c.op).map { String(format: "%.0f%%", 100 * $0) } ?? "—"]
            if withPeer {
                let theirs = MergedReport.milliseconds(peer, op: c.op)
                row += [theirs.map(format) ?? "—", theirs.map { String(format: "%.2f", ms / $0) } ?? "—"]
            }
            row += [rate.map { String(format: "%.1f ", $0) + unit } ?? "—",
                    percent.map { String(format: "%.1f%% ", $0) + c.reference } ?? "—",
                    verdict(c, percent: percent)]
            rows.append(row)
        }
        var lines = [describe("ours", ours)]
        if withPeer {
            lines.append(describe("PyTorch", peer))
            if Set(ours.map(\.threads) + peer.map(\.threads)).count > 1 {
                lines.append("warning: ours and the peer ran with different thread counts")
            }
            for c in cases {
                let theirs = peer.flatMap(\.results).filter { $0.op == c.op }
                if theirs.contains(where: { $0.flops != c.flops || $0.bytes != c.bytes }) {
                    lines.append("warning: the peer counts different work for \(c.op); its case has drifted from ours")
                }
            }
        }
        lines.append("")
        lines.append(MarkdownTable(header: header, rows: rows, leftAligned: [0, 1]).text)
        lines.append("")
        lines.append("ms: median over rounds of each round's median. % of yardstick: our rate ÷ our raw sgemm rate "
                     + "(FLOP rows) or our memcpy bandwidth (byte rows), from those medians."
                     + (withPeer ? " ours/PyTorch: time ratio, below 1 means ours is faster." : ""))
        return lines.joined(separator: "\n")
    }

    private func verdict(_ c: CaseResult, percent: Double?) -> String {
        if c.op == c.reference { return "yardstick" }
        guard let target = c.targetPercent else { return "report only" }
        guard let percent else { return String(format: "≥%.0f%%: no yardstick", target) }
        return String(format: "≥%.0f%%: ", target) + (percent >= target ? "pass" : "FAIL")
    }

    private func describe(_ who: String, _ records: [BenchRecord]) -> String {
        let r = records[0]
        let rounds = records.count == 1 ? "1 round" : "\(records.count) rounds"
        return "\(who): \(r.implementation), \(r.library); \(r.threads) threads; median of \(r.reps) reps "
            + "after 1 warm-up; \(rounds)"
    }

    private func format(_ ms: Double) -> String {
        String(format: ms >= 100 ? "%.0f" : ms >= 10 ? "%.1f" : "%.2f", ms)
    }
}

/// Both values, or nil when either is missing.
private func both<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}

/// A pipe table that reads as columns in a terminal and renders as Markdown.
struct MarkdownTable {
    let header: [String]
    let rows: [[String]]
    /// Columns padded on the right (text); the others are right-aligned (numbers).
    let leftAligned: Set<Int>

    var text: String {
        let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            let padded = cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return leftAligned.contains(i) ? cell + pad : pad + cell
            }
            return "| " + padded.joined(separator: " | ") + " |"
        }
        let rule = "|" + widths.enumerated().map { i, w in
            leftAligned.contains(i) ? ":" + String(repeating: "-", count: w + 1)
                                    : String(repeating: "-", count: w + 1) + ":"
        }.joined(separator: "|") + "|"
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }
}

import Foundation
import Workflow

/// Rounds of our model records, and optionally the peer's, merged into
/// tables. A case's time is the median over rounds of each round's median,
/// and each memory column the median over rounds of that reading.
struct ModelReport {
    let ours: [ModelRecord]
    let peer: [ModelRecord]
    /// Each case's definition (shape, targets), from our first record that
    /// has it, in the order of `ModelCases.all`.
    let cases: [ModelCaseResult]

    init(ours: [ModelRecord], peer: [ModelRecord] = []) throws {
        guard !ours.isEmpty else { throw BenchError.noRecords }
        self.ours = ours
        self.peer = peer
        var seen = Set<String>()
        let order = ModelCases.all.map(\.name)
        cases = ours.flatMap(\.results).filter { seen.insert($0.name).inserted }
            .sorted { (order.firstIndex(of: $0.name) ?? .max) < (order.firstIndex(of: $1.name) ?? .max) }
    }

    static func results(_ records: [ModelRecord], _ name: String) -> [ModelCaseResult] {
        records.flatMap(\.results).filter { $0.name == name }
    }

    /// Median over rounds of `value`, nil when no round has the case.
    static func median(_ records: [ModelRecord], _ name: String, _ value: (ModelCaseResult) -> Double?) -> Double? {
        let xs = results(records, name).compactMap(value)
        return xs.isEmpty ? nil : pilot_bench.median(xs)
    }

    /// (max − min) / median of our times: across rounds when there are
    /// several, else across the one round's repetitions.
    func spread(_ name: String) -> Double? {
        let rounds = ModelReport.results(ours, name)
        let times = rounds.count > 1 ? rounds.map(\.medianMs) : rounds.first?.samplesMs ?? []
        guard let lo = times.min(), let hi = times.max(), times.count > 1 else { return nil }
        return (hi - lo) / pilot_bench.median(times)
    }

    func render() -> String {
        let withPeer = !peer.isEmpty
        var lines = [describe("ours", ours)]
        if withPeer {
            lines.append(describe("PyTorch", peer))
            if Set(ours.map(\.threads) + peer.map(\.threads)).count > 1 {
                lines.append("warning: ours and the peer ran with different thread counts")
            }
            if Set(ours.map(\.model) + peer.map(\.model)).count > 1 {
                lines.append("warning: ours and the peer loaded different model folders")
            }
        }
        lines += ["", timeTable(withPeer: withPeer), "",
                  "s: median over rounds of each round's median. peak RSS: the process's peak (getrusage "
                  + "ru_maxrss at exit; loading included), median over rounds."
                  + (withPeer ? " Ratios: ours ÷ PyTorch, below 1 means ours is faster or smaller." : "")]
        if let derived = derivedTable(withPeer: withPeer) {
            lines += ["", derived, "",
                      "added cost: the first case's time minus the second's, each the median above (the two "
                      + "ran in separate processes, so there are no pairs to take per round). % of base: the "
                      + "added cost ÷ the second case's time. CPU s: the same difference of CPU "
                      + "time per call (the CPU table below), less moved by neighbours on shared cores."]
            if let warning = derivedNoiseWarning() { lines.append(warning) }
        }
        if let previews = previewTable(withPeer: withPeer) {
            lines += ["", previews, "",
                      "at every N: one preview ÷ N guided steps (the unet case, batch 2): what previews add to a "
                      + "Sample run asking for one every N steps (\(PreviewOverhead.defaultEvery) is the default); "
                      + "a PILOT step, with its gradient passes, costs more, so less there."]
        }
        if let batches = batchTable(withPeer: withPeer) {
            lines += ["", batches, "",
                      "batch ÷ three runs: the pilot_batch_256 case's two sub-steps (the same three candidates as "
                      + "three runs of batch 1 and as one batch of 3, in one process, their order alternating "
                      + "by round), median over rounds; below 1 the batch is faster."]
        }
        lines += ["", cpuTable(withPeer: withPeer), "",
                  "CPU s: user + system time of the process per call (all threads; spin-waiting thread pools "
                  + "count too), median over rounds of each round's median. Neighbours on shared cores move "
                  + "it far less than wall time.",
                  "", memoryTable(withPeer: withPeer), "",
                  "after load: resident set once the folder is loaded and the inputs made (weights as the "
                  + "implementation holds them). load peak: the peak up to then. run peak: the peak while "
                  + "the case ran, counted from the after-load set (the peak is reset after loading)."]
        if let phases = phaseTable(withPeer: withPeer) {
            lines += ["", phases]
        }
        return lines.joined(separator: "\n")
    }

    private func timeTable(withPeer: Bool) -> String {
        var header = ["case", "shape", "ours s", ours.count > 1 ? "spread (rounds)" : "spread (reps)"]
        if withPeer { header += ["PyTorch s", "ours/PyTorch"] }
        header += ["ours peak RSS GiB"]
        if withPeer { header += ["PyTorch peak RSS GiB", "RSS ours/PyTorch", "target"] }
        var rows: [[String]] = []
        for c in cases {
            guard let ms = ModelReport.median(ours, c.name, { $0.medianMs }),
                  let rss = ModelReport.median(ours, c.name, { Double($0.peakRssBytes) }) else { continue }
            var row = [c.name, c.shape, seconds(ms), spread(c.name).map { String(format: "%.0f%%", 100 * $0) } ?? "—"]
            let theirMs = ModelReport.median(peer, c.name, { $0.medianMs })
            let theirRSS = ModelReport.median(peer, c.name, { Double($0.peakRssBytes) })
            if withPeer { row += [theirMs.map(seconds) ?? "—", ratio(ms, theirMs)] }
            row.append(gib(rss))
            if withPeer {
                row += [theirRSS.map(gib) ?? "—", ratio(rss, theirRSS),
                        verdict(c, time: theirMs.map { ms / $0 }, rss: theirRSS.map { rss / $0 })]
            }
            rows.append(row)
        }
        return MarkdownTable(header: header, rows: rows, leftAligned: [0, 1]).text
    }

    /// Costs derived from two cases: (label, case with the extra work, case without it).
    static let differences = [
        (label: "ControlNet added cost (controlnet_step − unet)", with: "controlnet_step", without: "unet"),
    ]

    /// Rows for the `differences` whose two cases both ran; nil when none did.
    private func derivedTable(withPeer: Bool) -> String? {
        var rows: [[String]] = []
        for d in ModelReport.differences {
            /// The difference of the two cases' medians of `value`, and the base case's median.
            func added(_ records: [ModelRecord], _ value: (ModelCaseResult) -> Double) -> (ms: Double, base: Double)? {
                guard let with = ModelReport.median(records, d.with, value),
                      let base = ModelReport.median(records, d.without, value) else { return nil }
                return (with - base, base)
            }
            guard let mine = added(ours, { $0.medianMs }) else { continue }
            func share(_ a: (ms: Double, base: Double)?) -> String {
                a.map { String(format: "%+.0f%%", 100 * $0.ms / $0.base) } ?? "—"
            }
            let myCPU = added(ours, { $0.cpuMedianMs })
            var row = [d.label, seconds(mine.ms), share(mine)]
            if withPeer {
                let theirs = added(peer, { $0.medianMs })
                row += [theirs.map { seconds($0.ms) } ?? "—", share(theirs), ratio(mine.ms, theirs?.ms)]
            }
            row.append(myCPU.map { seconds($0.ms) } ?? "—")
            if withPeer {
                let theirCPU = added(peer, { $0.cpuMedianMs })
                row += [theirCPU.map { seconds($0.ms) } ?? "—", myCPU.map { ratio($0.ms, theirCPU?.ms) } ?? "—"]
            }
            rows.append(row)
        }
        guard !rows.isEmpty else { return nil }
        let header = ["derived", "ours s", "ours % of base"]
            + (withPeer ? ["PyTorch s", "PyTorch % of base", "ours/PyTorch"] : [])
            + ["ours CPU s"] + (withPeer ? ["PyTorch CPU s", "CPU ours/PyTorch"] : [])
        return MarkdownTable(header: header, rows: rows, leftAligned: [0]).text
    }

    /// Each preview case against the UNet step it accompanies; nil unless
    /// `unet` and a preview case ran.
    private func previewTable(withPeer: Bool) -> String? {
        guard let step = ModelReport.median(ours, "unet", { $0.medianMs }) else { return nil }
        let theirStep = ModelReport.median(peer, "unet", { $0.medianMs })
        func share(_ preview: Double, _ step: Double?, every: Int) -> String {
            step.map { String(format: "%.2f%%", 100 * preview / (Double(every) * $0)) } ?? "—"
        }
        var rows: [[String]] = []
        for name in PreviewOverhead.cases {
            guard let ms = ModelReport.median(ours, name, { $0.medianMs }) else { continue }
            var row = [name, String(format: "%.1f", ms), share(ms, step, every: PreviewOverhead.defaultEvery),
                       share(ms, step, every: 1)]
            if withPeer {
                let theirs = ModelReport.median(peer, name, { $0.medianMs })
                row += [theirs.map { String(format: "%.1f", $0) } ?? "—",
                        theirs.map { share($0, theirStep, every: PreviewOverhead.defaultEvery) } ?? "—", ratio(ms, theirs)]
            }
            row.append(ms / (Double(PreviewOverhead.defaultEvery) * step) <= PreviewOverhead.limit ? "≤ 5% pass" : "> 5% FAIL")
            rows.append(row)
        }
        guard !rows.isEmpty else { return nil }
        let header = ["preview", "ours ms", "ours at every \(PreviewOverhead.defaultEvery)", "ours at every 1"]
            + (withPeer ? ["PyTorch ms", "PyTorch at every \(PreviewOverhead.defaultEvery)", "ours/PyTorch"] : [])
            + ["target"]
        return MarkdownTable(header: header, rows: rows, leftAligned: [0]).text
    }

    /// The batch case's comparison (three runs against one batch of three);
    /// nil unless pilot_batch_256 ran.
    private func batchTable(withPeer: Bool) -> String? {
        let name = "pilot_batch_256"
        func phase(_ records: [ModelRecord], _ phase: String) -> Double? {
            ModelReport.median(records, name) { r in r.phases?.first { $0.name == phase }?.ms }
        }
        guard let three = phase(ours, "three_runs"), let batch = phase(ours, "batch_of_3") else { return nil }
        var row = [name, seconds(three), seconds(batch), String(format: "%.2f", batch / three)]
        if withPeer {
            let theirThree = phase(peer, "three_runs"), theirBatch = phase(peer, "batch_of_3")
            row += [theirThree.map(seconds) ?? "—", theirBatch.map(seconds) ?? "—",
                    theirThree.flatMap { t in theirBatch.map { String(format: "%.2f", $0 / t) } } ?? "—",
                    ratio(batch, theirBatch)]
        }
        row.append(batch < three ? "batch < three runs: pass" : "batch ≥ three runs: FAIL")
        let header = ["case", "ours three runs s", "ours batch of 3 s", "ours batch ÷ three runs"]
            + (withPeer ? ["PyTorch three runs s", "PyTorch batch of 3 s", "PyTorch batch ÷ three runs", "batch ours/PyTorch"] : [])
            + ["target"]
        return MarkdownTable(header: header, rows: [row], leftAligned: [0]).text
    }

    /// A difference at or below zero means a neighbour slowed the case
    /// without the extra work more than the extra work costs: say so.
    private func derivedNoiseWarning() -> String? {
        let bad = ModelReport.differences.filter { d in
            [ours, peer].contains { records in
                guard let with = ModelReport.median(records, d.with, { $0.medianMs }),
                      let without = ModelReport.median(records, d.without, { $0.medianMs }) else { return false }
                return with <= without
            }
        }
        guard !bad.isEmpty else { return nil }
        return "warning: \(bad.map(\.with).joined(separator: ", ")) did not take longer than the case it adds to: "
            + "the timings are noise-bound; rerun on a quieter machine or with more rounds."
    }

    private func cpuTable(withPeer: Bool) -> String {
        var header = ["case", "ours CPU s", "ours CPU/wall"]
        if withPeer { header += ["PyTorch CPU s", "PyTorch CPU/wall", "CPU ours/PyTorch"] }
        let rows = cases.map { c -> [String] in
            func readings(_ records: [ModelRecord]) -> (cpu: Double?, wall: Double?) {
                (ModelReport.median(records, c.name, { $0.cpuMedianMs }), ModelReport.median(records, c.name, { $0.medianMs }))
            }
            let mine = readings(ours), theirs = readings(peer)
            func perWall(_ r: (cpu: Double?, wall: Double?)) -> String {
                guard let cpu = r.cpu, let wall = r.wall else { return "—" }
                return ratio(cpu, wall)
            }
            var row = [c.name, mine.cpu.map(seconds) ?? "—", perWall(mine)]
            if withPeer { row += [theirs.cpu.map(seconds) ?? "—", perWall(theirs), mine.cpu.map { ratio($0, theirs.cpu) } ?? "—"] }
            return row
        }
        return MarkdownTable(header: header, rows: rows, leftAligned: [0]).text
    }

    private func memoryTable(withPeer: Bool) -> String {
        let columns: [(String, (ModelCaseResult) -> Double?)] = [
            ("after load", { $0.loadedRssBytes.map(Double.init) }),
            ("load peak", { Double($0.loadPeakRssBytes) }),
            ("run peak", { Double($0.runPeakRssBytes) }),
        ]
        var header = ["case"] + columns.map { "ours \($0.0) GiB" }
        if withPeer { header += columns.map { "PyTorch \($0.0) GiB" } }
        let rows = cases.map { c in
            [c.name] + columns.map { ModelReport.median(ours, c.name, $0.1).map(gib) ?? "—" }
                + (withPeer ? columns.map { ModelReport.median(peer, c.name, $0.1).map(gib) ?? "—" } : [])
        }
        return MarkdownTable(header: header, rows: rows, leftAligned: [0]).text
    }

    /// Sub-steps of the cases that report them (the PILOT run), in our order.
    private func phaseTable(withPeer: Bool) -> String? {
        var rows: [[String]] = []
        for c in cases {
            guard let names = ModelReport.results(ours, c.name).first?.phases?.map(\.name) else { continue }
            for name in names {
                func phaseMs(_ records: [ModelRecord]) -> Double? {
                    ModelReport.median(records, c.name) { r in r.phases?.first { $0.name == name }?.ms }
                }
                guard let ms = phaseMs(ours) else { continue }
                var row = [c.name, name, seconds(ms)]
                if withPeer {
                    let theirs = phaseMs(peer)
                    row += [theirs.map(seconds) ?? "—", ratio(ms, theirs)]
                }
                rows.append(row)
            }
        }
        guard !rows.isEmpty else { return nil }
        let header = ["case", "sub-step", "ours s"] + (withPeer ? ["PyTorch s", "ours/PyTorch"] : [])
        return MarkdownTable(header: header, rows: rows, leftAligned: [0, 1]).text
    }

    private func verdict(_ c: ModelCaseResult, time: Double?, rss: Double?) -> String {
        var parts: [String] = []
        if let target = c.timeRatioTarget {
            parts.append(String(format: "time ≤%.1f: ", target) + (time.map { $0 <= target ? "pass" : "FAIL" } ?? "—"))
        }
        if let target = c.rssRatioTarget {
            parts.append(String(format: "RSS ≤%.1f: ", target) + (rss.map { $0 <= target ? "pass" : "FAIL" } ?? "—"))
        }
        return parts.isEmpty ? "report only" : parts.joined(separator: ", ")
    }

    private func describe(_ who: String, _ records: [ModelRecord]) -> String {
        let r = records[0]
        let rounds = Set(records.flatMap { $0.results.map(\.name) }).map { name in
            records.filter { $0.results.contains { $0.name == name } }.count
        }
        let roundText = rounds.min() == rounds.max() ? "\(rounds.first ?? 0)" : "\(rounds.min() ?? 0)–\(rounds.max() ?? 0)"
        return "\(who): \(r.implementation), \(r.library); \(r.threads) threads; \(r.model); "
            + "one process per case and round; \(roundText) round(s) per case"
    }

    private func seconds(_ ms: Double) -> String {
        let s = ms / 1e3
        return String(format: s >= 100 ? "%.0f" : s >= 10 ? "%.1f" : "%.2f", s)
    }

    private func gib(_ bytes: Double) -> String { String(format: "%.2f", bytes / Double(1 << 30)) }

    private func ratio(_ a: Double, _ b: Double?) -> String {
        guard let b, b > 0 else { return "—" }
        return String(format: "%.2f", a / b)
    }
}

/// The preview cases and the bound: previews at their default
/// interval slow a run by at most 5%.
enum PreviewOverhead {
    static let cases = ["preview_latent2rgb", "preview_taesd"]
    static let defaultEvery = PreviewRequest.defaultEvery
    static let limit = 0.05
}

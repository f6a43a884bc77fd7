import Foundation

/// One run of a benchmark program, ours or a peer's: the JSON both print with
/// `--json` (snake_case keys) and that `pilot-bench report` merges.
struct BenchRecord: Codable {
    /// Schema tag; bump when a field changes meaning.
    static let currentSchema = "pilot-bench/1"

    var schema: String
    /// "pilot" or the peer's name ("pytorch").
    var implementation: String
    /// What does the arithmetic: OpenBLAS's config string, or torch's version and BLAS.
    var library: String
    var threads: Int
    var reps: Int
    var results: [CaseResult]
}

/// One case of one run.
struct CaseResult: Codable {
    /// Stable identifier shared with the peer ("conv2d", "attention_bwd", …).
    var op: String
    var shape: String
    /// Floating-point operations of one call, for compute-bound cases.
    var flops: Double?
    /// Bytes read plus bytes written by one call, for memory-bound cases.
    var bytes: Double?
    /// The yardstick this case is compared with: "sgemm" or "copy".
    var reference: String
    /// Our target as a percentage of the yardstick's rate; absent for report-only rows.
    var targetPercent: Double?
    var medianMs: Double
    var samplesMs: [Double]
}

extension BenchRecord {
    static func decode(contentsOf path: String) throws -> BenchRecord {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BenchError.unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let record: BenchRecord
        do {
            record = try decoder.decode(BenchRecord.self, from: data)
        } catch {
            throw BenchError.unreadable(path: path, reason: "not a \(currentSchema) record: \(error)")
        }
        guard record.schema == currentSchema else {
            throw BenchError.unreadable(path: path, reason: "schema \(record.schema), expected \(currentSchema)")
        }
        return record
    }

    func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// Why `pilot-bench` stopped.
enum BenchError: Error, CustomStringConvertible {
    case usage(String)
    case unreadable(path: String, reason: String)
    case noRecords

    var description: String {
        switch self {
        case .usage(let message): return message
        case .unreadable(let path, let reason): return "cannot read \(path): \(reason)"
        case .noRecords: return "report needs at least one record of ours (--ours FILE…)"
        }
    }
}

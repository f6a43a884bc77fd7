import Foundation

/// One run of a benchmark program, ours or a peer's: the JSON both print with
/// `--json` (snake_case keys) and that `pilot-bench report` merges.
struct BenchRecord: SchemaRecord {
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

/// A JSON record with a schema tag: tensor-op runs (`BenchRecord`) and
/// model runs (`ModelRecord`), read back by the `report` commands.
protocol SchemaRecord: Codable {
    static var currentSchema: String { get }
    var schema: String { get }
}

extension SchemaRecord {
    /// The record at `path`, refusing files of another schema.
    static func decode(contentsOf path: String) throws -> Self {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BenchError.unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let record: Self
        do {
            record = try decoder.decode(Self.self, from: data)
        } catch {
            throw BenchError.unreadable(path: path, reason: "not a \(currentSchema) record: \(error)")
        }
        guard record.schema == currentSchema else {
            throw BenchError.unreadable(path: path, reason: "schema \(record.schema), expected \(currentSchema)")
        }
        return record
    }

    /// Pretty-printed snake_case JSON.
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

import Crypto
import Foundation

/// What the cache key knows of a file or folder a node reads.
///
/// A file: its size, its modification time, and the SHA-256 of its content
/// when it is under 64 MiB, else of its first and last MiB (model weights
/// run to gigabytes; size + mtime + both ends catch every edit seen in
/// practice, and reading 2 MiB keeps a run's start instant). A folder (a
/// diffusers model): the SHA-256 over each regular file's relative path and
/// fingerprint, in sorted order, hidden files skipped.
public struct FileFingerprint: Sendable, Equatable, CustomStringConvertible {
    public var size: Int64
    /// Seconds since 1970, to the nanosecond where the file system has it.
    public var modified: Double
    /// SHA-256 hex, of the whole content or of both ends (see ``isPartial``).
    public var sha256: String
    /// True when ``sha256`` covers only the first and last MiB.
    public var isPartial: Bool

    /// Files at least this large are hashed by their ends only.
    public static let wholeFileLimit: Int64 = 64 << 20
    /// How much of each end a large file contributes.
    public static let endBytes = 1 << 20

    public init(size: Int64, modified: Double, sha256: String, isPartial: Bool) {
        self.size = size
        self.modified = modified
        self.sha256 = sha256
        self.isPartial = isPartial
    }

    /// The text that goes into a cache key.
    public var description: String {
        "\(size):\(modified):\(isPartial ? "ends" : "full"):\(sha256)"
    }

    /// Fingerprints the file or folder at `url`.
    public static func of(_ url: URL) throws -> FileFingerprint {
        guard FileManager.default.fileExists(atPath: url.path) else { throw FileFingerprintError.missing(url.path) }
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        if attributes[.type] as? FileAttributeType == .typeDirectory {
            return try folder(url, modified: modified)
        }
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hash = SHA256()
        let isPartial = size >= wholeFileLimit
        if isPartial {
            hash.update(data: try handle.read(upToCount: endBytes) ?? Data())
            try handle.seek(toOffset: UInt64(size) - UInt64(endBytes))
            hash.update(data: try handle.read(upToCount: endBytes) ?? Data())
        } else {
            while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
                hash.update(data: chunk)
            }
        }
        return FileFingerprint(size: size, modified: modified, sha256: Digest.hex(hash.finalize()), isPartial: isPartial)
    }

    private static func folder(_ url: URL, modified: Double) throws -> FileFingerprint {
        let manager = FileManager.default
        let paths = (manager.subpaths(atPath: url.path) ?? []).sorted()
        var hash = SHA256(), total: Int64 = 0, newest = modified, partial = false
        for path in paths where !path.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
            let file = url.appendingPathComponent(path)
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: file.path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            let print = try of(file)
            hash.update(data: Data("\(path)\0\(print)\n".utf8))
            total += print.size
            newest = max(newest, print.modified)
            partial = partial || print.isPartial
        }
        return FileFingerprint(size: total, modified: newest, sha256: Digest.hex(hash.finalize()), isPartial: partial)
    }
}

/// A file a node reads cannot be fingerprinted.
public enum FileFingerprintError: Error, Sendable, Equatable, CustomStringConvertible {
    case missing(String)

    public var description: String {
        switch self {
        case let .missing(path): "no such file or folder: \(path)"
        }
    }
}

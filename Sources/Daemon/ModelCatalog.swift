import Crypto
import Foundation
import Workflow

/// The models a daemon offers: every diffusers folder (a folder with
/// `model_index.json` or `config.json`) and `.safetensors` file directly in
/// its models directory, each identified by SHA-256 (for a folder: of the
/// sorted list of its files' relative paths and SHA-256s). Hashes are
/// computed once in the background and remembered in the job store, keyed
/// by path, size and modification time.
public final class ModelCatalog: @unchecked Sendable {
    public struct Entry: Sendable {
        public var name: String
        public var path: String
        public var kind: String
        public var bytes: Int64
        public var modified: Double
        public var sha256: String?

        public var json: JSONValue {
            .object(["name": .string(name), "path": .string(path), "kind": .string(kind), "bytes": .int(Int(bytes)),
                     "sha256": sha256.map(JSONValue.string) ?? .null])
        }
    }

    public let directory: URL
    private let store: any ModelHashCache
    private let lock = NSLock()
    private var hashing = false

    public init(directory: URL, store: any ModelHashCache) {
        self.directory = directory
        self.store = store
    }

    /// The entries now, with the hashes known so far; starts hashing the rest.
    public func entries() -> [Entry] {
        let found = scan()
        if found.contains(where: { $0.sha256 == nil }) { hashInBackground() }
        return found
    }

    /// Hashes every unhashed entry now (tests, and the background thread).
    public func hashAll() {
        for entry in scan() where entry.sha256 == nil {
            guard let sha = try? Self.hash(URL(fileURLWithPath: entry.path)) else { continue }
            try? store.rememberModelHash(path: entry.path, bytes: entry.bytes, modified: entry.modified, sha256: sha)
        }
    }

    private func hashInBackground() {
        let start: Bool = lock.withLock {
            if hashing { return false }
            hashing = true
            return true
        }
        guard start else { return }
        Thread.detachNewThread { [self] in
            hashAll()
            lock.withLock { hashing = false }
        }
    }

    private func scan() -> [Entry] {
        let manager = FileManager.default
        guard let items = try? manager.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil),
              let root = Self.realPath(directory) else { return [] }
        var entries: [Entry] = []
        for item in items.sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) where !item.lastPathComponent.hasPrefix(".") {
            // Links out of the models folder are not listed (nor sized, nor hashed).
            guard Self.isInside(item, root: root) else { continue }
            var isFolder: ObjCBool = false
            guard manager.fileExists(atPath: item.path, isDirectory: &isFolder) else { continue }
            let kind: String
            if isFolder.boolValue {
                if manager.fileExists(atPath: item.appendingPathComponent("model_index.json").path) {
                    kind = "diffusers"
                } else if let data = try? Data(contentsOf: item.appendingPathComponent("config.json")),
                          let config = try? JSONValue(parsing: data) {
                    kind = config["_class_name"]?.stringValue ?? "diffusers-component"
                } else {
                    continue
                }
            } else if item.pathExtension == "safetensors" {
                kind = "safetensors"
            } else {
                continue
            }
            let (bytes, modified) = Self.sizeAndTime(item)
            let sha = try? store.modelHash(path: item.path, bytes: bytes, modified: modified)
            entries.append(Entry(name: item.deletingPathExtension().lastPathComponent, path: item.path, kind: kind,
                                 bytes: bytes, modified: modified, sha256: sha ?? nil))
        }
        return entries
    }

    /// Total size and latest modification time of a file or folder tree.
    static func sizeAndTime(_ url: URL) -> (Int64, Double) {
        var bytes: Int64 = 0, modified = 0.0
        for file in files(under: url) {
            let attributes = try? FileManager.default.attributesOfItem(atPath: file.path)
            bytes += (attributes?[.size] as? NSNumber)?.int64Value ?? 0
            modified = max(modified, (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)
        }
        return (bytes, modified)
    }

    /// Regular files of a model (the file itself, or every file under a
    /// folder) that resolve inside the folder: a link out of it is skipped.
    public static func files(under url: URL) -> [URL] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else { return [] }
        guard isFolder.boolValue else { return [url] }
        guard let root = realPath(url) else { return [] }
        let enumerator = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey])
        var found: [URL] = []
        while let item = enumerator?.nextObject() as? URL {
            if (try? item.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true, isInside(item, root: root) {
                found.append(item)
            }
        }
        return found.sorted { $0.path < $1.path }
    }

    /// `realpath(3)` of `url`, nil when it does not resolve.
    static func realPath(_ url: URL) -> String? {
        guard let p = realpath(url.path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// Whether `url` resolves to `root` or below it.
    static func isInside(_ url: URL, root: String) -> Bool {
        guard let resolved = realPath(url) else { return false }
        return resolved == root || resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/")
    }

    /// SHA-256 of a file, or of a folder's sorted "relative-path sha256" lines.
    public static func hash(_ url: URL) throws -> String {
        var isFolder: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder)
        guard isFolder.boolValue else { return try hashFile(url) }
        let root = url.standardizedFileURL.path
        var listing = ""
        for file in files(under: url) {
            let relative = String(file.standardizedFileURL.path.dropFirst(root.count + 1))
            listing += "\(relative) \(try hashFile(file))\n"
        }
        return Workflow.Digest.sha256Hex(Data(listing.utf8))
    }

    static func hashFile(_ url: URL) throws -> String {
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 8 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return Workflow.Digest.hex(hasher.finalize())
    }
}

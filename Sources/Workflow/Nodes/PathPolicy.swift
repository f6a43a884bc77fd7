import Foundation

/// Where a run may read and write files.
///
/// Relative paths in a workflow resolve against the workflow file's folder,
/// so a workflow and its inputs move together. Reads are confined to the
/// allowed directories (after resolving `..` and symbolic links), so a
/// workflow received over the wire cannot read `/etc/shadow`; writes go only
/// to plain file names inside the output directory.
public struct PathPolicy: Sendable, Equatable {
    /// The folder of the workflow file; relative paths start here.
    public var baseDirectory: URL
    /// Folders reads must stay inside; nil allows any path.
    public var allowedReadDirectories: [URL]?
    /// Where Save* nodes write.
    public var outputDirectory: URL
    /// Most pixels a run's Save* nodes may write, all files together (nil: no
    /// bound). The daemon sets it (`pilot serve --max-output-pixels`), so one
    /// job cannot fill the disk with a thousand full-size images.
    public var maxOutputPixels: Int?

    public init(baseDirectory: URL, allowedReadDirectories: [URL]? = nil, outputDirectory: URL) {
        self.baseDirectory = baseDirectory
        self.allowedReadDirectories = allowedReadDirectories
        self.outputDirectory = outputDirectory
    }

    /// Relative paths resolve against `workflowFile`'s folder.
    public init(workflowFile: URL, allowedReadDirectories: [URL]? = nil, outputDirectory: URL) {
        self.init(baseDirectory: workflowFile.deletingLastPathComponent(),
                  allowedReadDirectories: allowedReadDirectories, outputDirectory: outputDirectory)
    }

    /// The current directory for everything, reads unrestricted.
    public static var currentDirectory: PathPolicy {
        let here = URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)
        return PathPolicy(baseDirectory: here, outputDirectory: here)
    }

    /// The absolute, symlink-free location of `path`, or an error when it is
    /// empty, cannot be resolved, or lies outside every allowed read
    /// directory. Resolution is the kernel's (`realpath(3)`: every link, up
    /// to its own limit) and fails closed; a path that does not exist yet
    /// resolves through its folder.
    public func resolveForReading(_ path: String) throws(PathError) -> URL {
        guard !path.isEmpty, !path.contains("\0") else { throw .empty }
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path)
                                      : baseDirectory.appendingPathComponent(path)
        guard let resolved = Self.realPath(url.standardizedFileURL.path) else {
            guard allowedReadDirectories == nil else { throw .unresolvable(path: path) }
            return url.standardizedFileURL
        }
        guard let allowed = allowedReadDirectories else { return resolved }
        let inside = allowed.contains { directory in
            guard let root = Self.realPath(directory.standardizedFileURL.path) else { return false }
            return resolved.pathComponents.starts(with: root.pathComponents)
        }
        guard inside else {
            throw .outsideAllowedDirectories(path: path, allowed: allowed.map(\.path))
        }
        return resolved
    }

    /// `realpath(3)` of `path`; for a missing file, that of its folder with
    /// the name appended. Nil when neither resolves (a loop, too many links,
    /// a missing folder, no permission).
    static func realPath(_ path: String) -> URL? {
        if let full = realpath(path, nil) {
            defer { free(full) }
            return URL(fileURLWithPath: String(cString: full))
        }
        guard errno == ENOENT else { return nil }
        let url = URL(fileURLWithPath: path)
        let name = url.lastPathComponent
        guard !name.isEmpty, name != "..", name != ".", let folder = realpath(url.deletingLastPathComponent().path, nil) else { return nil }
        defer { free(folder) }
        return URL(fileURLWithPath: String(cString: folder)).appendingPathComponent(name)
    }

    /// `name` + `.ext` inside the output directory; `name` must be a plain
    /// file name (no folders, not `.` or `..`).
    public func outputFile(named name: String, extension ext: String) throws(PathError) -> URL {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.contains("\0") else {
            throw .notAFileName(name)
        }
        return outputDirectory.appendingPathComponent(name + "." + ext)
    }
}

/// A path a node was given cannot be used.
public enum PathError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    /// Outside every allowed folder. Where it resolves is not said: the
    /// message would reveal other folders' links.
    case outsideAllowedDirectories(path: String, allowed: [String])
    /// The path cannot be resolved (a link loop, too many links, no permission).
    case unresolvable(path: String)
    case notAFileName(String)

    public var description: String {
        switch self {
        case .empty:
            "empty path"
        case let .outsideAllowedDirectories(path, allowed):
            "path '\(path.prefix(300))' is outside the allowed read directories (\(allowed.joined(separator: ", ")))"
        case let .unresolvable(path):
            "path '\(path.prefix(300))' cannot be resolved (a link loop, too many links, a missing folder or no permission)"
        case let .notAFileName(name):
            "'\(name)' is not a plain file name (no '/', not '.' or '..')"
        }
    }
}

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
    /// empty or lies outside every allowed read directory.
    public func resolveForReading(_ path: String) throws(PathError) -> URL {
        guard !path.isEmpty else { throw .empty }
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path)
                                      : baseDirectory.appendingPathComponent(path)
        let resolved = url.standardizedFileURL.resolvingSymlinksInPath()
        guard let allowed = allowedReadDirectories else { return resolved }
        let inside = allowed.contains { directory in
            let root = directory.standardizedFileURL.resolvingSymlinksInPath().pathComponents
            return resolved.pathComponents.starts(with: root)
        }
        guard inside else {
            throw .outsideAllowedDirectories(path: path, resolved: resolved.path,
                                             allowed: allowed.map(\.path))
        }
        return resolved
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
    case outsideAllowedDirectories(path: String, resolved: String, allowed: [String])
    case notAFileName(String)

    public var description: String {
        switch self {
        case .empty:
            "empty path"
        case let .outsideAllowedDirectories(path, resolved, allowed):
            "path '\(path)' resolves to \(resolved), outside the allowed read directories (\(allowed.joined(separator: ", ")))"
        case let .notAFileName(name):
            "'\(name)' is not a plain file name (no '/', not '.' or '..')"
        }
    }
}

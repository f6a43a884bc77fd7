import Foundation

/// The folders a run may read, for every file a loader opens on its
/// behalf, not only the paths a workflow names: a model folder that passed
/// the daemon's check can still hold a link (`tokenizer/merges.txt →
/// /root/secret`) that a loader would otherwise follow. Loaders call
/// ``check(_:)`` before opening a file; the runner sets the folders around
/// a run (``confined(to:_:)``). Unconfined (nil, the CLI's default) costs
/// one task-local read.
///
/// The folders are bound to the current task or thread: a loader that
/// opens files on other threads must check them on its own.
public enum ReadConfinement {
    @TaskLocal static var folders: [String]?

    /// Runs `body` with reads confined to `folders` (nil: unconfined).
    /// Each folder is resolved once here (links and `..`).
    public static func confined<T>(to folders: [URL]?, _ body: () throws -> T) rethrows -> T {
        let resolved = folders.map { $0.compactMap { realPath($0.path) } }
        return try $folders.withValue(resolved, operation: body)
    }

    /// Whether reads are confined now.
    public static var isConfined: Bool { folders != nil }

    /// Throws unless reads are unconfined or `path` resolves (every link,
    /// by the kernel's rules) inside one of the folders. Fails closed: a path
    /// that cannot be resolved is refused. The error names only `path`,
    /// never where it leads.
    public static func check(_ path: String) throws(ReadConfinementError) {
        guard let folders else { return }
        guard let resolved = realPath(path) else { throw ReadConfinementError(path: path) }
        for folder in folders where resolved == folder || resolved.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/") {
            return
        }
        throw ReadConfinementError(path: path)
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// A file a loader was about to open lies outside the folders the run may read.
public struct ReadConfinementError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public var description: String {
        "\(path): not readable by this job (it is missing, or it or a link in it leads outside the models, templates and allowed folders)"
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads and atomic writes over POSIX calls, so failures carry
/// the system's reason ("No such file or directory") and the path.
enum FileAccess {
    /// The contents of the file at `path`.
    static func contents(of path: String) throws -> Data {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure(path, "open for reading") }
        defer { close(descriptor) }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure(path, "read")
            }
            if count == 0 { return data }
            data.append(contentsOf: chunk[0..<count])
        }
    }

    /// Writes `data` to a temporary file beside `path`, flushes it to disk,
    /// then renames it over `path`: readers see the old file or the new
    /// one, never a part. The temporary file is removed on failure.
    static func writeAtomically(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
            .path
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else { throw failure(path, "create a temporary file to write") }
        var completed = false
        defer {
            if !completed { unlink(temporary) }
        }
        do {
            defer { close(descriptor) }
            try writeAll(data, to: descriptor, path: path)
            guard fsync(descriptor) == 0 else { throw failure(path, "flush to disk") }
        }
        guard rename(temporary, path) == 0 else { throw failure(path, "rename the temporary file into place") }
        completed = true
    }

    /// The fault tests' full disk (`PILOT_FAULT=disk-full`, see the daemon's
    /// FaultInjection): a write stops halfway with ENOSPC.
    private static let diskFull = ProcessInfo.processInfo.environment["PILOT_FAULT"] == "disk-full"

    private static func writeAll(_ data: Data, to descriptor: Int32, path: String) throws {
        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                if diskFull, offset >= bytes.count / 2 {
                    errno = ENOSPC
                    throw failure(path, "write")
                }
                let chunk = diskFull ? max(1, bytes.count / 2 - offset) : bytes.count - offset
                let written = write(descriptor, bytes.baseAddress! + offset, chunk)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw failure(path, "write")
                }
                offset += written
            }
        }
    }

    private static func failure(_ path: String, _ operation: String) -> ImagingError {
        .io(path: path, operation: operation, reason: String(cString: strerror(errno)))
    }
}

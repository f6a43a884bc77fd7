import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file so that it appears complete or not at all: data goes to a
/// uniquely named temporary file in the same directory (so `rename` stays on
/// one filesystem and is atomic), is flushed with `fsync`, then renamed.
enum AtomicFileWriter {
    /// Writes `chunks`, concatenated, to `path`.
    static func store(_ chunks: [Data], at path: String) throws(SafeTensorsError) {
        let temporaryPath = "\(path).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        func fail(_ operation: String) -> SafeTensorsError {
            SafeTensorsError(source: path, problem: .systemCall(operation: operation, errno: errno))
        }
        let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw fail("open (temporary file)") }
        var renamed = false
        defer {
            if !renamed { unlink(temporaryPath) }
        }
        do throws(SafeTensorsError) {
            for chunk in chunks {
                try writeAll(chunk, to: descriptor, failure: fail)
            }
            guard fsync(descriptor) == 0 else { throw fail("fsync") }
        } catch {
            close(descriptor)
            throw error
        }
        guard close(descriptor) == 0 else { throw fail("close") }
        guard rename(temporaryPath, path) == 0 else { throw fail("rename") }
        renamed = true
    }

    /// Writes all of `data`, retrying short writes and interrupted calls.
    private static func writeAll(
        _ data: Data, to descriptor: Int32, failure: (String) -> SafeTensorsError
    ) throws(SafeTensorsError) {
        let outcome: SafeTensorsError? = data.withUnsafeBytes { bytes in
            var written = 0
            while written < bytes.count {
                let result = write(descriptor, bytes.baseAddress! + written, bytes.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    return failure("write")
                }
                written += result
            }
            return nil
        }
        if let outcome { throw outcome }
    }
}

/// Whole-file writes that appear complete or not at all (a temporary file
/// beside the target, flushed, then renamed over it), for any bytes.
public enum AtomicFile {
    /// Writes `data` to `path` atomically; throws naming `path`, leaving it untouched.
    public static func write(_ data: Data, to path: String) throws {
        try AtomicFileWriter.store([data], at: path)
    }
}

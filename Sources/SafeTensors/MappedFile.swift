#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only into memory, unmapped when released.
///
/// `MAP_PRIVATE` keeps our view immune to writes through other mappings of
/// the file, but not to truncation: a file cut short while mapped makes the
/// lost pages fault (SIGBUS) when touched. Checkpoints are not edited in
/// place, so the reader accepts that rather than copying gigabytes.
final class MappedFile: @unchecked Sendable {
    // @unchecked: the mapping is PROT_READ and never remapped, so sharing the
    // pointer between threads cannot race.

    /// The file's bytes; empty (with a nil base address) for an empty file.
    let bytes: UnsafeRawBufferPointer

    /// Maps the file at `path`; errors name `path`.
    init(path: String) throws(SafeTensorsError) {
        func fail(_ operation: String) -> SafeTensorsError {
            SafeTensorsError(source: path, problem: .systemCall(operation: operation, errno: errno))
        }
        do { try ReadConfinement.check(path) } catch { throw SafeTensorsError(source: path, problem: .notReadable) }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw fail("open") }
        defer { close(descriptor) }

        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw fail("fstat") }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError(source: path, problem: .notARegularFile)
        }
        let size = Int(status.st_size)
        guard size > 0 else {
            // mmap refuses a zero length; an empty file is still a valid (too short) input.
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let address, address != UnsafeMutableRawPointer(bitPattern: -1) else { throw fail("mmap") }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    deinit {
        if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}

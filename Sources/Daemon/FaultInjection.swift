import Foundation

/// Crash points for the fault tests, which start a real `pilot serve` with
/// `PILOT_FAULT=NAME`: at the point of that name the process kills itself
/// with SIGKILL, as `kill -9` or a power cut would at that instant. Unset
/// (always, outside those tests) a point costs one comparison.
///
/// Points: `submit-after-blobs` (a submit's input frames are stored, its job
/// row is not), `submit-after-commit` (the job row is committed, the reply
/// not sent). `disk-full` (read by Imaging's atomic writes) makes writing an
/// output fail with ENOSPC halfway through. `worker-crash-at-node:NAME`
/// makes the process running a job write through a bad pointer (SIGSEGV) when node NAME starts
/// (a crash inside a kernel, as a zero-sized latent once caused).
/// `worker-freeze-at-node:NAME` makes it stop itself with SIGSTOP there (a
/// frozen worker: swapped out, a debugger, a hung driver) until SIGCONT.
enum FaultInjection {
    static let armed = ProcessInfo.processInfo.environment["PILOT_FAULT"]

    static func point(_ name: String) {
        guard let armed, armed == name else { return }
        kill(getpid(), SIGKILL)
    }

    static func crash(atNode node: String) {
        guard let armed, armed.hasPrefix("worker-crash-at-node:"), armed.dropFirst("worker-crash-at-node:".count) == node else { return }
        // A real bad store, as a kernel bug would make: kill(SIGSEGV) is caught by the Swift backtracer and survived.
        UnsafeMutablePointer<Int>(bitPattern: 8)!.pointee = 0
    }

    static func freeze(atNode node: String) {
        guard let armed, armed.hasPrefix("worker-freeze-at-node:"), armed.dropFirst("worker-freeze-at-node:".count) == node else { return }
        kill(getpid(), SIGSTOP)
    }
}

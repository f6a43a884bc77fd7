import Foundation
import Workflow

/// How a daemon is set up; `pilot serve` fills it from its options.
public struct DaemonConfiguration: Sendable {
    /// Job store, input blobs, job folders, `connection.json`.
    public var stateDirectory: URL
    /// ROUTER endpoint for requests (`tcp://HOST:PORT`, `ipc:///path`; port `*` picks a free one).
    public var requestEndpoint = "tcp://127.0.0.1:5555"
    /// XPUB endpoint for events.
    public var eventEndpoint = "tcp://127.0.0.1:5556"
    /// Template folders, searched in order (a user folder before the built-in one).
    public var templateDirectories: [URL] = []
    /// Where models live; relative paths in inline workflows resolve here.
    public var modelsDirectory: URL
    /// Further folders workflows may read (examples, shared inputs). Models,
    /// templates and each job's own inputs are always readable; nothing else is.
    public var extraReadDirectories: [URL] = []
    /// Byte budget of the cache of loaded models and node outputs (LRU).
    public var memoryBudget: Int = OutputCache.defaultBudget
    /// Largest request accepted with an error reply; up to twice this (plus
    /// 1 MiB) is read and refused, and libzmq drops a peer sending a bigger frame.
    public var maxMessageBytes: Int = 64 << 20
    /// CURVE encryption: nil = only when an endpoint is not loopback/ipc (then required).
    public var curve: Bool?
    /// The device jobs run on, as `pilot serve` chose it ("cpu (fp32): requested",
    /// "cuda:0 (fp16): NVIDIA H200 (sm_90)"): in each job's running transition and started event.
    public var device = "cpu (fp32)"
    /// Longest a job may run, in seconds, before it is stopped at its next
    /// step and failed with `timeout` (`pilot serve --job-time-limit`).
    public var jobTimeLimit: TimeInterval = 6 * 3600
    /// Most pixels one job's Save* nodes may write in all (64 Mi: sixty-four
    /// 1024×1024 images, or one 8192×8192); a job past it fails with
    /// `too_large` (`pilot serve --max-output-pixels`).
    public var maxOutputPixels: Int? = 64 << 20
    /// Most pixels the PNG input frames of one submit may declare in all
    /// (decoded, about 12 bytes each): checked on their headers before any is decoded.
    public var maxSubmitPixels = 64 << 20
    /// Largest the state folder may grow (bytes) before submits are refused
    /// with `quota_exceeded` (`pilot serve --disk-quota`; nil: no bound).
    public var diskQuota: Int? = 32 << 30
    /// Automatic retention: jobs that ended more than this long ago are
    /// pruned at start and then hourly (nil: kept until a `prune` request).
    public var retention: TimeInterval?
    /// Messages older or newer than this (seconds) are refused as stale; signatures are remembered this long.
    public var replayWindow: TimeInterval = 300
    /// Jobs run in this child process (executable and arguments: `pilot
    /// worker --supervised`), restarted when it dies; nil runs them on a
    /// thread of the daemon (a crash there takes the daemon down).
    public var workerCommand: [String]?
    /// Reuse the key of an existing connection file (clients keep working across restarts).
    public var keepKey = true
    /// A PostgreSQL connection string (`postgresql://…` or `host=… dbname=…`):
    /// the daemon is a front of a queue many machines share (jobs, templates,
    /// clients and blobs live there; `pilot worker --queue` processes run the
    /// jobs). Nil: the single-machine SQLite store in the state folder.
    public var queue: String?
    /// With `queue`: how many workers run jobs on threads of this front
    /// (0: it only takes requests; workers elsewhere run everything).
    public var localWorkers = 0
    /// With `queue`: how long a claim holds a job before its worker must
    /// renew it; a worker silent this long is presumed dead.
    public var lease: TimeInterval = JobLease.seconds
    /// With `queue`: attempts a job gets (leases run out) before it fails as `worker_lost`.
    public var maxAttempts = 3

    public init(stateDirectory: URL, modelsDirectory: URL) {
        self.stateDirectory = stateDirectory
        self.modelsDirectory = modelsDirectory
    }

    /// `~/.local/state/pilot` (XDG_STATE_HOME honoured).
    public static var defaultStateDirectory: URL {
        let environment = ProcessInfo.processInfo.environment
        if let state = environment["XDG_STATE_HOME"], !state.isEmpty {
            return URL(fileURLWithPath: state, isDirectory: true).appendingPathComponent("pilot", isDirectory: true)
        }
        return FileManager.default.homeDirectoryForCurrentUser
            .appendingPathComponent(".local/state/pilot", isDirectory: true)
    }

    var connectionFile: URL { stateDirectory.appendingPathComponent(ConnectionInfo.fileName) }

    /// Whether `endpoint` stays on this machine (ipc, inproc, loopback tcp).
    public static func isLocal(_ endpoint: String) -> Bool {
        if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        let rest = endpoint.dropFirst("tcp://".count)
        let host = rest.hasPrefix("[") ? String(rest.dropFirst().prefix { $0 != "]" }) : String(rest.prefix { $0 != ":" })
        return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// Checks on a state directory that existed before the daemon started: it
/// holds the signing key, the job store and templates the daemon trusts, so
/// it must be a real directory of the daemon's own user that nobody else can
/// write to. A folder planted by someone else is refused, not adopted.
public enum StateDirectory {
    public static func checkTrusted(_ url: URL) throws {
        var info = stat()
        guard lstat(url.path, &info) == 0 else {
            throw DaemonError(.internal, "cannot inspect the state directory \(url.path): \(String(cString: strerror(errno)))")
        }
        if (info.st_mode & S_IFMT) == S_IFLNK {
            throw DaemonError(.internal, "the state directory \(url.path) is a symbolic link: give the real folder with --state")
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw DaemonError(.internal, "the state directory \(url.path) is not a directory")
        }
        guard info.st_uid == geteuid() else {
            throw DaemonError(.internal, "the state directory \(url.path) belongs to uid \(info.st_uid), not to this user (uid \(geteuid())): "
                              + "refusing to trust its key, store and templates; use another --state")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o022 == 0 else {
            throw DaemonError(.internal, "the state directory \(url.path) is writable by group or others (mode \(String(mode, radix: 8))): "
                              + "something may have been planted there; check it, then chmod 700 it")
        }
    }
}

/// Ages as users write them on the command line (`pilot prune --older-than`, `pilot serve --retain`).
public enum AgeText {
    /// Seconds in `text`: a number ≥ 0 with an optional unit s, m, h or d ("7d", "12h", "90").
    public static func seconds(parsing text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var number = Substring(text.trimmingCharacters(in: .whitespaces)), factor = 1.0
        if let last = number.last, let unit = units[last] {
            factor = unit
            number = number.dropLast()
        }
        guard let value = Double(number), value.isFinite, value >= 0 else { return nil }
        return value * factor
    }
}

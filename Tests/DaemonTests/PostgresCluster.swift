@testable import Daemon
import Foundation
import XCTest

/// A throwaway PostgreSQL cluster in a temporary folder, for the tests of
/// the PostgreSQL queue: `initdb` (as the `postgres` user when the tests
/// run as root, which initdb refuses), a server listening only on a Unix
/// socket in that folder, stopped and removed by `stop()`. Debian's
/// `postgresql` package provides the binaries (scripts/test.sh installs it).
final class PostgresCluster: @unchecked Sendable {
    let folder: URL
    let port: Int
    private let bin: URL
    private let asPostgres: Bool
    private var databases = 0

    /// The newest installed server's binaries.
    static func binaries() -> URL? {
        let root = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return versions.compactMap(Int.init).sorted().reversed()
            .map { root.appendingPathComponent("\($0)/bin") }
            .first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("initdb").path) }
    }

    init() throws {
        guard let bin = Self.binaries() else {
            throw XCTSkip("expected PostgreSQL's server binaries in /usr/lib/postgresql/N/bin (Debian: apt install postgresql; scripts/test.sh installs it)")
        }
        self.bin = bin
        asPostgres = getuid() == 0
        folder = URL(fileURLWithPath: "/tmp/pilot-pg-\(UUID().uuidString.prefix(8))", isDirectory: true)
        port = 20_000 + Int.random(in: 0..<20_000)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        if asPostgres { try run("/bin/chown", ["postgres:postgres", folder.path], asPostgres: false) }
        let data = folder.appendingPathComponent("data").path
        try run(bin.appendingPathComponent("initdb").path, ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], asPostgres: asPostgres)
        try start()
    }

    /// Starts the server (again, after ``crash()``: it recovers from its WAL).
    func start() throws {
        try run(bin.appendingPathComponent("pg_ctl").path,
                ["-D", folder.appendingPathComponent("data").path, "-l", folder.appendingPathComponent("server.log").path, "-w", "-o",
                 "-k \(folder.path) -p \(port) -c listen_addresses='' -c fsync=off", "start"], asPostgres: asPostgres)
    }

    /// Stops the server as `kill -9` would (immediate mode: no checkpoint, connections cut).
    func crash() throws {
        try run(bin.appendingPathComponent("pg_ctl").path,
                ["-D", folder.appendingPathComponent("data").path, "-m", "immediate", "-w", "stop"], asPostgres: asPostgres)
    }

    /// Runs `sql` with the `psql` program (not through the code under test);
    /// its rows unaligned, `|` between columns.
    func psql(_ database: String, _ sql: String) throws -> [String] {
        let output = folder.appendingPathComponent("psql-\(UUID().uuidString.prefix(8)).out")
        defer { try? FileManager.default.removeItem(at: output) }
        try run(bin.appendingPathComponent("psql").path, [database, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql, "-o", output.path],
                asPostgres: asPostgres)
        return (try String(contentsOf: output, encoding: .utf8)).split(separator: "\n").map(String.init)
    }

    /// A fresh, empty database's connection string.
    func newDatabase() throws -> String {
        databases += 1
        let name = "q\(databases)"
        try run(bin.appendingPathComponent("createdb").path, ["-h", folder.path, "-p", "\(port)", "-U", "postgres", name],
                asPostgres: asPostgres)
        return "host=\(folder.path) port=\(port) user=postgres dbname=\(name)"
    }

    func stop() {
        _ = try? run(bin.appendingPathComponent("pg_ctl").path,
                     ["-D", folder.appendingPathComponent("data").path, "-m", "immediate", "-w", "stop"], asPostgres: asPostgres)
        try? FileManager.default.removeItem(at: folder)
    }

    /// Runs `tool` to its end with posix_spawn and waitpid, output to a file
    /// (Foundation's Process did not reap `pg_ctl start`, whose server stays
    /// behind, and a pipe would be held open by that server).
    private func run(_ tool: String, _ arguments: [String], asPostgres: Bool) throws {
        let argv = asPostgres ? ["/usr/sbin/runuser", "-u", "postgres", "--", tool] + arguments : [tool] + arguments
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("pilot-pg-run-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: log) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else { throw PostgresClusterError("cannot start \(argv[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        let exited = (status & 0x7f) == 0, code = (status >> 8) & 0xff
        guard exited, code == 0 else {
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw PostgresClusterError("\((tool as NSString).lastPathComponent) \(arguments.joined(separator: " ")) failed (status \(status)): \(output)")
        }
    }
}

struct PostgresClusterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The ``JobQueue`` contract against PostgreSQL (a cluster started for this case).
final class PostgresJobQueueContractTests: JobQueueContractTests {
    // Linux's test discovery lists the methods a class declares, not those it inherits.
    override func testClaimsTakeTheHighestPriorityThenTheOldestAndCountAnAttempt() throws {
        try super.testClaimsTakeTheHighestPriorityThenTheOldestAndCountAnAttempt()
    }

    override func testAWorkerWhoseAttemptNoLongerHoldsTheJobCannotWriteIt() throws {
        try super.testAWorkerWhoseAttemptNoLongerHoldsTheJobCannotWriteIt()
    }

    override func testALeaseThatRunsOutRequeuesTheJobAndFencesItsWorker() throws {
        try super.testALeaseThatRunsOutRequeuesTheJobAndFencesItsWorker()
    }

    override func testAJobWhoseLeaseRunsOutOnEveryAttemptFailsAsWorkerLost() throws {
        try super.testAJobWhoseLeaseRunsOutOnEveryAttemptFailsAsWorkerLost()
    }

    override func testConcurrentClaimsNeverTakeTheSameJob() throws {
        try super.testConcurrentClaimsNeverTakeTheSameJob()
    }

    override func makeQueue() throws -> (queue: any JobQueue, enqueue: (String, Int) throws -> Void) {
        let queue = try PostgresJobQueue(connection: try SharedTestQueue.newDatabase())
        return (queue, { id, priority in try queue.enqueue(id, priority: priority) })
    }
}

/// One PostgreSQL cluster for the test process, started on first use.
///
/// `PILOT_TEST_QUEUE=postgresql`: every test daemon is a front of a shared
/// PostgreSQL queue (one cluster for the test process, a database per state
/// folder, so a daemon restarted on the same folder finds its jobs again)
/// with one worker thread: the daemon tests then check the front on
/// PostgreSQL as they check the single-machine daemon (`scripts/test.sh`
/// runs them both ways).
enum SharedTestQueue {
    static var isEnabled: Bool { ProcessInfo.processInfo.environment["PILOT_TEST_QUEUE"] == "postgresql" }

    nonisolated(unsafe) private static var cluster: PostgresCluster?
    nonisolated(unsafe) private static var databases: [String: String] = [:]
    private static let lock = NSLock()

    /// The connection string of `state`'s database (made on first use).
    static func connection(for state: URL) throws -> String {
        try lock.withLock {
            if let known = databases[state.standardizedFileURL.path] { return known }
            let made = try startedCluster().newDatabase()
            databases[state.standardizedFileURL.path] = made
            return made
        }
    }

    /// A fresh database in the test process's cluster (started on first use,
    /// stopped at exit), for tests of the PostgreSQL queue itself.
    static func newDatabase() throws -> String {
        try lock.withLock { try startedCluster().newDatabase() }
    }

    private static func startedCluster() throws -> PostgresCluster {
        if let cluster { return cluster }
        let started = try PostgresCluster()
        cluster = started
        atexit { SharedTestQueue.stopCluster() }
        return started
    }

    static func stopCluster() {
        cluster?.stop()
        cluster = nil
    }
}

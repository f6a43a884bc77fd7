import CZeroMQ
import Foundation
import Logging
import Workflow

/// What runs a daemon's jobs: a thread in the daemon (``JobWorker``, the
/// in-process daemons of the tests) or a supervised `pilot worker` process
/// (``WorkerSupervisor``, what `pilot serve` runs), so a crash inside a
/// kernel costs one job and never the request socket.
protocol JobRunning: AnyObject, Sendable {
    func start()
    /// A job was queued.
    func notify()
    /// The running job's id, if any.
    var runningJob: String? { get }
    /// The last step progress of `job` while it runs.
    func lastProgress(of job: String) -> JSONValue?
    /// Asks running job `id` to stop at its next step; false if it is not running.
    func cancel(_ id: String) -> Bool
    /// Stops taking jobs; a running job is requeued. Returns when done.
    func shutdown()
    /// Bytes held by the model and output cache of whoever runs the jobs.
    var cacheBytes: Int { get }
    /// For `info`: how jobs run (`thread`, or `process` with its pid and restarts).
    var summary: JSONValue { get }
}

extension JobWorker: JobRunning {
    var cacheBytes: Int { runner.executor.cache.totalBytes }
    var summary: JSONValue { .object(["mode": .string("thread")]) }
}

/// A front's own workers on a shared queue: N threads claiming from it
/// (none: the front only takes requests).
final class LocalWorkers: JobRunning, @unchecked Sendable {
    private let workers: [JobWorker]

    init(_ workers: [JobWorker]) { self.workers = workers }

    func start() { workers.forEach { $0.start() } }
    func notify() { workers.forEach { $0.notify() } }
    var runningJob: String? { workers.lazy.compactMap(\.runningJob).first }
    func lastProgress(of job: String) -> JSONValue? { workers.lazy.compactMap { $0.lastProgress(of: job) }.first }
    func cancel(_ id: String) -> Bool { workers.contains { $0.cancel(id) } }
    func shutdown() { workers.forEach { $0.shutdown() } }
    var cacheBytes: Int { workers.reduce(0) { $0 + $1.cacheBytes } }
    var summary: JSONValue { .object(["mode": .string("shared queue"), "local_workers": .int(workers.count)]) }
}

/// The pipe between `pilot serve` and the `pilot worker` it supervises:
/// one JSON object per line. The daemon writes `configure` (once, first),
/// `notify`, `cancel {job}` and `stop`; the worker writes `event {job,
/// type, content}`, `forget {job}` and `cache {bytes}`.
enum WorkerPipe {
    /// Longest line either side accepts (an event is a few KB; outputs lists stay far below this).
    static let maxLine = 8 << 20

    /// Writes `object` and a newline to `descriptor`; false if the other end is gone.
    @discardableResult
    static func send(_ object: [String: JSONValue], to descriptor: Int32) -> Bool {
        var data = Data(JSONValue.object(object).compact.utf8)
        data.append(0x0A)
        return data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let written = write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }

    enum Line {
        case message([String: JSONValue])
        /// Not a JSON object, or longer than ``maxLine``: the other side is not speaking this protocol.
        case malformed(String)
        case end
    }

    /// Reads newline-ended JSON objects from a descriptor.
    struct Reader {
        let descriptor: Int32
        private var buffer: [UInt8] = []
        private var scanned = 0

        init(descriptor: Int32) { self.descriptor = descriptor }

        mutating func next() -> Line {
            while true {
                if let newline = buffer[scanned...].firstIndex(of: 0x0A) {
                    let line = Data(buffer[..<newline])
                    buffer.removeSubrange(...newline)
                    scanned = 0
                    guard let value = try? JSONValue(parsing: line), let object = value.objectValue else {
                        return .malformed("a line that is not a JSON object (\(line.count) bytes)")
                    }
                    return .message(object)
                }
                scanned = buffer.count
                if buffer.count > WorkerPipe.maxLine { return .malformed("a line longer than \(WorkerPipe.maxLine) bytes") }
                var chunk = [UInt8](repeating: 0, count: 65_536)
                let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { return .end }
                buffer.append(contentsOf: chunk[..<count])
            }
        }
    }
}

/// Runs jobs in a `pilot worker` child process and keeps one running: the
/// child claims jobs from the same store, runs them and sends their events
/// here to be published. When it dies (a crash in a kernel, the kernel's
/// OOM killer), the job it ran is requeued, or failed as `crashed` once it
/// has killed its process ``JobStore/defaultMaxCrashes`` times, with the node
/// it last reached; then a new worker starts (after 0.5 s, doubling while
/// workers die within 10 s of their start, at most 30 s). The daemon, its
/// sockets and every other job go on.
final class WorkerSupervisor: JobRunning, @unchecked Sendable {
    private let executable: URL
    private let arguments: [String]
    /// Kept as values and turned into JSON when sent: a JSONValue tree held
    /// for the daemon's life reads as leaked to LeakSanitizer (its enum
    /// payload pointers carry tag bits the scan does not follow).
    private let setup: WorkerSetup
    private let store: JobStore
    private let publisher: EventPublisher
    private let logger: Logger

    private let condition = NSCondition()
    private var stopping = false
    private var finished = false
    private var child: Process?
    private var toChild: Int32 = -1
    private var running: String?
    private var progress: [String: JSONValue] = [:]
    private var lastNode: [String: String] = [:]
    private var cache = 0
    private var restarts = 0

    /// `command`: the worker's executable and arguments; `setup`: the
    /// ``WorkerSetup`` sent as its first line.
    init(command: [String], setup: WorkerSetup, store: JobStore, publisher: EventPublisher, logger: Logger) {
        executable = URL(fileURLWithPath: command[0])
        arguments = Array(command.dropFirst())
        self.setup = setup
        self.store = store
        self.publisher = publisher
        self.logger = logger
    }

    func start() {
        // A worker that died between two writes must not take the daemon with it.
        signal(SIGPIPE, SIG_IGN)
        // The worker dies with this thread (PR_SET_PDEATHSIG), so it is a thread of its own that lives until shutdown.
        // Not stored: a running thread holds itself (and this supervisor) until `supervise` returns.
        let thread = Thread { [self] in supervise() }
        thread.name = "pilot-worker-supervisor"
        thread.start()
    }

    func notify() { sendToChild(["op": .string("notify")]) }

    var runningJob: String? { condition.withLock { running } }

    func lastProgress(of job: String) -> JSONValue? { condition.withLock { progress[job] } }

    func cancel(_ id: String) -> Bool {
        // The store knows a claim before its started event arrives here.
        guard (try? store.job(id))?.state == .running, condition.withLock({ child != nil }) else { return false }
        return sendToChild(["op": .string("cancel"), "job": .string(id)])
    }

    var cacheBytes: Int { condition.withLock { cache } }

    var summary: JSONValue {
        condition.withLock {
            .object(["mode": .string("process"), "pid": child.map { .int(Int($0.processIdentifier)) } ?? .null,
                     "restarts": .int(restarts)])
        }
    }

    func shutdown() {
        condition.withLock {
            stopping = true
            condition.broadcast()
        }
        sendToChild(["op": .string("stop")])
        let deadline = Date().addingTimeInterval(120)
        let clean = condition.withLock { () -> Bool in
            while !finished { if !condition.wait(until: deadline) { return false } }
            return true
        }
        guard !clean else { return }
        // A worker that does not reach a step boundary in two minutes is stopped hard; its job goes back to the queue.
        let (pid, job) = condition.withLock { (child?.processIdentifier, running) }
        logger.error("the worker process did not stop within 120 s: killing it")
        if let pid { kill(pid, SIGKILL) }
        if let job { try? store.requeue(job, note: "requeued: the daemon stopped") }
        condition.withLock { while !finished { condition.wait() } }
    }

    @discardableResult
    private func sendToChild(_ message: [String: JSONValue]) -> Bool {
        condition.withLock { toChild >= 0 ? WorkerPipe.send(message, to: toChild) : false }
    }

    private func supervise() {
        defer { condition.withLock { finished = true; condition.broadcast() } }
        var quickDeaths = 0
        while !condition.withLock({ stopping }) {
            let began = Date()
            let process = Process()
            process.executableURL = executable
            process.arguments = arguments
            let input = Pipe(), output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            do {
                try process.run()
            } catch {
                logger.critical("cannot start the worker process \(executable.path): \(error)")
                quickDeaths += 1
                pause(before: quickDeaths)
                continue
            }
            // The configure line goes first, under the lock that guards every
            // other write, so a stop cannot overtake it.
            condition.withLock {
                child = process
                toChild = input.fileHandleForWriting.fileDescriptor
                WorkerPipe.send(["op": .string("configure"), "setup": setup.json], to: toChild)
                if stopping { WorkerPipe.send(["op": .string("stop")], to: toChild) }
            }
            var reader = WorkerPipe.Reader(descriptor: output.fileHandleForReading.fileDescriptor)
            reading: while true {
                switch reader.next() {
                case let .message(message): handle(message)
                case .end: break reading
                case let .malformed(what):
                    logger.error("the worker process wrote \(what): stopping it")
                    kill(process.processIdentifier, SIGKILL)
                    break reading
                }
            }
            process.waitUntilExit()
            let (job, node, stopped) = condition.withLock { () -> (String?, [String: String], Bool) in
                child = nil
                toChild = -1
                defer { running = nil; lastNode = [:]; progress = [:] }
                return (running, lastNode, stopping)
            }
            try? input.fileHandleForWriting.close()
            try? output.fileHandleForReading.close()
            let how = process.terminationReason == .uncaughtSignal
                ? "signal \(process.terminationStatus) (\(String(cString: strsignal(process.terminationStatus))))"
                : "exit status \(process.terminationStatus)"
            if stopped, process.terminationReason == .exit, process.terminationStatus == 0 { break }
            let during = job.map { " while running job \($0)" } ?? ""
            logger.error("the worker process (pid \(process.processIdentifier)) died with \(how)\(during)")
            recover(cause: "the worker process died with \(how)", lastNode: node)
            if stopped { break }
            quickDeaths = Date().timeIntervalSince(began) < 10 ? quickDeaths + 1 : 0
            condition.withLock { restarts += 1 }
            pause(before: quickDeaths)
        }
    }

    /// Waits before starting worker number `quickDeaths` in a row that died young (0.5 s, doubling, at most 30 s); a stop ends the wait.
    private func pause(before quickDeaths: Int) {
        let seconds = min(30, 0.5 * pow(2, Double(max(0, quickDeaths - 1))))
        let until = Date().addingTimeInterval(seconds)
        condition.withLock {
            while !stopping, condition.wait(until: until) {}
        }
    }

    /// The jobs a dead worker left running: requeued, or failed as crashed.
    private func recover(cause: String, lastNode: [String: String]) {
        var crashed: [String] = []
        do {
            let requeued = try store.requeueInterrupted(cause: cause, lastNode: lastNode, crashed: &crashed)
            for id in requeued {
                logger.warning("requeued: its worker process died", metadata: ["job": "\(id)"])
                publisher.publish(job: id, type: "requeued", content: ["node": lastNode[id].map(JSONValue.string) ?? .null,
                                                                      "reason": .string(cause)])
            }
            for id in crashed {
                logger.warning("failed as crashed: its worker process died under it on each attempt", metadata: ["job": "\(id)"])
                let error = (try? store.job(id))?.error ?? .null
                publisher.publish(job: id, type: "failed", content: ["error": error])
                publisher.forget(job: id)
            }
        } catch {
            logger.error("job store: cannot requeue the dead worker's job: \(error)")
        }
    }

    /// A line from the worker: events are published as they are; the
    /// running job, its progress and its node are followed for `status`,
    /// `info` and the crash record.
    private func handle(_ message: [String: JSONValue]) {
        switch message["op"]?.stringValue {
        case "event":
            guard let job = message["job"]?.stringValue, let type = message["type"]?.stringValue,
                  let content = message["content"]?.objectValue else {
                logger.error("the worker process sent an event without job, type or content")
                return
            }
            condition.withLock {
                switch type {
                case "started": running = job
                case "node_started": lastNode[job] = content["node"]?.stringValue
                case "progress" where JobWorker.isStepProgress(content): progress[job] = .object(content)
                case "finished", "failed", "cancelled", "requeued":
                    if running == job { running = nil }
                    progress.removeValue(forKey: job)
                    lastNode.removeValue(forKey: job)
                default: break
                }
            }
            var frames: [Data] = []
            for encoded in message["frames"]?.arrayValue ?? [] {
                guard let text = encoded.stringValue, let data = Data(base64Encoded: text) else {
                    logger.error("the worker process sent an event frame that is not base64")
                    return
                }
                frames.append(data)
            }
            publisher.publish(job: job, type: type, content: content, frames: frames)
        case "forget":
            if let job = message["job"]?.stringValue { publisher.forget(job: job) }
        case "cache":
            if let bytes = message["bytes"]?.intValue { condition.withLock { cache = bytes } }
        default:
            logger.error("the worker process sent an unknown message \(LogText.escaped(message["op"]?.compact ?? "without op", limit: 60))")
        }
    }
}

/// What a supervised worker needs of the daemon's configuration (the
/// `configure` line).
struct WorkerSetup: Sendable {
    var paths: JobPaths
    var memoryBudget: Int
    var device: String
    var jobTimeLimit: TimeInterval
    var maxOutputPixels: Int?

    var json: JSONValue {
        .object([
            "state": .string(paths.state.path), "models": .string(paths.models.path),
            "templates": .array(paths.templates.map { .string($0.path) }),
            "read": .array(paths.extraReadable.map { .string($0.path) }),
            "memory_budget": .int(memoryBudget), "device": .string(device), "job_time_limit": .float(jobTimeLimit),
            "max_output_pixels": maxOutputPixels.map(JSONValue.int) ?? .null,
        ])
    }

    init(paths: JobPaths, memoryBudget: Int, device: String, jobTimeLimit: TimeInterval, maxOutputPixels: Int?) {
        self.maxOutputPixels = maxOutputPixels
        self.paths = paths
        self.memoryBudget = memoryBudget
        self.device = device
        self.jobTimeLimit = jobTimeLimit
    }

    init(json: JSONValue) throws {
        func folders(_ key: String) -> [URL]? {
            json[key]?.arrayValue?.compactMap { $0.stringValue.map { URL(fileURLWithPath: $0, isDirectory: true) } }
        }
        guard let state = json["state"]?.stringValue, let models = json["models"]?.stringValue,
              let templates = folders("templates"), let read = folders("read"),
              let budget = json["memory_budget"]?.intValue, let device = json["device"]?.stringValue,
              let limit = json["job_time_limit"]?.doubleValue else {
            throw DaemonError(.invalidRequest, "the worker's configure line lacks state, models, templates, read, memory_budget, device or job_time_limit")
        }
        self.init(paths: JobPaths(state: URL(fileURLWithPath: state, isDirectory: true),
                                  models: URL(fileURLWithPath: models, isDirectory: true),
                                  templates: templates, extraReadable: read),
                  memoryBudget: budget, device: device, jobTimeLimit: limit, maxOutputPixels: json["max_output_pixels"]?.intValue)
    }
}

/// Where a supervised worker's events go: a line each to the daemon.
private final class PipeEventSink: JobEventSink, @unchecked Sendable {
    private let descriptor: Int32
    private let lock = NSLock()
    private let cacheBytes: @Sendable () -> Int

    init(descriptor: Int32, cacheBytes: @escaping @Sendable () -> Int) {
        self.descriptor = descriptor
        self.cacheBytes = cacheBytes
    }

    func publish(job: String, type: String, content: [String: JSONValue], frames: [Data]) {
        lock.withLock {
            var line: [String: JSONValue] = ["op": .string("event"), "job": .string(job), "type": .string(type),
                                             "content": .object(content)]
            // Binary frames (preview PNGs) cross the pipe as base64.
            if !frames.isEmpty { line["frames"] = .array(frames.map { .string($0.base64EncodedString()) }) }
            WorkerPipe.send(line, to: descriptor)
            if ["finished", "failed", "cancelled", "requeued"].contains(type) {
                WorkerPipe.send(["op": .string("cache"), "bytes": .int(cacheBytes())], to: descriptor)
            }
        }
    }

    func forget(job: String) {
        _ = lock.withLock { WorkerPipe.send(["op": .string("forget"), "job": .string(job)], to: descriptor) }
    }
}

/// The child side: `pilot worker --supervised`.
public enum SupervisedWorker {
    /// Runs jobs (on `nodes`, the program's node library) for the daemon that started this process, talking over
    /// standard input and output, until it says `stop` (then a running job
    /// is requeued and this returns) or goes away (then the process exits
    /// at once, leaving the job for the next daemon's start-up to requeue).
    /// Standard output belongs to the pipe: anything else printed goes to
    /// standard error.
    public static func run(nodes: NodeProvider, logger: Logger) throws {
        // Dies with the daemon even if the daemon is killed with SIGKILL.
        _ = pilot_die_with_parent()
        if getppid() == 1 { exit(1) }
        // Ctrl-C reaches the whole process group: the daemon decides when this worker stops.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
        umask(0o077)
        let pipe = dup(STDOUT_FILENO)
        guard pipe >= 0 else { throw DaemonError(.internal, "cannot duplicate standard output: \(String(cString: strerror(errno)))") }
        dup2(STDERR_FILENO, STDOUT_FILENO)

        var reader = WorkerPipe.Reader(descriptor: STDIN_FILENO)
        guard case let .message(first) = reader.next(), first["op"]?.stringValue == "configure", let json = first["setup"] else {
            throw DaemonError(.invalidRequest, "pilot worker --supervised: expected a configure line on standard input (it is started by pilot serve)")
        }
        let setup = try WorkerSetup(json: json)
        let store = try JobStore(path: setup.paths.state.appendingPathComponent("jobs.sqlite").path)
        let blobs = BlobStore(directory: setup.paths.state.appendingPathComponent("blobs", isDirectory: true))
        let runner = WorkflowRunner(nodes: nodes, executor: Executor(cache: OutputCache(budgetBytes: setup.memoryBudget)))
        let sink = PipeEventSink(descriptor: pipe) { runner.executor.cache.totalBytes }
        let worker = JobWorker(queue: store, blobs: blobs, publisher: sink, runner: runner, paths: setup.paths, logger: logger,
                               device: setup.device, timeLimit: setup.jobTimeLimit, maxOutputPixels: setup.maxOutputPixels)
        worker.start()
        while true {
            switch reader.next() {
            case let .message(message):
                switch message["op"]?.stringValue {
                case "notify": worker.notify()
                case "cancel": if let job = message["job"]?.stringValue { _ = worker.cancel(job) }
                case "stop":
                    worker.shutdown()
                    return
                default: logger.error("unknown message from the daemon: \(LogText.escaped(message["op"]?.compact ?? "without op", limit: 60))")
                }
            case let .malformed(what):
                logger.critical("the daemon wrote \(what): exiting")
                _exit(1)
            case .end:
                // The daemon is gone without a stop: leave at once (its successor requeues the job).
                _exit(1)
            }
        }
    }
}

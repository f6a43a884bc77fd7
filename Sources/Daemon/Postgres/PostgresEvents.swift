import CPostgres
import Foundation
import Logging
import Workflow

/// Events between machines: a worker sends each job event with
/// `pg_notify('pilot_events', …)`; every front LISTENs, re-signs and
/// publishes them on its own event socket. A notification carries at most
/// 8000 bytes: a larger event, and every binary frame (a preview's PNG),
/// travels as a content-addressed blob the notification names.
///
/// `seq` is the worker's: attempt *a* numbers its events from
/// *a* × 1,000,000 + 1, so a rerun's events sort after those of an attempt
/// that died, whichever front relays them. Events a front makes itself
/// (`queued`, `cancelled` while queued) continue its own count.
enum PostgresEvents {
    static let channel = "pilot_events"
    /// Wakes idle workers: a job was queued or requeued, or the queue resumed.
    static let jobsChannel = "pilot_jobs"
    /// Largest payload sent inline (PostgreSQL's limit is 8000 bytes).
    static let maxInline = 7_900
    /// The first `seq` of attempt `attempt`'s events.
    static func base(attempt: Int) -> Int { attempt * 1_000_000 }
}

/// The worker's side: events to `pg_notify`.
final class PostgresEventSink: JobEventSink, @unchecked Sendable {
    private let queue: PostgresJobQueue
    private let logger: Logger
    private let lock = NSLock()
    private var sequence: [String: Int] = [:]

    init(queue: PostgresJobQueue, logger: Logger) {
        self.queue = queue
        self.logger = logger
    }

    func begin(job: String, attempt: Int) {
        lock.withLock { sequence[job] = PostgresEvents.base(attempt: attempt) }
    }

    func publish(job: String, type: String, content: [String: JSONValue], frames: [Data]) {
        lock.withLock {
            let seq = (sequence[job] ?? 0) + 1
            sequence[job] = seq
            do {
                var blobs: [String: Data] = [:]
                var names: [JSONValue] = []
                for frame in frames {
                    let sha = Digest.sha256Hex(frame)
                    blobs[sha] = frame
                    names.append(.string(sha))
                }
                var payload: [String: JSONValue] = ["job": .string(job), "type": .string(type), "seq": .int(seq),
                                                    "content": .object(content)]
                if !names.isEmpty { payload["frames"] = .array(names) }
                var text = JSONValue.object(payload).compact
                if text.utf8.count > PostgresEvents.maxInline {
                    let data = Data(text.utf8)
                    let sha = Digest.sha256Hex(data)
                    blobs[sha] = data
                    text = JSONValue.object(["job": .string(job), "blob": .string(sha)]).compact
                }
                try queue.putBlobs(blobs, now: Date())
                try queue.notify(PostgresEvents.channel, text)
            } catch {
                logger.warning("event \(type) of job \(job) not sent: \(error)")
            }
        }
    }

    func forget(job: String) {
        lock.withLock { _ = sequence.removeValue(forKey: job) }
        try? queue.notify(PostgresEvents.channel, JSONValue.object(["job": .string(job), "forget": .bool(true)]).compact)
    }
}

/// A thread that LISTENs on one channel and hands each payload to
/// `receive`, reconnecting (with a growing pause) when the server goes away.
/// Notifications sent while it was disconnected are not replayed.
final class PostgresListener: @unchecked Sendable {
    private let conninfo: String
    private let channel: String
    private let logger: Logger
    private let receive: @Sendable (String) -> Void
    private let lock = NSLock()
    private var stopping = false
    private let done = DispatchSemaphore(value: 0)

    init(conninfo: String, channel: String, logger: Logger, receive: @escaping @Sendable (String) -> Void) {
        self.conninfo = conninfo
        self.channel = channel
        self.logger = logger
        self.receive = receive
    }

    func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "pilot-listen-\(channel)"
        thread.start()
    }

    func stop() {
        lock.withLock { stopping = true }
        done.wait()
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    private func loop() {
        defer { done.signal() }
        var pause = 0.1
        while !isStopping {
            do {
                let connection = try PostgresConnection(conninfo)
                try connection.query("LISTEN \(channel)")
                pause = 0.1
                while !isStopping {
                    for payload in try connection.notifications(timeout: 0.2) { receive(payload) }
                }
            } catch {
                if isStopping { return }
                logger.warning("listening on \(channel): \(error); again in \(pause) s")
                Thread.sleep(forTimeInterval: pause)
                pause = min(pause * 2, 5)
            }
        }
    }
}

/// The front's side: relays the events workers send, re-signed, on its
/// event socket. A client resyncs after an outage with `status`
/// (`last_event`, state, outputs).
final class PostgresEventRelay: @unchecked Sendable {
    private let queue: PostgresJobQueue
    private let publisher: EventPublisher
    private let logger: Logger
    private let lock = NSLock()
    private var progress: [String: JSONValue] = [:]
    private var listener: PostgresListener?

    init(queue: PostgresJobQueue, publisher: EventPublisher, logger: Logger) {
        self.queue = queue
        self.publisher = publisher
        self.logger = logger
    }

    func start() {
        let listener = PostgresListener(conninfo: queue.conninfo, channel: PostgresEvents.channel, logger: logger) { [self] in
            relay($0)
        }
        lock.withLock { self.listener = listener }
        listener.start()
    }

    /// Stops listening; the listener (whose closure holds this relay) is let go.
    func stop() {
        lock.withLock { () -> PostgresListener? in
            defer { listener = nil }
            return listener
        }?.stop()
    }

    /// The last step progress relayed for `job` while it runs.
    func lastProgress(of job: String) -> JSONValue? { lock.withLock { progress[job] } }

    private func relay(_ text: String) {
        guard var payload = try? JSONValue(parsing: Data(text.utf8)), let job = payload["job"]?.stringValue else { return }
        if payload["forget"]?.boolValue == true {
            publisher.forget(job: job)
            return
        }
        if let sha = payload["blob"]?.stringValue {
            guard let data = try? queue.blob(sha), let full = try? JSONValue(parsing: data) else {
                logger.warning("event relay: event blob \(sha) of job \(job) is missing")
                return
            }
            payload = full
        }
        guard let type = payload["type"]?.stringValue, let seq = payload["seq"]?.intValue,
              let content = payload["content"]?.objectValue else { return }
        var frames: [Data] = []
        for name in payload["frames"]?.arrayValue ?? [] {
            guard let sha = name.stringValue, let frame = try? queue.blob(sha) else { return }
            frames.append(frame)
        }
        lock.withLock {
            switch type {
            case "progress" where JobWorker.isStepProgress(content): progress[job] = .object(content)
            case "finished", "failed", "cancelled", "requeued": progress.removeValue(forKey: job)
            default: break
            }
        }
        publisher.publish(job: job, type: type, content: content, frames: frames, seq: seq)
    }
}

extension PostgresJobQueue {
    /// Sends `payload` on `channel` to every session LISTENing there.
    func notify(_ channel: String, _ payload: String) throws {
        try pool.with { db in try db.query("SELECT pg_notify($1, $2)", [channel, payload]) }
    }
}

extension PostgresConnection {
    /// Waits up to `timeout` seconds for notifications on the channels this
    /// connection LISTENs to; their payloads, in the order sent.
    func notifications(timeout: TimeInterval) throws -> [String] {
        var payloads = drainNotifications()
        if !payloads.isEmpty { return payloads }
        var descriptor = pollfd(fd: PQsocket(raw), events: Int16(POLLIN), revents: 0)
        guard descriptor.fd >= 0 else { throw PostgresError(sqlState: nil, message: "the connection is closed") }
        let ready = poll(&descriptor, 1, Int32(timeout * 1000))
        if ready < 0, errno != EINTR { throw PostgresError(sqlState: nil, message: "poll: \(String(cString: strerror(errno)))") }
        guard PQconsumeInput(raw) == 1 else {
            throw PostgresError(sqlState: nil, message: String(cString: PQerrorMessage(raw)))
        }
        payloads = drainNotifications()
        return payloads
    }

    private func drainNotifications() -> [String] {
        var payloads: [String] = []
        while let notice = PQnotifies(raw) {
            payloads.append(String(cString: notice.pointee.extra))
            PQfreemem(notice)
        }
        return payloads
    }
}

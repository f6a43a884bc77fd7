import CZeroMQ
import Foundation
import Workflow

/// Where a job's events go: the daemon's event socket, or (in a supervised
/// `pilot worker` process) the pipe to the daemon that publishes them.
protocol JobEventSink: AnyObject, Sendable {
    /// Publishes event `type` of `job`; `frames` are its binary frames (a preview's PNG).
    func publish(job: String, type: String, content: [String: JSONValue], frames: [Data])
    func forget(job: String)
    /// Attempt `attempt` of `job` starts (a sink numbering events per attempt starts over).
    func begin(job: String, attempt: Int)
}

extension JobEventSink {
    func begin(job: String, attempt: Int) {}

    func publish(job: String, type: String, content: [String: JSONValue]) {
        publish(job: job, type: type, content: content, frames: [])
    }
}

/// The event socket (XPUB): signed events whose first frame, the topic, is
/// the job id, published from any thread (the socket is used under a lock).
///
/// A subscription to a topic starting with `welcome.` is answered with a
/// `welcome` event on that topic: a client that has seen it knows its
/// earlier subscriptions are in place and will miss nothing after.
///
/// Subscriptions are granted one by one (XPUB manual mode): `authorize`
/// sees the connection's authenticated client (CURVE's user id; nil without
/// CURVE) and the topic, and a refused subscription delivers nothing.
public final class EventPublisher: JobEventSink, @unchecked Sendable {
    private var socket: ZMQSocket
    private let make: @Sendable () throws -> ZMQSocket
    /// The bound endpoint (a `*` port resolved).
    let endpoint: String
    private let signer: MessageSigner
    private let authorize: @Sendable (_ client: String?, _ topic: String) -> Bool
    private let lock = NSLock()
    private var sequence: [String: Int] = [:]

    /// `make` gives a new XPUB socket with its security options set, not yet bound.
    init(make: @escaping @Sendable () throws -> ZMQSocket, endpoint: String, signer: MessageSigner,
         authorize: @escaping @Sendable (_ client: String?, _ topic: String) -> Bool = { _, _ in true }) throws {
        self.make = make
        self.signer = signer
        self.authorize = authorize
        socket = try Self.open(make, at: endpoint)
        self.endpoint = socket.lastEndpoint
    }

    private static func open(_ make: () throws -> ZMQSocket, at endpoint: String) throws -> ZMQSocket {
        let socket = try make()
        try socket.setOption(ZMQ_XPUB_MANUAL, Int32(1))
        try socket.setOption(ZMQ_SNDHWM, Int32(100_000))
        try socket.bind(endpoint)
        return socket
    }

    /// Closes the socket, with every subscriber's connection, and binds a new
    /// one at the same endpoint. Subscribers reconnect by themselves and
    /// subscribe again, each authenticated and authorised anew; events
    /// published in between are missed (clients following a job ask for its
    /// status now and then).
    func reconnectAll() throws {
        try lock.withLock {
            try? socket.unbind(endpoint)
            socket.close()
            // Some libzmq versions remove an ipc:// socket file on their I/O
            // thread when its listener ends: give that a moment, so it cannot
            // remove the new socket's file after the bind (4.3.4 leaves the
            // file, and bind replaces it).
            if endpoint.hasPrefix("ipc://") {
                let path = String(endpoint.dropFirst("ipc://".count))
                for _ in 0..<10 where FileManager.default.fileExists(atPath: path) { Thread.sleep(forTimeInterval: 0.01) }
            }
            var lastError: Error?
            // The endpoint is free at once for ipc://; a tcp:// port may take a moment.
            for _ in 0..<50 {
                do {
                    socket = try Self.open(make, at: endpoint)
                    return
                } catch {
                    lastError = error
                    Thread.sleep(forTimeInterval: 0.02)
                }
            }
            throw lastError!
        }
    }

    /// Publishes event `type` for `job`; `content` gains `job` and `seq`
    /// (1, 2, … per job, so a client can order and de-duplicate).
    public func publish(job: String, type: String, content: [String: JSONValue] = [:], frames: [Data] = []) {
        publish(job: job, type: type, content: content, frames: frames, seq: nil)
    }

    /// `seq`: the number a worker elsewhere gave the event (relayed through
    /// PostgreSQL); this publisher's own count continues from the highest seen.
    func publish(job: String, type: String, content: [String: JSONValue], frames: [Data], seq: Int?) {
        lock.withLock {
            let next = seq ?? (sequence[job] ?? 0) + 1
            sequence[job] = max(next, sequence[job] ?? 0)
            var body = content
            body["job"] = .string(job)
            body["seq"] = .int(next)
            send(topic: job, WireMessage(type: type, content: .object(body), frames: frames))
        }
    }

    /// Forgets `job`'s sequence counter (after its final event).
    public func forget(job: String) {
        lock.withLock { _ = sequence.removeValue(forKey: job) }
    }

    /// The last sequence number published for `job` (0 if none).
    public func lastSequence(job: String) -> Int {
        lock.withLock { sequence[job] ?? 0 }
    }

    /// Longest subscription topic accepted (job ids and welcome topics are under 50).
    static let maxTopicBytes = 256
    /// Largest message the event socket reads from a subscriber (ZMQ_MAXMSGSIZE).
    static let maxSubscriptionMessage = 4096
    /// Subscription messages handled per turn of the request loop, so a
    /// flood of them cannot starve requests.
    static let subscriptionsPerTurn = 256

    func serviceSubscriptions() {
        lock.withLock {
            var handled = 0
            while handled < Self.subscriptionsPerTurn, let (frames, client) = try? socket.receiveWithUser(dontWait: true) {
                handled += 1
                // Byte 1 subscribes, 0 unsubscribes; the rest is the topic (empty: every event).
                guard let first = frames.first, !first.isEmpty, first.count <= Self.maxTopicBytes + 1,
                      first[first.startIndex] <= 1 else { continue }
                let topic = String(decoding: first.dropFirst(), as: UTF8.self)
                // Manual mode: the option applies to the connection the message came from.
                guard first[first.startIndex] == 1 else {
                    try? socket.setOption(ZMQ_UNSUBSCRIBE, Array(first.dropFirst()))
                    continue
                }
                guard topic.hasPrefix("welcome.") || authorize(client, topic) else { continue }
                try? socket.setOption(ZMQ_SUBSCRIBE, Array(first.dropFirst()))
                if topic.hasPrefix("welcome.") {
                    send(topic: topic, WireMessage(type: "welcome", content: .object(["topic": .string(topic)])))
                }
            }
        }
    }

    private func send(topic: String, _ message: WireMessage) {
        // PUB never blocks: above the high-water mark libzmq drops for that subscriber.
        try? socket.send([Data(topic.utf8)] + message.encoded(signer: signer), dontWait: true)
    }
}

import CZeroMQ
import Foundation
import Workflow

/// A client of a running daemon: signed requests over a DEALER socket,
/// found through the daemon's connection file.
public final class DaemonClient: @unchecked Sendable {
    public let connection: ConnectionInfo
    public let signer: MessageSigner
    private let socket: ZMQSocket
    /// Seconds a request waits for its reply.
    public var timeout: TimeInterval

    public init(connection: ConnectionInfo, timeout: TimeInterval = 30) throws {
        self.connection = connection
        self.signer = connection.signer
        self.timeout = timeout
        socket = try ZMQSocket(.dealer)
        if let serverKey = connection.curveServerKey {
            try socket.makeCurveClient(serverKey: serverKey, keyPair: connection.curveKeyPair)
        }
        // Queue nothing for a peer not (yet) connected, and never block longer than the timeout.
        try socket.setOption(ZMQ_IMMEDIATE, Int32(1))
        try socket.setOption(ZMQ_SNDTIMEO, Int32(clamping: Int(min(timeout, 3600) * 1000)))
        try socket.connect(connection.requests)
    }

    /// Reads the connection file: `--connection FILE`, else `STATE/connection.json`.
    public convenience init(connectionFile: URL, timeout: TimeInterval = 30) throws {
        try self.init(connection: ConnectionInfo.read(from: connectionFile), timeout: timeout)
    }

    /// Sends request `type` and waits for its reply; an error reply throws its ``DaemonError``.
    @discardableResult
    public func request(_ type: String, _ content: [String: JSONValue] = [:], frames: [Data] = []) throws -> WireMessage {
        let message = WireMessage(type: type, content: .object(content), frames: frames)
        try sendRaw(message.encoded(signer: signer))
        let reply = try awaitReply(to: message.header.id)
        if reply.content["status"]?.stringValue == "error" {
            throw reply.content["error"].flatMap(DaemonError.init(json:))
                ?? DaemonError(.internal, "error reply without an error object")
        }
        return reply
    }

    /// Sends raw frames (tests of malformed messages).
    public func sendRaw(_ frames: [Data]) throws {
        do {
            try socket.send(frames)
        } catch let error as ZMQError where error.wouldBlock {
            throw DaemonError(.internal, "cannot reach the daemon at \(connection.requests) within \(Int(timeout)) s "
                              + "(is `pilot serve` running, with this connection file?)")
        }
    }

    /// The next reply, authenticated; with `parent`, replies to other requests are skipped.
    public func awaitReply(to parent: String?) throws -> WireMessage {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, socket.waitReadable(timeout: Int(left * 1000)), let frames = try socket.receive(dontWait: true) else {
                throw DaemonError(.internal, "no reply from the daemon at \(connection.requests) within \(Int(timeout)) s "
                                  + "(is `pilot serve` running, with this connection file?)")
            }
            let reply = try Self.decodeReply(frames, signer: signer)
            // A refusal of a message the daemon could not authenticate carries no parent: it answers ours.
            if parent == nil || reply.header.parent == parent || (reply.header.parent == nil && reply.header.type == "error") {
                return reply
            }
        }
    }
}

extension DaemonClient {
    /// A reply, authenticated. The daemon signs the refusal of a request it
    /// could not authenticate with its own key, so a wrong or revoked key
    /// shows as a reply that does not verify: say so.
    static func decodeReply(_ frames: [Data], signer: MessageSigner) throws -> WireMessage {
        let decoded: Result<(WireMessage, String), DaemonError> = Result { () throws(DaemonError) in
            try WireMessage.decode(frames[...], signer: signer)
        }
        switch decoded {
        case let .success((message, _)): return message
        case let .failure(error) where error.code == .badSignature:
            throw DaemonError(.badSignature, "the daemon refused this connection file's key, or its reply does not verify "
                              + "with it: the key is wrong, was revoked (pilot keys revoke) or the daemon started with a new one")
        case let .failure(error): throw error
        }
    }
}

/// Receives a daemon's events. After ``init(connection:topics:)`` returns,
/// the subscriptions are live (a `welcome` event came back), so nothing
/// published afterwards is missed.
public final class EventSubscriber: @unchecked Sendable {
    private let socket: ZMQSocket
    private let signer: MessageSigner

    /// An event: its topic (the job id) and message.
    public struct Event: Sendable {
        public var topic: String
        public var message: WireMessage
        public var type: String { message.header.type }
        public var content: JSONValue { message.content }
    }

    /// Subscribes to `topics` (job ids; `[""]` for every event).
    public init(connection: ConnectionInfo, topics: [String], timeout: TimeInterval = 10) throws {
        signer = connection.eventSigner
        socket = try ZMQSocket(.sub)
        if let serverKey = connection.curveServerKey {
            try socket.makeCurveClient(serverKey: serverKey, keyPair: connection.curveKeyPair)
        }
        for topic in topics { try socket.setOption(ZMQ_SUBSCRIBE, topic) }
        let welcome = "welcome." + UUID().uuidString.lowercased()
        try socket.setOption(ZMQ_SUBSCRIBE, welcome)
        try socket.connect(connection.events)
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            guard let event = try next(timeout: max(0, deadline.timeIntervalSinceNow)) else {
                throw DaemonError(.internal, "no welcome from the daemon's event socket \(connection.events) within \(Int(timeout)) s")
            }
            if event.topic == welcome { break }
        }
    }

    /// Adds a subscription (live once a later event on it arrives).
    public func subscribe(_ topic: String) throws {
        try socket.setOption(ZMQ_SUBSCRIBE, topic)
    }

    /// The next authenticated event, or nil after `timeout` seconds.
    public func next(timeout: TimeInterval) throws -> Event? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard socket.waitReadable(timeout: Int(max(0, left) * 1000)), let frames = try socket.receive(dontWait: true) else {
                return nil
            }
            guard frames.count >= 5, let (message, _) = try? WireMessage.decode(frames[1...], signer: signer) else { continue }
            return Event(topic: String(decoding: frames[0], as: UTF8.self), message: message)
        }
    }
}

extension DaemonClient {
    /// Follows `job` until it is finished, failed or cancelled: subscribes
    /// to its events, catches up with `status`, then hands each newer event
    /// to `onEvent`. Returns the final status (the `job` object).
    /// `onSubscribed` sees the first status, once no later event can be missed.
    public func follow(job: String, timeout: TimeInterval = .infinity,
                       onSubscribed: (JSONValue) -> Void = { _ in },
                       onEvent: (EventSubscriber.Event) -> Void = { _ in }) throws -> JSONValue {
        let subscriber = try EventSubscriber(connection: connection, topics: [job])
        var status = try request("status", ["job": .string(job)]).content["job"] ?? .null
        onSubscribed(status)
        var seen = status["last_event"]?.intValue ?? 0
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let state = status["state"]?.stringValue.flatMap(JobState.init(rawValue:)), state.isFinal { return status }
            guard deadline.timeIntervalSinceNow > 0 else {
                throw DaemonError(.notFinished, "job \(job) is still \(status["state"]?.stringValue ?? "unknown") after \(Int(timeout)) s")
            }
            // Ask again now and then: a restarted daemon begins its sequence numbers anew.
            if let event = try subscriber.next(timeout: min(5, max(0.01, deadline.timeIntervalSinceNow))) {
                let seq = event.content["seq"]?.intValue ?? 0
                if seq > seen || seq == 1 {
                    seen = seq
                    onEvent(event)
                }
                guard ["finished", "failed", "cancelled"].contains(event.type) else { continue }
            }
            status = try request("status", ["job": .string(job)]).content["job"] ?? .null
        }
    }
}

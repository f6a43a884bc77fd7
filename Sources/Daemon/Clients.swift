import CZeroMQ
import Foundation
import Workflow

/// What a client may do beyond its own jobs.
public enum ClientRole: String, Sendable, CaseIterable {
    /// Sees, cancels and prunes every job; issues and revokes client keys.
    case admin
    /// Sees and cancels only the jobs it submitted.
    case user
}

/// One identity the daemon knows: its signing key, its CURVE public key (the
/// allow-list entry when the sockets are encrypted), its role and caps.
///
/// The daemon's own user is the client `owner` (an admin), whose key is the
/// one in `STATE/connection.json`; `pilot keys add NAME` issues others.
public struct ClientRecord: Sendable, Equatable {
    public var name: String
    /// The HMAC key, hex.
    public var key: String
    /// The client's CURVE public key (Z85), when it was issued one.
    public var curvePublicKey: String?
    public var role: ClientRole
    /// The highest priority its submits may ask for.
    public var maxPriority: Int
    /// How many of its jobs may be queued or running at once.
    public var maxQueued: Int
    public var created: Date
    public var revoked: Date?

    public static let ownerName = "owner"

    public init(name: String, key: String, curvePublicKey: String?, role: ClientRole, maxPriority: Int, maxQueued: Int,
                created: Date = Date(), revoked: Date? = nil) {
        self.name = name
        self.key = key
        self.curvePublicKey = curvePublicKey
        self.role = role
        self.maxPriority = maxPriority
        self.maxQueued = maxQueued
        self.created = created
        self.revoked = revoked
    }

    public var isAdmin: Bool { role == .admin }

    /// What `clients` replies show: never the key.
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(name), "role": .string(role.rawValue), "max_priority": .int(maxPriority),
            "max_queued": .int(maxQueued), "created": .string(WireTime.format(created)),
            "curve": .bool(curvePublicKey != nil),
        ]
        if let revoked { object["revoked"] = .string(WireTime.format(revoked)) }
        return .object(object)
    }

    /// Client names: 1–64 letters, digits, `.`, `_`, `-`, not starting with `.` or `-`.
    public static func isValidName(_ name: String) -> Bool {
        name.utf8.count <= 64 && name.range(of: "^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$", options: .regularExpression) != nil
    }
}

/// The clients allowed now, by name and by CURVE key; safe from any thread.
/// Lookups are dictionary reads, so resolving a message's key costs nothing
/// whatever the number of clients or the message's size.
public final class ClientRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private var byName: [String: (record: ClientRecord, signer: MessageSigner)] = [:]
    private var byCurveKey: [String: String] = [:]

    public init(_ records: [ClientRecord]) {
        for record in records { install(record) }
    }

    private func install(_ record: ClientRecord) {
        guard record.revoked == nil, let signer = MessageSigner(hexKey: record.key) else { return }
        byName[record.name] = (record, signer)
        if let curve = record.curvePublicKey { byCurveKey[curve] = record.name }
    }

    /// The active client `name` and its signer.
    public func client(_ name: String) -> (record: ClientRecord, signer: MessageSigner)? {
        lock.withLock { byName[name] }
    }

    /// The active client whose CURVE public key (Z85) is `key`.
    public func client(curveKey key: String) -> String? {
        lock.withLock { byCurveKey[key] }
    }

    public func add(_ record: ClientRecord) {
        lock.withLock { install(record) }
    }

    /// Forgets `name`: its key and CURVE key stop working at once.
    public func revoke(_ name: String) {
        lock.withLock {
            if let removed = byName.removeValue(forKey: name), let curve = removed.record.curvePublicKey {
                byCurveKey.removeValue(forKey: curve)
            }
        }
    }
}

/// Answers libzmq's ZAP requests (RFC 27) for CURVE handshakes on both
/// sockets: a client whose public key is not on the allow-list never
/// completes its handshake, so it can neither send requests nor read
/// events. The user id handed back is the client's name, which every
/// message from that connection then carries (`User-Id`).
final class ZAPHandler {
    /// Where libzmq looks for the handler, in the sockets' context.
    static let endpoint = "inproc://zeromq.zap.01"
    let socket: ZMQSocket
    private let clients: ClientRegistry

    init(context: ZMQContext, clients: ClientRegistry) throws {
        socket = try ZMQSocket(.rep, context: context)
        try socket.bind(Self.endpoint)
        self.clients = clients
    }

    /// Answers the waiting requests (at most `limit`); returns how many were refused.
    @discardableResult
    func serve(limit: Int = 256) -> Int {
        var refused = 0
        for _ in 0..<limit {
            guard let frames = try? socket.receive(dontWait: true) else { break }
            let (reply, allowed) = Self.answer(frames, clients: clients)
            if !allowed { refused += 1 }
            try? socket.send(reply)
        }
        return refused
    }

    /// The reply to one ZAP request: version, request id, status code and
    /// text, user id, metadata. Only CURVE with a known key is allowed.
    static func answer(_ frames: [Data], clients: ClientRegistry) -> (reply: [Data], allowed: Bool) {
        let requestID = frames.count > 1 ? frames[1] : Data()
        func reply(_ code: String, _ text: String, user: String = "") -> [Data] {
            [Data("1.0".utf8), requestID, Data(code.utf8), Data(text.utf8), Data(user.utf8), Data()]
        }
        guard frames.count >= 7, frames[0] == Data("1.0".utf8) else {
            return (reply("500", "malformed ZAP request"), false)
        }
        guard frames[5] == Data("CURVE".utf8), frames[6].count == 32 else {
            return (reply("400", "CURVE with a client key is required"), false)
        }
        var text = [CChar](repeating: 0, count: 41)
        let encoded = frames[6].withUnsafeBytes { raw in
            zmq_z85_encode(&text, raw.bindMemory(to: UInt8.self).baseAddress, 32)
        }
        guard encoded != nil, let name = clients.client(curveKey: cText(text)) else {
            return (reply("400", "client key not allowed"), false)
        }
        return (reply("200", "OK", user: name), true)
    }
}

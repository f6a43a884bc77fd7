import Crypto
import Foundation
import Workflow

/// The protocol's identifier, the first frame of every message.
public let pilotProtocolID = "pilot/1"

/// Every error a reply or event can carry, by its wire code
/// (`docs/protocol.md` lists each).
public enum ErrorCode: String, Sendable, CaseIterable {
    /// Fewer frames than protocol, signature, header and content; or a header without id/type/time.
    case malformedMessage = "malformed_message"
    case unsupportedProtocol = "unsupported_protocol"
    case unsigned
    case badSignature = "bad_signature"
    /// The same signature was seen before (a replayed message).
    case replayed
    /// The header's time is too far from the daemon's clock for replays to be detected.
    case stale
    case invalidJSON = "invalid_json"
    case tooLarge = "too_large"
    case unknownType = "unknown_type"
    /// A request's content lacks a field or has one of the wrong type.
    case invalidRequest = "invalid_request"
    case invalidWorkflow = "invalid_workflow"
    case invalidParameters = "invalid_parameters"
    case unknownTemplate = "unknown_template"
    case notFound = "not_found"
    case notFinished = "not_finished"
    case notCancellable = "not_cancellable"
    /// `move` on a job that is no longer queued (running or ended).
    case notQueued = "not_queued"
    case shuttingDown = "shutting_down"
    /// A job failed while running (events and status only).
    case nodeFailed = "node_failed"
    /// The daemon died while the job ran, as often as a job may be retried (status only).
    case crashed
    /// The job's lease ran out on each of its attempts (its worker died, froze or was cut off) (status only).
    case workerLost = "worker_lost"
    /// The job ran past the daemon's time limit (`--job-time-limit`) and was stopped.
    case timeout
    case pathNotAllowed = "path_not_allowed"
    /// The client's role does not allow the request (only admins list clients, prune, issue keys).
    case forbidden
    /// The client's cap on queued jobs or on priority is reached.
    case quotaExceeded = "quota_exceeded"
    case `internal`
}

/// A structured error: what went wrong, in words, with details a program can use.
public struct DaemonError: Error, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public var details: JSONValue?

    public init(_ code: ErrorCode, _ message: String, details: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public var json: JSONValue {
        var object: [String: JSONValue] = ["code": .string(code.rawValue), "message": .string(message)]
        if let details { object["details"] = details }
        return .object(object)
    }

    public init?(json: JSONValue) {
        guard let text = json["code"]?.stringValue, let message = json["message"]?.stringValue else { return nil }
        self.init(ErrorCode(rawValue: text) ?? .internal, message, details: json["details"])
    }
}

/// A message's header: who sent what, when, in answer to what.
public struct MessageHeader: Sendable, Equatable {
    /// Unique per message (a UUID).
    public var id: String
    /// The request, reply or event type (`submit`, `submit_reply`, `progress`).
    public var type: String
    /// When it was sent (``WireTime``).
    public var time: String
    /// On replies: the request's id.
    public var parent: String?

    public init(id: String = UUID().uuidString.lowercased(), type: String, time: String = WireTime.format(Date()), parent: String? = nil) {
        self.id = id
        self.type = type
        self.time = time
        self.parent = parent
    }

    var json: JSONValue {
        var object: [String: JSONValue] = ["id": .string(id), "type": .string(type), "time": .string(time)]
        if let parent { object["parent"] = .string(parent) }
        return .object(object)
    }
}

/// One protocol message: header, JSON content and binary frames (PNG,
/// safetensors bytes), as it travels after the routing envelope:
///
///     "pilot/1" | signature | header JSON | content JSON | binary frame …
public struct WireMessage: Sendable {
    public var header: MessageHeader
    public var content: JSONValue
    public var frames: [Data]

    public init(header: MessageHeader, content: JSONValue = .object([:]), frames: [Data] = []) {
        self.header = header
        self.content = content
        self.frames = frames
    }

    public init(type: String, content: JSONValue = .object([:]), frames: [Data] = [], parent: String? = nil) {
        self.init(header: MessageHeader(type: type, parent: parent), content: content, frames: frames)
    }

    /// The frames to send: protocol id, signature, header, content, binaries.
    public func encoded(signer: MessageSigner) -> [Data] {
        let header = header.json.data, content = content.data
        let signature = signer.signatureFrame(of: [header, content] + frames)
        return [Data(pilotProtocolID.utf8), Data(signature.utf8), header, content] + frames
    }

    /// Decodes and authenticates `parts` (the frames after the envelope),
    /// signed by the one key `signer` holds (replies and events, which the
    /// daemon signs without a key name).
    /// Returns the message and its signature (for replay detection).
    public static func decode(_ parts: ArraySlice<Data>, signer: MessageSigner) throws(DaemonError) -> (WireMessage, String) {
        let (message, signature, _) = try decode(parts) { name in name == nil ? signer : nil }
        return (message, signature)
    }

    /// Longest signature frame: a 64-byte key name, a colon and 64 hex digits.
    static let maxSignatureFrame = 64 + 1 + 64

    /// Decodes and authenticates `parts` with the key the signature frame
    /// names: `HEX` is signed with the unnamed key (`signers(nil)`),
    /// `NAME:HEX` with client NAME's. The key is found by a dictionary
    /// lookup before any hashing; an unknown name and a wrong key read alike.
    /// Returns the message, its signature and the key's name.
    public static func decode(_ parts: ArraySlice<Data>, signers: (String?) -> MessageSigner?)
        throws(DaemonError) -> (WireMessage, String, String?) {
        guard parts.count >= 4 else {
            throw DaemonError(.malformedMessage,
                              "expected at least 4 frames (protocol, signature, header, content), found \(parts.count)")
        }
        let start = parts.startIndex
        let protocolID = String(decoding: parts[start], as: UTF8.self)
        guard protocolID == pilotProtocolID else {
            throw DaemonError(.unsupportedProtocol, "expected protocol '\(pilotProtocolID)' in frame 1, found '\(protocolID.prefix(40))'")
        }
        guard !parts[start + 1].isEmpty else { throw DaemonError(.unsigned, "the message is not signed (empty signature frame)") }
        let wrong = DaemonError(.badSignature, "the HMAC-SHA256 signature does not match the message "
                                + "(wrong or revoked key, unknown client, or altered frames)")
        guard parts[start + 1].count <= Self.maxSignatureFrame else { throw wrong }
        let frame = String(decoding: parts[start + 1], as: UTF8.self)
        var keyName: String?, signature = frame
        if let colon = frame.firstIndex(of: ":") {
            keyName = String(frame[..<colon])
            signature = String(frame[frame.index(after: colon)...])
        }
        guard let signer = signers(keyName) else { throw wrong }
        let signed = Array(parts[(start + 2)...])
        guard signer.verify(signature, of: signed) else { throw wrong }
        let headerJSON: JSONValue, content: JSONValue
        do { headerJSON = try JSONValue(parsing: parts[start + 2]) } catch {
            throw DaemonError(.invalidJSON, "the header frame is not JSON")
        }
        do { content = try JSONValue(parsing: parts[start + 3]) } catch {
            throw DaemonError(.invalidJSON, "the content frame is not JSON")
        }
        guard case .object = content else {
            throw DaemonError(.invalidJSON, "the content must be a JSON object, found \(content.typeName)")
        }
        guard let id = headerJSON["id"]?.stringValue, !id.isEmpty, let type = headerJSON["type"]?.stringValue,
              let time = headerJSON["time"]?.stringValue else {
            throw DaemonError(.malformedMessage, "the header must be an object with string fields id, type and time")
        }
        let header = MessageHeader(id: id, type: type, time: time, parent: headerJSON["parent"]?.stringValue)
        return (WireMessage(header: header, content: content, frames: Array(parts[(start + 4)...])), signature, keyName)
    }
}

/// HMAC-SHA256 over a message's frames, each preceded by its length as 8
/// big-endian bytes (so bytes cannot move between frames unnoticed); the
/// signature is the MAC in lowercase hex. A client key issued by `pilot
/// keys add` signs as `NAME:HEX`, so the daemon knows which key to check.
public struct MessageSigner: Sendable {
    private let key: Data
    /// The key's name in signature frames (nil: the daemon's own key).
    public let keyName: String?

    public init(key: Data, keyName: String? = nil) {
        self.key = key
        self.keyName = keyName
    }

    /// A key given as hex (the connection file's `key`).
    public init?(hexKey: String, keyName: String? = nil) {
        guard let bytes = Data(hex: hexKey), !bytes.isEmpty else { return nil }
        self.init(key: bytes, keyName: keyName)
    }

    /// The same key, signing without its name (the daemon's replies to its holder).
    public var unnamed: MessageSigner { MessageSigner(key: key) }

    /// What goes in a message's signature frame.
    public func signatureFrame(of frames: [Data]) -> String {
        let mac = signature(of: frames)
        return keyName.map { $0 + ":" + mac } ?? mac
    }

    public func signature(of frames: [Data]) -> String {
        var mac = HMAC<SHA256>(key: SymmetricKey(data: key))
        for frame in frames {
            var length = UInt64(frame.count).bigEndian
            withUnsafeBytes(of: &length) { mac.update(data: $0) }
            mac.update(data: frame)
        }
        return Workflow.Digest.hex(mac.finalize())
    }

    /// Constant-time comparison of `signature` with the frames' MAC.
    public func verify(_ signature: String, of frames: [Data]) -> Bool {
        let expected = Array(self.signature(of: frames).utf8), given = Array(signature.utf8)
        guard expected.count == given.count else { return false }
        var difference: UInt8 = 0
        for index in expected.indices { difference |= expected[index] ^ given[index] }
        return difference == 0
    }
}

/// Remembers recent signatures: a message whose signature was seen within
/// the window is a replay; one whose header time lies outside the window
/// (either side) is stale, since its signature may already be forgotten.
public struct ReplayGuard: Sendable {
    public let window: TimeInterval
    private var seen: [String: Date] = [:]
    private var order: [(String, Date)] = []
    private var head = 0

    /// Messages dated before this are refused: the daemon's start, so a
    /// message captured before a restart cannot be replayed after it (the
    /// signatures of the previous run are gone with its memory, unless it
    /// stopped cleanly and saved them: ``remembered`` and ``remember(_:)``).
    public let notBefore: Date?

    public init(window: TimeInterval = 300, notBefore: Date? = nil) {
        self.window = window
        self.notBefore = notBefore
    }

    /// How far ahead of the daemon's clock a header time may be.
    public static let futureSkew: TimeInterval = 30

    /// Records `signature`; throws when it is a replay or stale. A message is
    /// fresh from `window` before the daemon's clock to `futureSkew` after
    /// it, and its signature is remembered until its own time plus the
    /// window has passed, so it can never be replayed once forgotten.
    public mutating func admit(signature: String, time: String, now: Date = Date()) throws(DaemonError) {
        forget(before: now)
        guard let sent = WireTime.parse(time) else {
            throw DaemonError(.malformedMessage, "header time '\(time.prefix(40))' is not an ISO 8601 UTC time like 2026-01-31T12:00:00.000Z")
        }
        guard now.timeIntervalSince(sent) <= window, sent.timeIntervalSince(now) <= Self.futureSkew else {
            throw DaemonError(.stale, "header time \(time.prefix(40)) is more than \(Int(window)) s before or \(Int(Self.futureSkew)) s after the daemon's clock \(WireTime.format(now))")
        }
        if let notBefore, sent < notBefore {
            throw DaemonError(.stale, "header time \(time.prefix(40)) is before the daemon started (\(WireTime.format(notBefore))): "
                              + "messages from before a restart are not accepted; send it again (and check the client's clock if this repeats)")
        }
        guard seen[signature] == nil else {
            throw DaemonError(.replayed, "a message with this signature was already received (replayed message)")
        }
        let expiry = Swift.max(now, sent).addingTimeInterval(window)
        seen[signature] = expiry
        order.append((signature, expiry))
    }

    public var count: Int { seen.count }

    /// The signatures still remembered, with when each may be forgotten
    /// (saved at a clean stop, given back at the next start).
    public func remembered(now: Date = Date()) -> [(signature: String, expiry: Date)] {
        seen.filter { $0.value > now }.map { ($0.key, $0.value) }.sorted { $0.expiry < $1.expiry }
    }

    /// Remembers signatures a previous run saved (expired ones are dropped).
    public mutating func remember(_ entries: [(signature: String, expiry: Date)], now: Date = Date()) {
        for entry in entries.sorted(by: { $0.expiry < $1.expiry }) where entry.expiry > now && seen[entry.signature] == nil {
            seen[entry.signature] = entry.expiry
            order.append((entry.signature, entry.expiry))
        }
    }

    /// Forgets signatures whose expiry has passed (in arrival order; one
    /// that expires later holds back those behind it, which only keeps them longer).
    private mutating func forget(before limit: Date) {
        while head < order.count, order[head].1 < limit {
            seen.removeValue(forKey: order[head].0)
            head += 1
        }
        if head > 4096, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}

extension Data {
    /// Bytes from hex text (either case); nil if it is not hex.
    public init?(hex: String) {
        let characters = Array(hex.utf8)
        guard characters.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(characters.count / 2)
        var index = 0
        while index < characters.count {
            guard let high = value(characters[index]), let low = value(characters[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.init(bytes)
    }
}

import Foundation
import Workflow

/// What a client needs to reach a daemon: `connection.json` in the daemon's
/// state directory, written with owner-only permissions (0600).
///
///     {"protocol": "pilot/1", "requests": "ipc:///home/me/.local/state/pilot/requests.sock",
///      "events": "ipc:///home/me/.local/state/pilot/events.sock", "signature_scheme": "hmac-sha256",
///      "key": "<hex>", "event_key": "<hex>", "client": "NAME" (issued clients only),
///      "curve_server_key": "<z85>", "curve_public_key": "<z85>",
///      "curve_secret_key": "<z85>" (the last three only with CURVE), "pid": 1234}
///
/// The daemon's own file (`STATE/connection.json`) is the client `owner`'s;
/// `pilot keys add NAME` writes one for another client, with its own keys.
public struct ConnectionInfo: Sendable, Equatable {
    public var requests: String
    public var events: String
    /// The client's HMAC key, hex: it signs requests; the daemon signs its replies with it.
    public var key: String
    /// The key events are signed with (hex), the same for every client; the request key when absent.
    public var eventKey: String?
    /// The client's name for a key `pilot keys add` issued (nil: the daemon's own key).
    public var client: String?
    /// The daemon's CURVE public key (Z85) when its sockets require encryption.
    public var curveServerKey: String?
    /// The client's CURVE key pair (Z85), on the daemon's allow-list.
    public var curvePublicKey: String?
    public var curveSecretKey: String?
    public var pid: Int32?

    public static let fileName = "connection.json"

    public init(requests: String, events: String, key: String, eventKey: String? = nil, client: String? = nil,
                curveServerKey: String? = nil, curvePublicKey: String? = nil, curveSecretKey: String? = nil,
                pid: Int32? = nil) {
        self.requests = requests
        self.events = events
        self.key = key
        self.eventKey = eventKey
        self.client = client
        self.curveServerKey = curveServerKey
        self.curvePublicKey = curvePublicKey
        self.curveSecretKey = curveSecretKey
        self.pid = pid
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "protocol": .string(pilotProtocolID), "requests": .string(requests), "events": .string(events),
            "signature_scheme": .string("hmac-sha256"), "key": .string(key),
        ]
        if let eventKey { object["event_key"] = .string(eventKey) }
        if let client { object["client"] = .string(client) }
        if let curveServerKey { object["curve_server_key"] = .string(curveServerKey) }
        if let curvePublicKey { object["curve_public_key"] = .string(curvePublicKey) }
        if let curveSecretKey { object["curve_secret_key"] = .string(curveSecretKey) }
        if let pid { object["pid"] = .int(Int(pid)) }
        return .object(object)
    }

    /// Signs requests (as `NAME:HEX` for an issued client) and checks replies.
    public var signer: MessageSigner { MessageSigner(hexKey: key, keyName: client)! }

    /// Checks events.
    public var eventSigner: MessageSigner { MessageSigner(hexKey: eventKey ?? key)! }

    /// The client's CURVE key pair, when the file holds one.
    public var curveKeyPair: (publicKey: String, secretKey: String)? {
        guard let curvePublicKey, let curveSecretKey else { return nil }
        return (curvePublicKey, curveSecretKey)
    }

    /// A fresh random 256-bit key, hex.
    public static func newKey() -> String {
        var generator = SystemRandomNumberGenerator()
        return Digest.hex((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    /// Writes the file with mode 0600 (created so, never widened), atomically.
    public func write(to url: URL) throws {
        // An unpredictable name, created exclusively and never through a link:
        // a file or symlink planted in the folder cannot receive the key.
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UInt64.random(in: 0 ... .max)).tmp")
        let bytes = Array(json.pretty.utf8)
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: temporary.path]) }
        fchmod(fd, 0o600)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == bytes.count, rename(temporary.path, url.path) == 0 else {
            unlink(temporary.path)
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
    }

    /// Reads a connection file; the error names the file and what is wrong.
    public static func read(from url: URL) throws -> ConnectionInfo {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DaemonError(.notFound, "cannot read connection file \(url.path): is the daemon running (`pilot serve`)? (\(error.localizedDescription))")
        }
        let json: JSONValue
        do { json = try JSONValue(parsing: data) } catch {
            throw DaemonError(.invalidJSON, "connection file \(url.path) is not JSON")
        }
        return try read(json: json, source: "connection file \(url.path)")
    }

    /// A connection file's fields from its JSON; errors begin with `source`.
    public static func read(json: JSONValue, source: String) throws -> ConnectionInfo {
        guard json["protocol"]?.stringValue == pilotProtocolID else {
            throw DaemonError(.unsupportedProtocol, "\(source): expected protocol '\(pilotProtocolID)', found \(json["protocol"]?.compact ?? "none")")
        }
        guard json["signature_scheme"]?.stringValue == "hmac-sha256" else {
            throw DaemonError(.unsupportedProtocol, "\(source): expected signature_scheme 'hmac-sha256'")
        }
        guard let requests = json["requests"]?.stringValue, let events = json["events"]?.stringValue,
              let key = json["key"]?.stringValue, MessageSigner(hexKey: key) != nil else {
            throw DaemonError(.invalidRequest, "\(source): expected string fields requests, events and a hex key")
        }
        if let eventKey = json["event_key"], eventKey.stringValue.flatMap({ MessageSigner(hexKey: $0) }) == nil {
            throw DaemonError(.invalidRequest, "\(source): 'event_key' must be a hex key")
        }
        if let client = json["client"], !(client.stringValue.map(ClientRecord.isValidName) ?? false) {
            throw DaemonError(.invalidRequest, "\(source): 'client' must be a client name (letters, digits, . _ -)")
        }
        return ConnectionInfo(requests: requests, events: events, key: key, eventKey: json["event_key"]?.stringValue,
                              client: json["client"]?.stringValue,
                              curveServerKey: json["curve_server_key"]?.stringValue,
                              curvePublicKey: json["curve_public_key"]?.stringValue,
                              curveSecretKey: json["curve_secret_key"]?.stringValue,
                              pid: json["pid"]?.intValue.map(Int32.init))
    }
}

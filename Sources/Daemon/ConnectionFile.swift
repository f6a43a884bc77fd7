import Foundation
import Workflow

/// What a client needs to reach a daemon: `connection.json` in the daemon's
/// state directory, written with owner-only permissions (0600).
///
///     {"protocol": "pilot/1", "requests": "tcp://127.0.0.1:5555",
///      "events": "tcp://127.0.0.1:5556", "signature_scheme": "hmac-sha256",
///      "key": "<hex>", "curve_server_key": "<z85>" (only with CURVE), "pid": 1234}
public struct ConnectionInfo: Sendable, Equatable {
    public var requests: String
    public var events: String
    /// The HMAC key, hex.
    public var key: String
    /// The daemon's CURVE public key (Z85) when its sockets require encryption.
    public var curveServerKey: String?
    public var pid: Int32?

    public static let fileName = "connection.json"

    public init(requests: String, events: String, key: String, curveServerKey: String? = nil, pid: Int32? = nil) {
        self.requests = requests
        self.events = events
        self.key = key
        self.curveServerKey = curveServerKey
        self.pid = pid
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "protocol": .string(pilotProtocolID), "requests": .string(requests), "events": .string(events),
            "signature_scheme": .string("hmac-sha256"), "key": .string(key),
        ]
        if let curveServerKey { object["curve_server_key"] = .string(curveServerKey) }
        if let pid { object["pid"] = .int(Int(pid)) }
        return .object(object)
    }

    public var signer: MessageSigner { MessageSigner(hexKey: key)! }

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
        guard json["protocol"]?.stringValue == pilotProtocolID else {
            throw DaemonError(.unsupportedProtocol, "connection file \(url.path): expected protocol '\(pilotProtocolID)', found \(json["protocol"]?.compact ?? "none")")
        }
        guard json["signature_scheme"]?.stringValue == "hmac-sha256" else {
            throw DaemonError(.unsupportedProtocol, "connection file \(url.path): expected signature_scheme 'hmac-sha256'")
        }
        guard let requests = json["requests"]?.stringValue, let events = json["events"]?.stringValue,
              let key = json["key"]?.stringValue, MessageSigner(hexKey: key) != nil else {
            throw DaemonError(.invalidRequest, "connection file \(url.path): expected string fields requests, events and a hex key")
        }
        return ConnectionInfo(requests: requests, events: events, key: key,
                              curveServerKey: json["curve_server_key"]?.stringValue,
                              pid: json["pid"]?.intValue.map(Int32.init))
    }
}

import CZeroMQ
import Foundation

/// A libzmq call failed: which call, errno and libzmq's text for it.
public struct ZMQError: Error, Sendable, CustomStringConvertible {
    public let operation: String
    public let code: Int32

    init(_ operation: String, code: Int32 = zmq_errno()) {
        self.operation = operation
        self.code = code
    }

    public var description: String {
        "\(operation): \(cText(zmq_strerror(code))) (errno \(code))"
    }

    /// The call would have blocked (EAGAIN) or timed out.
    public var wouldBlock: Bool { code == EAGAIN }
    /// The call was interrupted by a signal.
    public var interrupted: Bool { code == EINTR }
}

/// A libzmq context: sockets are made from it and keep it alive; the last
/// one gone terminates it (its I/O thread ends). `shared` serves clients; a
/// daemon has its own, since its ZAP handler is one per context.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public static let shared = ZMQContext()

    public init() {
        handle = zmq_ctx_new()!
    }

    deinit {
        // Every socket made from it is closed by now (each holds the context).
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// Whether this libzmq has `capability` ("curve", "ipc").
    public static func has(_ capability: String) -> Bool { zmq_has(capability) == 1 }

    /// A new CURVE key pair, Z85-encoded (40 characters each).
    public static func curveKeyPair() throws -> (publicKey: String, secretKey: String) {
        var publicKey = [CChar](repeating: 0, count: 41), secretKey = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else { throw ZMQError("zmq_curve_keypair") }
        return (cText(publicKey), cText(secretKey))
    }
}

/// A ZeroMQ socket: multipart send and receive, options, bind/connect.
///
/// Not thread-safe, like the libzmq socket it wraps: use it from one thread,
/// or behind a lock (a lock's barriers are what libzmq asks for when a socket
/// moves between threads).
public final class ZMQSocket: @unchecked Sendable {
    public enum Kind: Int32, Sendable {
        case pair = 0, pub = 1, sub = 2, req = 3, rep = 4, dealer = 5, router = 6, pull = 7, push = 8, xpub = 9, xsub = 10
    }

    let handle: UnsafeMutableRawPointer
    public let kind: Kind
    private let context: ZMQContext
    private var closed = false

    public init(_ kind: Kind, context: ZMQContext = .shared) throws {
        guard let handle = zmq_socket(context.handle, kind.rawValue) else { throw ZMQError("zmq_socket") }
        self.handle = handle
        self.kind = kind
        self.context = context
        try setOption(ZMQ_LINGER, Int32(0))
    }

    deinit { close() }

    public func close() {
        guard !closed else { return }
        closed = true
        zmq_close(handle)
    }

    // MARK: options

    public func setOption(_ option: Int32, _ value: Int32) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, _ value: Int64) throws {
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, _ bytes: [UInt8]) throws {
        let status = bytes.withUnsafeBytes { zmq_setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard status == 0 else { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    public func setOption(_ option: Int32, _ text: String) throws {
        try setOption(option, Array(text.utf8))
    }

    /// The largest message (any one frame) the peer may send; a larger one
    /// disconnects that peer (libzmq's ZMQ_MAXMSGSIZE).
    public func setMaximumMessageSize(_ bytes: Int) throws { try setOption(ZMQ_MAXMSGSIZE, Int64(bytes)) }

    /// Makes this socket a CURVE server with `secretKey` (Z85).
    public func makeCurveServer(secretKey: String) throws {
        try setOption(ZMQ_CURVE_SERVER, Int32(1))
        try setOption(ZMQ_CURVE_SECRETKEY, secretKey)
    }

    /// Makes this socket a CURVE client of the server whose public key is
    /// `serverKey` (Z85), with the client's own key pair when it has one
    /// (a daemon that checks client keys needs it), else a fresh one.
    public func makeCurveClient(serverKey: String, keyPair: (publicKey: String, secretKey: String)? = nil) throws {
        let pair = try keyPair ?? ZMQContext.curveKeyPair()
        try setOption(ZMQ_CURVE_SERVERKEY, serverKey)
        try setOption(ZMQ_CURVE_PUBLICKEY, pair.publicKey)
        try setOption(ZMQ_CURVE_SECRETKEY, pair.secretKey)
    }

    /// ZMTP heartbeats: a PING every `interval` ms; no traffic for `timeout` ms drops the peer.
    public func setHeartbeat(interval: Int32, timeout: Int32) throws {
        try setOption(ZMQ_HEARTBEAT_IVL, interval)
        try setOption(ZMQ_HEARTBEAT_TIMEOUT, timeout)
    }

    // MARK: endpoints

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind \(endpoint)") }
    }

    /// Stops listening on `endpoint` (libzmq finishes it on its I/O thread).
    public func unbind(_ endpoint: String) throws {
        guard zmq_unbind(handle, endpoint) == 0 else { throw ZMQError("unbind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect \(endpoint)") }
    }

    /// The endpoint last bound, with a wildcard port resolved (`tcp://127.0.0.1:41234`).
    public var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return "" }
        return cText(buffer)
    }

    // MARK: messages

    /// Sends `frames` as one multipart message. With `dontWait`, throws a
    /// ``ZMQError`` whose `wouldBlock` is true instead of blocking.
    public func send(_ frames: [Data], dontWait: Bool = false) throws {
        precondition(!frames.isEmpty, "a message has at least one frame")
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = index < frames.count - 1 ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            while true {
                let sent = frame.withUnsafeBytes { zmq_send(handle, $0.baseAddress, $0.count, flags) }
                if sent >= 0 { break }
                let error = ZMQError("zmq_send")
                if error.interrupted { continue }
                throw error
            }
        }
    }

    /// Receives one multipart message; nil when `dontWait` and none is waiting.
    public func receive(dontWait: Bool = false) throws -> [Data]? {
        try receive(dontWait: dontWait, maxFrames: .max, maxBytes: .max)?.frames
    }

    /// One multipart message and the user id its connection authenticated
    /// as (ZAP's `User-Id`; nil when no handler named one).
    public func receiveWithUser(dontWait: Bool = false) throws -> (frames: [Data], user: String?)? {
        try receive(dontWait: dontWait, maxFrames: .max, maxBytes: .max).map { ($0.frames, $0.user) }
    }

    /// The next multipart message, copying at most `maxFrames` frames and
    /// `maxBytes` bytes: past either bound the rest is drained without a
    /// copy and `truncated` is set, so an oversized message costs no memory
    /// of ours.
    public func receive(dontWait: Bool, maxFrames: Int, maxBytes: Int)
        throws -> (frames: [Data], truncated: Bool, bytes: Int, user: String?)? {
        var frames: [Data] = []
        var total = 0, truncated = false
        var user: String?
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }
        while true {
            let received = zmq_msg_recv(&message, handle, dontWait ? ZMQ_DONTWAIT : 0)
            if received < 0 {
                let error = ZMQError("zmq_msg_recv")
                if error.interrupted { continue }
                if error.wouldBlock && frames.isEmpty && !truncated { return nil }
                throw error
            }
            // A ROUTER's routing-id frame carries no metadata; the peer's frames do.
            if user == nil, let property = zmq_msg_gets(&message, "User-Id") {
                user = String(cText(property).prefix(64))
            }
            let size = zmq_msg_size(&message)
            total += size
            if !truncated && (frames.count >= maxFrames || total > maxBytes) { truncated = true }
            if !truncated { frames.append(size == 0 ? Data() : Data(bytes: zmq_msg_data(&message), count: size)) }
            if zmq_msg_more(&message) == 0 { return (frames, truncated, total, user) }
        }
    }

    /// Waits up to `timeout` ms (-1: forever) for a message; true if one is waiting.
    public func waitReadable(timeout: Int) -> Bool {
        ZMQSocket.poll([self], timeout: timeout).first ?? false
    }

    /// Polls `sockets` for input for up to `timeout` ms (-1: forever);
    /// returns which are readable. EINTR counts as nothing readable.
    public static func poll(_ sockets: [ZMQSocket], timeout: Int) -> [Bool] {
        var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
        let count = zmq_poll(&items, Int32(items.count), timeout)
        guard count > 0 else { return Array(repeating: false, count: sockets.count) }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}

/// Text of a NUL-terminated C string.
func cText(_ pointer: UnsafePointer<CChar>?) -> String {
    guard let pointer else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: pointer, count: strlen(pointer)), as: UTF8.self)
}

/// Text of a NUL-terminated buffer.
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

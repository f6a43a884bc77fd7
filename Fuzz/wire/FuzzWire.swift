import Foundation
import Logging
import Nodes
@testable import Daemon
import Workflow

// Input: a flags byte, then the frames of one request separated by "\n--\n"
// (protocol, signature, header, content, binary frames). The frames reach
// a real daemon's request handler (its store in a temporary folder, no
// worker running) behind a ROUTER envelope, as they would from a socket.
//   flags bit 0: sign the frames with the daemon's key (a key holder's
//                message), so the fuzzer gets past the signature check;
//   flags bit 1: also stamp the header's time with now (if the header is a
//                JSON object), so the replay guard admits it.
// Without bit 0 the message is an outsider's: it must cost nothing and be
// refused. Every path must answer or refuse, never crash or hang.

private let daemon: Daemon = {
    let folder = URL(fileURLWithPath: "/tmp/pilot-fuzz-wire-\(getpid())", isDirectory: true)
    try? FileManager.default.removeItem(at: folder)
    let models = folder.appendingPathComponent("models", isDirectory: true)
    try! FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
    var configuration = DaemonConfiguration(stateDirectory: folder.appendingPathComponent("state"), modelsDirectory: models)
    configuration.requestEndpoint = "ipc://\(folder.path)/r"
    configuration.eventEndpoint = "ipc://\(folder.path)/e"
    let templates = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Workflows")
    configuration.templateDirectories = [templates]
    configuration.maxMessageBytes = 4 << 20
    var logger = Logger(label: "fuzz.daemon")
    logger.logLevel = .critical
    return try! Daemon(configuration: configuration, nodes: .standard, logger: logger)
}()
let signer = MessageSigner(hexKey: daemon.connection.key)!
private let separator = Data("\n--\n".utf8)


/// One input; libFuzzer calls it through `runFuzzer` (main.swift).
func fuzzWire(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size > 0, let data else { return 0 }
    let flags = data[0]
    let body = Data(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var parts: [Data] = []
    var start = body.startIndex
    while let range = body.range(of: separator, in: start ..< body.endIndex) {
        parts.append(body[start ..< range.lowerBound])
        start = range.upperBound
    }
    parts.append(body[start...])
    if flags & 1 != 0, parts.count >= 4 {
        if flags & 2 != 0, case var .object(header)? = try? JSONValue(parsing: parts[2]) {
            header["time"] = .string(WireTime.format(Date()))
            parts[2] = Data(JSONValue.object(header).compact.utf8)
        }
        parts[1] = Data(signer.signature(of: Array(parts[2...])).utf8)
    }
    daemon.handle([Data("fuzz-peer".utf8), Data()] + parts.map { Data($0) })
    return 0
}

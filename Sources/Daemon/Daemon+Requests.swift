import Foundation
import Workflow

// The request router: envelopes, signatures, replies, and the per-type dispatch.
extension Daemon {
    /// Most binary frames one request may carry.
    public static let maxBinaryFrames = 64
    /// Longest message id echoed in a reply's `parent`.
    static let maxEchoedID = 128

    /// A message over the frame-count or size bound, answered without reading it.
    func refuseOversized(_ frames: [Data], bytes: Int) {
        guard frames.count >= 2 else { return }
        let envelope = frames[1].isEmpty ? Array(frames[0...1]) : [frames[0]]
        refuse(envelope, DaemonError(.tooLarge, "the message is over the limits (\(configuration.maxMessageBytes) bytes, "
                                     + "\(Self.maxBinaryFrames) binary frames); \(bytes) bytes arrived"),
               parent: nil, type: nil)
    }

    /// Answers one request (its envelope first) as the request loop does;
    /// `connectedAs` is the client CURVE authenticated the connection as.
    /// Internal for the fuzz target.
    func handle(_ frames: [Data], connectedAs: String? = nil) {
        guard frames.count >= 2 else { return }
        // Envelope: the peer identity, then an empty delimiter if the peer is a REQ socket.
        let envelope = frames[1].isEmpty ? Array(frames[0...1]) : [frames[0]]
        let parts = frames[envelope.count...]
        let size = parts.reduce(0) { $0 + $1.count }
        guard size <= configuration.maxMessageBytes else {
            return refuse(envelope, DaemonError(.tooLarge, "the message is \(size) bytes; the limit is \(configuration.maxMessageBytes)"),
                          parent: nil, type: nil)
        }
        let message: WireMessage, caller: ClientRecord, replySigner: MessageSigner
        // The id is echoed only once the signature checked out (nothing of an
        // unauthenticated message is parsed), and never longer than 128.
        var authenticatedID: String?
        // Once the signature checked out, refusals (stale, replayed) are signed
        // with the caller's key: an issued client cannot verify the owner's.
        var verifiedSigner: MessageSigner?
        do throws(DaemonError) {
            // The client the signature frame names, looked up once: its key checks the message.
            var signing: (record: ClientRecord, signer: MessageSigner)?
            let (decoded, signature, _) = try WireMessage.decode(parts) { name in
                signing = self.clients.client(name ?? ClientRecord.ownerName)
                return signing?.signer
            }
            guard let signing else { throw DaemonError(.internal, "a message verified without a client") }
            (caller, replySigner) = (signing.record, signing.signer.unnamed)
            verifiedSigner = replySigner
            // Under CURVE the connection itself is a client's: a message must
            // be signed with that same client's key.
            if let connectedAs, connectedAs != caller.name {
                throw DaemonError(.badSignature, "the message is signed with client '\(caller.name)''s key over a connection "
                                  + "authenticated as client '\(LogText.escaped(connectedAs, limit: 64))'")
            }
            message = decoded
            authenticatedID = String(decoded.header.id.prefix(Self.maxEchoedID))
            stateLock.lock()
            defer { stateLock.unlock() }
            try replayGuard.admit(signature: signature, time: decoded.header.time)
        } catch {
            return refuse(envelope, error, parent: authenticatedID, type: nil, signer: verifiedSigner)
        }
        let type = message.header.type
        do {
            let (content, binaries) = try respond(to: message, caller: caller)
            stateLock.withLock { served[type, default: 0] += 1 }
            var body = content
            body["status"] = .string("ok")
            send(envelope, WireMessage(type: type + "_reply", content: .object(body), frames: binaries,
                                       parent: String(message.header.id.prefix(Self.maxEchoedID))), signer: replySigner)
        } catch {
            refuse(envelope, error, parent: String(message.header.id.prefix(Self.maxEchoedID)), type: String(type.prefix(64)),
                   signer: replySigner)
        }
    }

    /// An error reply, signed with the caller's key once it is known (the owner's before).
    func refuse(_ envelope: [Data], _ error: DaemonError, parent: String?, type: String?, signer: MessageSigner? = nil) {
        stateLock.withLock { refused[error.code.rawValue, default: 0] += 1 }
        logger.debug("refused a request: \(LogText.escaped("\(error)"))")
        let content: JSONValue = .object(["status": .string("error"), "error": error.json])
        send(envelope, WireMessage(type: type.map { $0 + "_reply" } ?? "error", content: content, parent: parent),
             signer: signer ?? self.signer)
    }

    func send(_ envelope: [Data], _ message: WireMessage, signer: MessageSigner) {
        do {
            try router.send(envelope + message.encoded(signer: signer), dontWait: true)
        } catch {
            // The client went away (EHOSTUNREACH) or is not reading: it can ask again.
            logger.debug("reply not delivered: \(error)")
        }
    }

    /// A reply's content and its binary frames.
    typealias Reply = ([String: JSONValue], [Data])

    func respond(to message: WireMessage, caller: ClientRecord) throws(DaemonError) -> Reply {
        let content = message.content
        switch message.header.type {
        case "ping", "info":
            var object = info()
            object["client"] = .object(["name": .string(caller.name), "role": .string(caller.role.rawValue)])
            return (object, [])
        case "submit": return try submit(content, frames: message.frames, caller: caller)
        case "status": return try status(content, caller: caller)
        case "list": return try list(content, caller: caller)
        case "cancel": return try cancel(content, caller: caller)
        case "prune": return try prune(content, caller: caller)
        case "result": return try result(content, caller: caller)
        case "queue": return try queue(content, caller: caller)
        case "move": return try move(content, caller: caller)
        case "clients": return try listClients(caller: caller)
        case "client_add": return try addClient(content, caller: caller)
        case "client_revoke": return try revokeClient(content, caller: caller)
        case "templates": return try listTemplates()
        case "template": return try template(content)
        case "template_save": return try saveTemplate(content, caller: caller)
        case "template_delete": return try deleteTemplate(content, caller: caller)
        case "template_history": return try templateHistory(content)
        case "nodes": return (["catalog": runner.registry.catalogJSON], [])
        case "models":
            return (["directory": .string(configuration.modelsDirectory.path),
                     "models": .array(catalog.entries().map(\.json))], [])
        default:
            throw DaemonError(.unknownType, "unknown request type '\(message.header.type.prefix(60))'; expected one of "
                              + "ping, info, submit, status, list, cancel, prune, result, queue, move, templates, template, "
                              + "template_save, template_delete, template_history, nodes, models, clients, client_add, client_revoke")
        }
    }

    func info() -> [String: JSONValue] {
        let counts = (try? store.counts()) ?? [:]
        let (refusedNow, servedNow) = stateLock.withLock { (refused, served) }
        return [
            "version": .string(version), "protocol": .string(pilotProtocolID), "pid": .int(Int(getpid())),
            "device": .string(configuration.device + " (\(ProcessInfo.processInfo.activeProcessorCount) CPU cores)"),
            "uptime_s": .float(Date().timeIntervalSince(started)),
            "queue": .object(Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0.rawValue, JSONValue.int(counts[$0] ?? 0)) })),
            "paused": .bool((try? store.isQueuePaused()) ?? false),
            "running": worker.runningJob.map(JSONValue.string) ?? .null,
            "refused": .object(refusedNow.mapValues(JSONValue.int)),
            "served": .object(servedNow.mapValues(JSONValue.int)),
            "memory_budget": .int(configuration.memoryBudget),
            "cache_bytes": .int(worker.cacheBytes),
            "worker": worker.summary,
            "models": .string(configuration.modelsDirectory.path),
            "templates": .array(configuration.templateDirectories.map { .string($0.path) }),
        ]
    }

    // MARK: helpers

    func optionalString(_ content: JSONValue, _ key: String) throws(DaemonError) -> String? {
        guard let value = content[key], value != .null else { return nil }
        guard let text = value.stringValue else { throw DaemonError(.invalidRequest, "'\(key)' must be a string, found \(value.typeName)") }
        return text
    }

    func optionalInt(_ content: JSONValue, _ key: String) throws(DaemonError) -> Int? {
        guard let value = content[key], value != .null else { return nil }
        guard let number = value.intValue else { throw DaemonError(.invalidRequest, "'\(key)' must be an integer, found \(value.typeName)") }
        return number
    }

    func storeCall<T>(_ body: () throws -> T) throws(DaemonError) -> T {
        do { return try body() } catch let error as DaemonError { throw error } catch {
            logger.error("job store: \(error)")
            throw DaemonError(.internal, "job store: \(error)")
        }
    }
}

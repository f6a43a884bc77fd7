import CZeroMQ
import Foundation
import Imaging
import Logging
import Nodes
import Workflow

/// The long-lived daemon: a ROUTER socket for signed requests, an XPUB
/// socket for events, a durable job store and one worker that runs jobs in
/// turn. `run()` serves until `stop()`; see `docs/protocol.md`.
public final class Daemon: @unchecked Sendable {
    public let configuration: DaemonConfiguration
    /// What clients need; also written to `STATE/connection.json` (0600).
    public let connection: ConnectionInfo
    public let store: JobStore
    public let catalog: ModelCatalog
    public static let version = NodeLibrary.programVersion

    /// The daemon's own libzmq context (its ZAP handler is one per context).
    private let context = ZMQContext()
    private let router: ZMQSocket
    private let publisher: EventPublisher
    /// The owner's key: refusals of messages that did not authenticate are signed with it.
    private let signer: MessageSigner
    /// Who may connect and sign: the owner and the clients `pilot keys add` issued.
    public let clients: ClientRegistry
    /// CURVE's client allow-list (only when the sockets are encrypted).
    private let zap: ZAPHandler?
    private let blobs: BlobStore
    private let worker: any JobRunning
    private let runner: WorkflowRunner
    private let paths: JobPaths
    private let logger: Logger
    private let lockDescriptor: Int32
    private let started = Date()

    private let stateLock = NSLock()
    private var stopRequested = false
    private var replayGuard: ReplayGuard
    private var refused: [String: Int] = [:]
    /// The state folder's size when last measured, and input bytes accepted since (see `checkDiskQuota`).
    private var diskUsage: (measured: Date, bytes: Int, acceptedSince: Int) = (.distantPast, 0, 0)
    private var served: [String: Int] = [:]

    /// Opens the store (requeueing jobs a previous run left running), binds
    /// the sockets and writes the connection file. Throws if another daemon
    /// holds the state directory.
    public init(configuration: DaemonConfiguration, logger: Logger = Logger(label: "pilot.daemon")) throws {
        self.configuration = configuration
        self.logger = logger
        let manager = FileManager.default
        let state = configuration.stateDirectory
        // Everything the daemon creates is private to its user (store, blobs, outputs, keys).
        umask(0o077)
        let existed = manager.fileExists(atPath: state.path)
        try manager.createDirectory(at: state, withIntermediateDirectories: true)
        if existed { try StateDirectory.checkTrusted(state) }
        chmod(state.path, 0o700)

        // One daemon per state directory.
        lockDescriptor = open(state.appendingPathComponent("daemon.lock").path, O_RDWR | O_CREAT, 0o600)
        guard lockDescriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw DaemonError(.internal, "cannot open \(state.appendingPathComponent("daemon.lock").path) for writing: \(reason); "
                              + "the state directory \(state.path) must be writable (a read-only file system cannot hold the job store)")
        }
        guard flock(lockDescriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(lockDescriptor)
            throw DaemonError(.internal, "another daemon is using the state directory \(state.path) (daemon.lock is held)")
        }

        store = try JobStore(path: state.appendingPathComponent("jobs.sqlite").path)
        blobs = BlobStore(directory: state.appendingPathComponent("blobs", isDirectory: true))
        catalog = ModelCatalog(directory: configuration.modelsDirectory, store: store)
        paths = JobPaths(state: state, models: configuration.modelsDirectory.standardizedFileURL,
                         templates: configuration.templateDirectories.map(\.standardizedFileURL),
                         extraReadable: configuration.extraReadDirectories.map(\.standardizedFileURL))
        runner = WorkflowRunner(registry: .standard, executor: Executor(cache: OutputCache(budgetBytes: configuration.memoryBudget)))
        // Nothing dated before this start is accepted; what a clean stop saved is remembered.
        replayGuard = ReplayGuard(window: configuration.replayWindow, notBefore: started)
        if let saved = try store.secret(Self.replayCacheSecret), let entries = (try? JSONValue(parsing: Data(saved.utf8)))?.arrayValue {
            replayGuard.remember(entries.compactMap { entry in
                guard let pair = entry.arrayValue, pair.count == 2, let signature = pair[0].stringValue,
                      let expiry = pair[1].doubleValue else { return nil }
                return (signature, Date(timeIntervalSince1970: expiry))
            })
            try store.setSecret(Self.replayCacheSecret, "[]")
        }

        var key = ConnectionInfo.newKey(), eventKey = ConnectionInfo.newKey()
        let old = configuration.keepKey ? try? ConnectionInfo.read(from: configuration.connectionFile) : nil
        if let old {
            key = old.key
            eventKey = old.eventKey ?? eventKey
        }
        signer = MessageSigner(hexKey: key)!

        let needsCurve = configuration.curve
            ?? !(DaemonConfiguration.isLocal(configuration.requestEndpoint) && DaemonConfiguration.isLocal(configuration.eventEndpoint))
        if configuration.curve == false,
           !(DaemonConfiguration.isLocal(configuration.requestEndpoint) && DaemonConfiguration.isLocal(configuration.eventEndpoint)) {
            throw DaemonError(.invalidRequest, "binding a non-loopback address requires CURVE encryption (do not pass --no-curve)")
        }
        var curveKey: String?, ownerCurve: (publicKey: String, secretKey: String)?
        router = try ZMQSocket(.router, context: context)
        var serverSecret: String?
        if needsCurve {
            guard ZMQContext.has("curve") else {
                throw DaemonError(.internal, "CURVE encryption is required but this libzmq was built without it")
            }
            // The server's pair and the owner's client pair persist with the
            // key (in the 0600 store), so the connection files issued to
            // clients stay valid across restarts; a new key renews them.
            let server = try Self.curvePair(named: "server", store: store, keep: configuration.keepKey)
            ownerCurve = try Self.curvePair(named: "owner", store: store, keep: configuration.keepKey)
            try router.makeCurveServer(secretKey: server.secretKey)
            try router.setOption(ZMQ_ZAP_DOMAIN, "pilot")
            curveKey = server.publicKey
            serverSecret = server.secretKey
        }
        let owner = ClientRecord(name: ClientRecord.ownerName, key: key, curvePublicKey: ownerCurve?.publicKey, role: .admin,
                                 maxPriority: Self.priorities.upperBound, maxQueued: .max)
        clients = ClientRegistry([owner] + (try store.clients().filter { $0.name != ClientRecord.ownerName }))
        zap = needsCurve ? try ZAPHandler(context: context, clients: clients) : nil
        try router.setMaximumMessageSize(2 * configuration.maxMessageBytes + (1 << 20))
        try router.setOption(ZMQ_ROUTER_MANDATORY, Int32(1))
        // Replies to a client that never reads are dropped past 1,000, not queued.
        try router.setOption(ZMQ_SNDHWM, Int32(1_000))
        // At most 16 whole messages wait per peer before libzmq stops reading
        // from it (TCP back-pressure, nothing lost): a peer pipelining large
        // messages cannot make the daemon buffer more than 16 of them.
        try router.setOption(ZMQ_RCVHWM, Int32(16))
        try router.setHeartbeat(interval: 5_000, timeout: 30_000)
        try router.bind(configuration.requestEndpoint)
        let store = self.store, clients = self.clients, context = self.context, eventSecret = serverSecret
        // The event socket is made again when a client is revoked (see `revokeClient`).
        let makeEvents: @Sendable () throws -> ZMQSocket = {
            let events = try ZMQSocket(.xpub, context: context)
            if let eventSecret {
                try events.makeCurveServer(secretKey: eventSecret)
                try events.setOption(ZMQ_ZAP_DOMAIN, "pilot")
            }
            // Subscriptions are a byte and a topic (a job id, "welcome.<uuid>"):
            // a message over 4 KiB drops the subscriber's connection unread (the
            // bound covers CURVE's handshake commands too, about 300 bytes, so it
            // cannot be the topic limit itself; longer topics are ignored).
            try events.setMaximumMessageSize(EventPublisher.maxSubscriptionMessage)
            return events
        }
        publisher = try EventPublisher(make: makeEvents, endpoint: configuration.eventEndpoint,
                                       signer: MessageSigner(hexKey: eventKey)!) { client, topic in
            Self.maySubscribe(client: client, topic: topic, clients: clients, store: store)
        }
        connection = ConnectionInfo(requests: router.lastEndpoint, events: publisher.endpoint, key: key, eventKey: eventKey,
                                    curveServerKey: curveKey, curvePublicKey: ownerCurve?.publicKey,
                                    curveSecretKey: ownerCurve?.secretKey, pid: getpid())
        try connection.write(to: configuration.connectionFile)

        if let command = configuration.workerCommand {
            worker = WorkerSupervisor(command: command,
                                      setup: WorkerSetup(paths: paths, memoryBudget: configuration.memoryBudget,
                                                         device: configuration.device, jobTimeLimit: configuration.jobTimeLimit,
                                                         maxOutputPixels: configuration.maxOutputPixels),
                                      store: store, publisher: publisher, logger: logger)
        } else {
            worker = JobWorker(store: store, blobs: blobs, publisher: publisher, runner: runner, paths: paths, logger: logger,
                               device: configuration.device, timeLimit: configuration.jobTimeLimit,
                               maxOutputPixels: configuration.maxOutputPixels)
        }
        var crashed: [String] = []
        let requeued = try store.requeueInterrupted(crashed: &crashed)
        for id in crashed {
            logger.warning("job failed as crashed: the daemon stopped under it on each of its starts", metadata: ["job": "\(id)"])
        }
        for id in requeued {
            logger.notice("requeued job found running at start (the previous daemon stopped under it)", metadata: ["job": "\(id)"])
        }
        // Input blobs of submits that never became jobs (refused after their
        // frames were stored, or cut short by a crash): no job can name them.
        // Their rows go first; then every file without a row (theirs, and
        // files written before a crash could record them).
        try store.removeUnreferencedBlobs()
        let (files, temporary) = blobs.files()
        let recorded = try store.blobHashes()
        var removed = 0
        for sha in files where !recorded.contains(sha) { if blobs.remove(sha) { removed += 1 } }
        for url in temporary { try? FileManager.default.removeItem(at: url) }
        if removed + temporary.count > 0 {
            logger.notice("removed \(removed) input blob(s) no job references and \(temporary.count) unfinished blob write(s)")
        }
    }

    /// A CURVE key pair kept in the store (a fresh one unless `keep`).
    private static func curvePair(named name: String, store: JobStore, keep: Bool) throws -> (publicKey: String, secretKey: String) {
        if keep, let publicKey = try store.secret("curve_\(name)_public"), let secretKey = try store.secret("curve_\(name)_secret") {
            return (publicKey, secretKey)
        }
        let pair = try ZMQContext.curveKeyPair()
        try store.setSecret("curve_\(name)_public", pair.publicKey)
        try store.setSecret("curve_\(name)_secret", pair.secretKey)
        return pair
    }

    /// Whether a connection authenticated as `client` (nil: without CURVE,
    /// anyone who reaches the socket) may subscribe to `topic`: an admin to
    /// anything; another client only to a job it owns, by its exact id.
    static func maySubscribe(client: String?, topic: String, clients: ClientRegistry, store: JobStore) -> Bool {
        guard let client else { return true }
        guard let record = clients.client(client)?.record else { return false }
        if record.isAdmin { return true }
        guard topic.count == 36, let owner = try? store.owner(ofJob: topic) else { return false }
        return owner == client
    }

    /// Serves requests until ``stop()``; then stops the worker (a running job
    /// is requeued), removes the connection file and returns.
    public func run() {
        worker.start()
        logger.info("serving requests on \(connection.requests), events on \(connection.events)")
        var nextRetention = Date()
        let polled = [router] + (zap.map { [$0.socket] } ?? [])
        while !isStopping {
            let readable = ZMQSocket.poll(polled, timeout: 10)
            if let zap, readable.count > 1, readable[1] {
                let refusedNow = zap.serve()
                if refusedNow > 0 { stateLock.withLock { refused["client_key_not_allowed", default: 0] += refusedNow } }
            }
            publisher.serviceSubscriptions()
            // Automatic retention on the request thread, between requests (never during a submit).
            if let retention = configuration.retention, Date() >= nextRetention {
                nextRetention = Date(timeIntervalSinceNow: 3600)
                do { _ = try pruneJobs(olderThan: retention) } catch { logger.error("retention: \(error)") }
            }
            guard readable.first == true else { continue }
            var handled = 0
            // Bounded before anything is looked at: the envelope (2 frames), the
            // 4 protocol frames and the binary frames, within the size limit.
            while handled < 256, !isStopping,
                  let got = try? router.receive(dontWait: true, maxFrames: 6 + Self.maxBinaryFrames,
                                                maxBytes: configuration.maxMessageBytes + 4096) {
                if got.truncated {
                    refuseOversized(got.frames, bytes: got.bytes)
                } else {
                    handle(got.frames, connectedAs: got.user)
                }
                handled += 1
            }
        }
        logger.info("stopping: no new requests; the running job, if any, is requeued")
        worker.shutdown()
        // Signatures still within their window, for the next start (a message
        // dated ahead of this clock could otherwise be replayed after it).
        let remembered = stateLock.withLock { replayGuard.remembered() }
        let saved = JSONValue.array(remembered.map { .array([.string($0.signature), .float($0.expiry.timeIntervalSince1970)]) })
        do { try store.setSecret(Self.replayCacheSecret, saved.compact) } catch {
            logger.error("job store: cannot save the replay cache (\(remembered.count) signature(s)): \(error)")
        }
        try? FileManager.default.removeItem(at: configuration.connectionFile)
        router.close()
        zap?.socket.close()
        flock(lockDescriptor, LOCK_UN)
        close(lockDescriptor)
        logger.info("stopped")
    }

    /// The store secret a clean stop saves the replay cache under.
    static let replayCacheSecret = "replay_cache"

    /// Asks `run()` to return (thread-safe; signal handlers call it).
    public func stop() {
        stateLock.withLock { stopRequested = true }
    }

    private var isStopping: Bool { stateLock.withLock { stopRequested } }

    /// Refusals by error code since start.
    public var refusals: [String: Int] { stateLock.withLock { refused } }

    // MARK: requests

    /// Most binary frames one request may carry.
    public static let maxBinaryFrames = 64
    /// Longest message id echoed in a reply's `parent`.
    static let maxEchoedID = 128

    /// A message over the frame-count or size bound, answered without reading it.
    private func refuseOversized(_ frames: [Data], bytes: Int) {
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
    private func refuse(_ envelope: [Data], _ error: DaemonError, parent: String?, type: String?, signer: MessageSigner? = nil) {
        stateLock.withLock { refused[error.code.rawValue, default: 0] += 1 }
        logger.debug("refused a request: \(LogText.escaped("\(error)"))")
        let content: JSONValue = .object(["status": .string("error"), "error": error.json])
        send(envelope, WireMessage(type: type.map { $0 + "_reply" } ?? "error", content: content, parent: parent),
             signer: signer ?? self.signer)
    }

    private func send(_ envelope: [Data], _ message: WireMessage, signer: MessageSigner) {
        do {
            try router.send(envelope + message.encoded(signer: signer), dontWait: true)
        } catch {
            // The client went away (EHOSTUNREACH) or is not reading: it can ask again.
            logger.debug("reply not delivered: \(error)")
        }
    }

    private typealias Reply = ([String: JSONValue], [Data])

    private func respond(to message: WireMessage, caller: ClientRecord) throws(DaemonError) -> Reply {
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
                              + "ping, info, submit, status, list, cancel, prune, result, templates, template, nodes, models, "
                              + "clients, client_add, client_revoke")
        }
    }

    private func info() -> [String: JSONValue] {
        let counts = (try? store.counts()) ?? [:]
        let (refusedNow, servedNow) = stateLock.withLock { (refused, served) }
        return [
            "version": .string(Self.version), "protocol": .string(pilotProtocolID), "pid": .int(Int(getpid())),
            "device": .string(configuration.device + " (\(ProcessInfo.processInfo.activeProcessorCount) CPU cores)"),
            "uptime_s": .float(Date().timeIntervalSince(started)),
            "queue": .object(Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0.rawValue, JSONValue.int(counts[$0] ?? 0)) })),
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

    // MARK: submit

    /// Bounds on what a submit may carry.
    static let maxIdempotencyKey = 128
    static let priorities = -1000...1000
    static let maxParameters = 256
    static let maxDiagnosticsInReply = 50

    private func submit(_ content: JSONValue, frames: [Data], caller: ClientRecord) throws(DaemonError) -> Reply {
        let key = try optionalString(content, "idempotency_key")
        if let key, key.utf8.count > Self.maxIdempotencyKey {
            throw DaemonError(.invalidRequest, "'idempotency_key' is \(key.utf8.count) bytes; at most \(Self.maxIdempotencyKey)")
        }
        if let key, let existing = try storeCall({ try store.job(idempotencyKey: key, owner: caller.name) }) {
            return (["job": .string(existing.id), "state": .string(existing.state.rawValue), "duplicate": .bool(true)], [])
        }
        let priority = try optionalInt(content, "priority") ?? 0
        guard Self.priorities.contains(priority) else {
            throw DaemonError(.invalidRequest, "'priority' must be in \(Self.priorities.lowerBound)...\(Self.priorities.upperBound), found \(priority)")
        }
        guard priority <= caller.maxPriority else {
            throw DaemonError(.quotaExceeded, "client '\(caller.name)' may submit with priority at most \(caller.maxPriority), "
                              + "asked for \(priority)")
        }
        let active = try storeCall { try store.activeJobs(owner: caller.name) }
        guard active < caller.maxQueued else {
            throw DaemonError(.quotaExceeded, "client '\(caller.name)' has \(active) job(s) queued or running, its limit; "
                              + "submit again when one has ended")
        }
        let client = try optionalString(content, "client").map { String($0.prefix(128)) }
        let preview = try PreviewRequest(submitted: content["preview"])
        let parameters = content["parameters"] ?? .object([:])
        guard case let .object(given) = parameters else {
            throw DaemonError(.invalidRequest, "'parameters' must be an object of name → value, found \(parameters.typeName)")
        }
        guard given.count <= Self.maxParameters else {
            throw DaemonError(.invalidRequest, "\(given.count) parameters; at most \(Self.maxParameters)")
        }
        for (name, value) in given {
            switch value {
            case .string, .int, .float, .bool: break
            default: throw DaemonError(.invalidRequest, "parameter '\(name)' must be a string, number or boolean, found \(value.typeName)")
            }
        }

        // The workflow: inline text, or a template by name.
        let text: String, template: String?, templateFile: URL?
        var templateVersion: (number: Int, sha256: String)?
        // A saved template (its latest version) shadows a file of the same name.
        let requested = content["template"]?.stringValue
        let savedTemplate = try requested.flatMap { name throws(DaemonError) in
            Self.isTemplateName(name) ? try storeCall { try store.template(name: name) } : nil
        }
        switch (content["workflow"], content["template"]) {
        case let (.string(workflow)?, nil):
            (text, template, templateFile) = (workflow, nil, nil)
        case let (nil, .string(name)?) where savedTemplate != nil:
            let saved = savedTemplate!
            (text, template, templateFile) = (saved.text, name, nil)
            templateVersion = (saved.version, saved.sha256)
        case let (nil, .string(name)?):
            guard let url = templateURL(name) else {
                throw DaemonError(.unknownTemplate, "no template '\(name.prefix(80))' (templates: \(templates().map(\.name).joined(separator: ", ")))")
            }
            guard let read = try? String(contentsOf: url, encoding: .utf8) else {
                throw DaemonError(.internal, "cannot read template \(url.path)")
            }
            (text, template, templateFile) = (read, name, url)
        default:
            throw DaemonError(.invalidRequest, "give exactly one of 'workflow' (YAML or JSON text) and 'template' (a name)")
        }
        let displayName = template.map { "template \($0)" } ?? "workflow"
        let validated: ValidatedWorkflow
        do {
            validated = try ValidatedWorkflow(parsing: text, file: displayName, registry: runner.registry,
                                              templates: templateSource, templateName: template)
        } catch {
            // Bounded: a small workflow can produce very many diagnostics.
            let shown = error.diagnostics.prefix(Self.maxDiagnosticsInReply)
            let more = error.diagnostics.count - shown.count
            throw DaemonError(.invalidWorkflow, "the workflow has \(error.diagnostics.count) problem(s): "
                              + shown.map { String($0.description.prefix(500)) }.joined(separator: "; ")
                              + (more > 0 ? "; and \(more) more" : ""),
                              details: .array(shown.map(\.json)))
        }
        let declared = validated.graph.inputs
        for name in given.keys.sorted() {
            if let input = declared[name], [PortType.image, .mask, .latent].contains(input.type) {
                throw DaemonError(.invalidParameters, "template input '\(name)' is \(input.type.spelling): send it as a binary frame under 'inputs', not as a parameter")
            }
        }

        // What the frames would cost, before any is stored or decoded: the
        // pixels their PNG headers declare, and room in the state folder.
        var declaredPixels = 0
        for frame in frames {
            guard let size = PNGHeader.size(of: frame) else { continue }
            let (pixels, overflowed) = size.width.multipliedReportingOverflow(by: size.height)
            let (sum, overflowedSum) = declaredPixels.addingReportingOverflow(pixels)
            declaredPixels = overflowed || overflowedSum ? .max : sum
        }
        guard declaredPixels <= configuration.maxSubmitPixels else {
            throw DaemonError(.tooLarge, "the input images declare \(declaredPixels) pixels in all, over the limit of "
                              + "\(configuration.maxSubmitPixels) per submit (pilot serve --max-submit-pixels); nothing was decoded")
        }
        // Each input is kept twice: the content-addressed blob and the job's own copy.
        let incoming = 2 * frames.reduce(0) { $0 + $1.count }
        try checkDiskQuota(adding: incoming)

        // Input frames: stored content-addressed before the job is.
        let inputSpec = content["inputs"] ?? .object([:])
        guard case let .object(inputRefs) = inputSpec else {
            throw DaemonError(.invalidRequest, "'inputs' must be an object of name → frame index, found \(inputSpec.typeName)")
        }
        var used = Set<Int>()
        var storedInputs: [String: JSONValue] = [:]
        for name in inputRefs.keys.sorted() {
            let reference = inputRefs[name]!
            guard let index = reference.intValue ?? reference["frame"]?.intValue, frames.indices.contains(index) else {
                throw DaemonError(.invalidRequest, "input '\(name)': expected a frame index below \(frames.count) (or {\"frame\": i, \"filename\": …}), found \(reference.compact.prefix(60))")
            }
            guard name.range(of: "^[A-Za-z_][A-Za-z0-9_-]{0,63}$", options: .regularExpression) != nil else {
                throw DaemonError(.invalidRequest, "input name '\(name.prefix(64))' must be a template input name")
            }
            guard declared[name] != nil else {
                throw DaemonError(.invalidParameters, "no template input '\(name)' (template inputs: \(declared.keys.sorted().joined(separator: ", ")))")
            }
            used.insert(index)
            let sha: String
            do { sha = try blobs.put(frames[index]) } catch { throw DaemonError(.internal, "cannot store input '\(name)': \(error)") }
            try storeCall { try store.recordBlob(sha256: sha, bytes: frames[index].count) }
            FaultInjection.point("submit-after-blobs")
            let file = name + "." + Self.fileExtension(reference["filename"]?.stringValue, data: frames[index])
            storedInputs[name] = .object(["sha256": .string(sha), "file": .string(file), "bytes": .int(frames[index].count)])
        }
        if let unused = frames.indices.first(where: { !used.contains($0) }) {
            throw DaemonError(.invalidRequest, "binary frame \(unused) is not named by any input")
        }

        // Bind now, so bad parameters are refused before the job exists.
        let id = UUID().uuidString.lowercased()
        let nestedTemplates = validated.templates.isEmpty ? nil : validated.templateSnapshot.json
        let job = JobRecord(id: id, sequence: 0, idempotencyKey: key, state: .queued, priority: priority, template: template,
                            templateFile: templateFile?.path, workflow: text, parameters: parameters,
                            inputs: .object(storedInputs), client: client, created: Date(), attempts: 0,
                            nestedTemplates: nestedTemplates)
        do {
            let prepared = try JobPreparation.prepare(job, paths: paths, blobs: blobs, registry: runner.registry,
                                                      validated: validated)
            var bindText = prepared.set
            for (name, path) in prepared.inputs { bindText[name] = path }
            _ = try prepared.workflow.bind(text: bindText, loader: NodeLibrary.objectLoader(base: paths.inputs(id)))
        } catch let failure as BindingFailure {
            try? FileManager.default.removeItem(at: paths.job(id))
            throw DaemonError(.invalidParameters, failure.description,
                              details: .array(failure.problems.map { problem in
                                  .object(["parameter": .string(problem.parameter), "message": .string(problem.message),
                                           "expected": problem.expected.map(JSONValue.string) ?? .null,
                                           "found": problem.found.map(JSONValue.string) ?? .null])
                              }))
        } catch let error as DaemonError {
            try? FileManager.default.removeItem(at: paths.job(id))
            throw error
        } catch {
            try? FileManager.default.removeItem(at: paths.job(id))
            throw DaemonError(.internal, "\(error)")
        }

        let insertion = try storeCall {
            try store.insert(id: id, idempotencyKey: key, priority: priority, template: template, templateFile: templateFile?.path,
                             workflow: text, parameters: parameters, inputs: .object(storedInputs), client: client,
                             owner: caller.name, templateVersion: templateVersion, nestedTemplates: nestedTemplates,
                             preview: preview?.json)
        }
        switch insertion {
        case let .duplicate(existing):
            try? FileManager.default.removeItem(at: paths.job(id))
            return (["job": .string(existing.id), "state": .string(existing.state.rawValue), "duplicate": .bool(true)], [])
        case .inserted:
            stateLock.withLock { diskUsage.acceptedSince += incoming }
            FaultInjection.point("submit-after-commit")
            let position = (try? store.queuePosition(id)) ?? nil
            publisher.publish(job: id, type: "queued", content: ["position": position.map(JSONValue.int) ?? .null])
            worker.notify()
            var metadata: Logger.Metadata = ["job": "\(id)", "client": "\(caller.name)"]
            if let template { metadata["template"] = "\(LogText.escaped(template, limit: 100))" }
            logger.info("queued", metadata: metadata)
            return (["job": .string(id), "state": .string("queued"), "duplicate": .bool(false),
                     "position": position.map(JSONValue.int) ?? .null], [])
        }
    }

    /// Refuses a submit that would take the state folder past its quota.
    /// The folder is measured at most once a minute (a walk of its files);
    /// inputs accepted since are added, outputs written since are not, so
    /// the quota can be passed by at most a minute of jobs' outputs, each
    /// bounded by `maxOutputPixels`.
    private func checkDiskQuota(adding incoming: Int) throws(DaemonError) {
        guard let quota = configuration.diskQuota else { return }
        let stale = stateLock.withLock { Date().timeIntervalSince(diskUsage.measured) > 60 }
        if stale {
            let bytes = (try? FileManager.default.allocatedSizeOfFiles(in: configuration.stateDirectory)) ?? 0
            stateLock.withLock { diskUsage = (Date(), bytes, 0) }
        }
        let used = stateLock.withLock { diskUsage.bytes + diskUsage.acceptedSince }
        guard used + incoming <= quota else {
            throw DaemonError(.quotaExceeded, "the state folder holds \(used) bytes; this submit's \(incoming) more would pass its quota of "
                              + "\(quota) bytes (pilot serve --disk-quota): prune ended jobs (pilot prune --older-than 7d) or raise the quota",
                              details: .object(["used": .int(used), "incoming": .int(incoming), "quota": .int(quota)]))
        }
    }

    static func fileExtension(_ filename: String?, data: Data) -> String {
        if let filename {
            let ext = URL(fileURLWithPath: filename).pathExtension.lowercased()
            if ext.range(of: "^[a-z0-9]{1,10}$", options: .regularExpression) != nil { return ext }
        }
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "png" }
        return "safetensors"
    }

    // MARK: queries

    /// The job the request names, if the caller may see it: its own, or
    /// any for an admin. Another client's job reads as missing.
    private func requireJob(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> JobRecord {
        guard let id = content["job"]?.stringValue else {
            throw DaemonError(.invalidRequest, "expected 'job': a job id (string)")
        }
        guard let job = try storeCall({ try store.job(id) }), caller.isAdmin || job.owner == caller.name else {
            throw DaemonError(.notFound, caller.isAdmin ? "no job '\(id.prefix(80))'"
                              : "no job '\(id.prefix(80))' among client '\(caller.name)''s jobs")
        }
        return job
    }

    private func requireAdmin(_ caller: ClientRecord, _ what: String) throws(DaemonError) {
        guard caller.isAdmin else {
            throw DaemonError(.forbidden, "client '\(caller.name)' has role '\(caller.role.rawValue)'; \(what) needs an admin client")
        }
    }

    private func status(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        let job = try requireJob(content, caller: caller)
        var object = job.json.objectValue ?? [:]
        object["transitions"] = .array(try storeCall { try store.transitions(job.id) }.map(\.json))
        if let progress = worker.lastProgress(of: job.id) { object["progress"] = progress }
        if job.state == .queued, let position = try? store.queuePosition(job.id) { object["position"] = .int(position) }
        object["last_event"] = .int(publisher.lastSequence(job: job.id))
        return (["job": .object(object)], [])
    }

    private func list(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        var states: [JobState]?
        switch content["state"] {
        case nil: break
        case let .string(text)?:
            guard let state = JobState(rawValue: text) else { throw badState(text) }
            states = [state]
        case let .array(items)?:
            states = try items.map { item throws(DaemonError) in
                guard let text = item.stringValue, let state = JobState(rawValue: text) else { throw badState(item.compact) }
                return state
            }
        case let other?:
            throw DaemonError(.invalidRequest, "'state' must be a state or a list of states, found \(other.typeName)")
        }
        let limit = min(max(try optionalInt(content, "limit") ?? 100, 1), 10_000)
        let template = try optionalString(content, "template")
        // Clients see their own jobs; admins every job, or one client's with 'owner'.
        let owner = caller.isAdmin ? try optionalString(content, "owner") : caller.name
        let jobs = try storeCall { try store.jobs(states: states, template: template, owner: owner, limit: limit) }
        return (["jobs": .array(jobs.map { job in
            var summary: [String: JSONValue] = ["id": .string(job.id), "state": .string(job.state.rawValue),
                                                "priority": .int(job.priority), "created": .string(WireTime.format(job.created))]
            if let template = job.template { summary["template"] = .string(template) }
            if let client = job.client { summary["client"] = .string(client) }
            summary["owner"] = .string(job.owner)
            return .object(summary)
        })], [])
    }

    private func badState(_ text: String) -> DaemonError {
        DaemonError(.invalidRequest, "unknown state '\(text.prefix(40))'; expected one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
    }

    private func cancel(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        let job = try requireJob(content, caller: caller)
        if job.state == .queued, try storeCall({ try store.cancelQueued(job.id) }) {
            publisher.publish(job: job.id, type: "cancelled", content: ["node": .null])
            publisher.forget(job: job.id)
            return (["job": .string(job.id), "state": .string("cancelled")], [])
        }
        if worker.cancel(job.id) {
            return (["job": .string(job.id), "state": .string("cancelling")], [])
        }
        let now = try storeCall { try store.job(job.id) }?.state ?? job.state
        throw DaemonError(.notCancellable, "job \(job.id) is \(now.rawValue); only queued or running jobs can be cancelled")
    }

    /// Removes finished, failed and cancelled jobs that ended more than
    /// `older_than` seconds ago: their store rows, their folders (inputs and
    /// outputs) and the input blobs no remaining job references.
    private func prune(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        try requireAdmin(caller, "prune")
        guard let value = content["older_than"], let seconds = value.doubleValue, seconds.isFinite, seconds >= 0 else {
            throw DaemonError(.invalidRequest, "expected 'older_than': seconds since a job ended (a number ≥ 0)")
        }
        let removed = try pruneJobs(olderThan: seconds)
        return (["jobs": .int(removed.jobs.count), "blobs": .int(removed.blobs.count), "bytes": .int(removed.bytes)], [])
    }

    /// The store's prune, then the files it no longer references.
    func pruneJobs(olderThan seconds: Double) throws(DaemonError) -> (jobs: [String], blobs: [String], bytes: Int) {
        let result = try storeCall { try store.prune(finishedBefore: Date(timeIntervalSinceNow: -seconds)) }
        var bytes = result.blobBytes
        for id in result.jobs {
            let folder = paths.job(id)
            if let size = try? FileManager.default.allocatedSizeOfFiles(in: folder) { bytes += size }
            try? FileManager.default.removeItem(at: folder)
            publisher.forget(job: id)
        }
        for sha in result.blobs { blobs.remove(sha) }
        if !result.jobs.isEmpty || !result.blobs.isEmpty {
            logger.info("pruned \(result.jobs.count) job(s) and \(result.blobs.count) blob(s), \(bytes) bytes")
        }
        // Measured again at the next submit.
        stateLock.withLock { diskUsage.measured = .distantPast }
        return (result.jobs, result.blobs, bytes)
    }

    private func result(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        let job = try requireJob(content, caller: caller)
        guard job.state == .finished else {
            throw DaemonError(.notFinished, "job \(job.id) is \(job.state.rawValue); results exist once it is finished",
                              details: .object(["state": .string(job.state.rawValue), "error": job.error ?? .null]))
        }
        var described: [JSONValue] = [], frames: [Data] = []
        for output in job.outputs?.arrayValue ?? [] {
            guard let name = output["name"]?.stringValue else { continue }
            let url = paths.outputs(job.id).appendingPathComponent(name)
            guard let data = try? Data(contentsOf: url) else {
                throw DaemonError(.notFound, "output \(name) of job \(job.id) is missing from \(url.path)")
            }
            var object = output.objectValue ?? [:]
            object["frame"] = .int(frames.count)
            described.append(.object(object))
            frames.append(data)
        }
        return (["job": .string(job.id), "outputs": .array(described)], frames)
    }

    // MARK: clients

    /// Caps a new client gets unless the request says otherwise.
    static let defaultClientMaxPriority = 0
    static let defaultClientMaxQueued = 16

    private func listClients(caller: ClientRecord) throws(DaemonError) -> Reply {
        try requireAdmin(caller, "listing clients")
        let records = try storeCall { try store.clients() }
        return (["clients": .array(records.map(\.json))], [])
    }

    /// Issues a client: its own HMAC key and (under CURVE) key pair on the
    /// allow-list, a role and caps. The reply carries the client's whole
    /// connection file; the daemon keeps only what checks it.
    private func addClient(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        try requireAdmin(caller, "issuing a client key")
        guard let name = content["name"]?.stringValue, ClientRecord.isValidName(name), name != ClientRecord.ownerName else {
            throw DaemonError(.invalidRequest, "expected 'name': 1–64 letters, digits, '.', '_' or '-' (not 'owner'), found "
                              + (content["name"]?.compact.prefix(70).description ?? "none"))
        }
        let roleText = try optionalString(content, "role") ?? ClientRole.user.rawValue
        guard let role = ClientRole(rawValue: roleText) else {
            throw DaemonError(.invalidRequest, "'role' must be one of \(ClientRole.allCases.map(\.rawValue).joined(separator: ", ")), found '\(roleText.prefix(40))'")
        }
        let maxPriority = try optionalInt(content, "max_priority") ?? (role == .admin ? Self.priorities.upperBound : Self.defaultClientMaxPriority)
        guard Self.priorities.contains(maxPriority) else {
            throw DaemonError(.invalidRequest, "'max_priority' must be in \(Self.priorities.lowerBound)...\(Self.priorities.upperBound)")
        }
        let maxQueued = try optionalInt(content, "max_queued") ?? Self.defaultClientMaxQueued
        guard maxQueued >= 0 else { throw DaemonError(.invalidRequest, "'max_queued' must be ≥ 0") }
        var pair: (publicKey: String, secretKey: String)?
        if connection.curveServerKey != nil {
            do { pair = try ZMQContext.curveKeyPair() } catch { throw DaemonError(.internal, "\(error)") }
        }
        let record = ClientRecord(name: name, key: ConnectionInfo.newKey(), curvePublicKey: pair?.publicKey, role: role,
                                  maxPriority: maxPriority, maxQueued: maxQueued)
        guard try storeCall({ try store.addClient(record) }) else {
            throw DaemonError(.invalidRequest, "a client named '\(name)' exists or was revoked; names are not reused")
        }
        clients.add(record)
        logger.notice("issued a client key", metadata: ["client": "\(name)", "role": "\(role.rawValue)", "by": "\(caller.name)"])
        let file = ConnectionInfo(requests: connection.requests, events: connection.events, key: record.key,
                                  eventKey: connection.eventKey, client: name, curveServerKey: connection.curveServerKey,
                                  curvePublicKey: pair?.publicKey, curveSecretKey: pair?.secretKey)
        return (["client": record.json, "connection": file.json], [])
    }

    private func revokeClient(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        try requireAdmin(caller, "revoking a client key")
        guard let name = content["name"]?.stringValue else { throw DaemonError(.invalidRequest, "expected 'name': a client name") }
        guard name != ClientRecord.ownerName else {
            throw DaemonError(.invalidRequest, "the owner's key is the daemon's own: start it with --new-key to replace it")
        }
        guard try storeCall({ try store.revokeClient(name) }) else {
            throw DaemonError(.notFound, "no active client '\(name.prefix(64))'")
        }
        clients.revoke(name)
        // Under CURVE its open event connection would keep the subscriptions
        // it was granted: every subscriber is disconnected, and all but the
        // revoked one (refused by the ZAP handler) reconnect and subscribe again.
        if zap != nil {
            do { try publisher.reconnectAll() } catch {
                logger.error("revoking \(name): the event socket could not be made again: \(error)")
            }
        }
        logger.notice("revoked a client key", metadata: ["client": "\(name)", "by": "\(caller.name)"])
        return (["client": .string(name), "revoked": .bool(true)], [])
    }

    // MARK: templates

    /// Where template nodes find templates: saved ones, then the template folders.
    private var templateSource: DaemonTemplates {
        DaemonTemplates(store: store, folders: configuration.templateDirectories.map(TemplateFolder.init))
    }

    private func templates() -> [(name: String, url: URL)] {
        var seen = Set<String>(), found: [(String, URL)] = []
        for directory in configuration.templateDirectories {
            for url in TemplateLibrary(explicit: directory.path).templates {
                let name = url.deletingPathExtension().lastPathComponent
                if seen.insert(name).inserted { found.append((name, url)) }
            }
        }
        return found.sorted { $0.0 < $1.0 }
    }

    private func templateURL(_ name: String) -> URL? {
        guard Self.isTemplateName(name) else { return nil }
        return templates().first { $0.name == name }?.url
    }

    /// Template names: 1–100 letters, digits, `_`, `.`, `-`, not starting with a dot.
    static func isTemplateName(_ name: String) -> Bool { TemplateFolder.isValidName(name) }

    /// File templates and saved ones; a saved template shadows a file of the same name, and says so.
    private func listTemplates() throws(DaemonError) -> Reply {
        let saved = try storeCall { try store.savedTemplates() }
        let savedNames = Set(saved.map(\.name))
        let files = templates()
        var list: [JSONValue] = saved.map { version in
            var object = summary(of: version)
            if files.contains(where: { $0.name == version.name }) { object["shadows_file"] = .bool(true) }
            return .object(object)
        }
        list += files.filter { !savedNames.contains($0.name) }.map { file in
            var object = templateSummary(file.name, file.url).objectValue ?? [:]
            object["source"] = .string("file")
            return .object(object)
        }
        return (["templates": .array(list.sorted { ($0["name"]?.stringValue ?? "") < ($1["name"]?.stringValue ?? "") })], [])
    }

    /// A saved version's summary: name, inputs, version, hash, who saved it.
    private func summary(of version: JobStore.TemplateVersion) -> [String: JSONValue] {
        var object: [String: JSONValue] = ["name": .string(version.name), "valid": .bool(false)]
        if let workflow = try? ValidatedWorkflow(parsing: version.text, file: "template \(version.name)", registry: runner.registry,
                                                 templates: templateSource, templateName: version.name) {
            object = Self.describe(version.name, workflow)
        }
        object["source"] = .string("saved")
        for (key, value) in version.json.objectValue ?? [:] where key != "name" { object[key] = value }
        return object
    }

    /// Saves a new version of a template after validating it; any client may.
    private func saveTemplate(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        guard let name = content["name"]?.stringValue, Self.isTemplateName(name) else {
            throw DaemonError(.invalidRequest, "expected 'name': 1 to 100 letters, digits, '_', '.' or '-', not starting with '.'")
        }
        guard let text = content["text"]?.stringValue else { throw DaemonError(.invalidRequest, "expected 'text': the template's YAML") }
        do {
            _ = try ValidatedWorkflow(parsing: text, file: "template \(name)", registry: runner.registry,
                                      templates: templateSource, templateName: name)
        } catch {
            let shown = error.diagnostics.prefix(Self.maxDiagnosticsInReply)
            throw DaemonError(.invalidWorkflow, "template '\(name)' is not saved: \(error.diagnostics.count) problem(s): "
                              + shown.map { String($0.description.prefix(500)) }.joined(separator: "; "),
                              details: .array(shown.map(\.json)))
        }
        let saved = try storeCall { try store.saveTemplate(name: name, text: text, client: caller.name) }
        logger.notice("template saved", metadata: ["template": "\(name)", "version": "\(saved.version)", "client": "\(caller.name)"])
        return (["template": saved.json], [])
    }

    /// Deletes a saved template (every version stays in its history): its
    /// last saver or an admin may; a file template cannot be deleted.
    private func deleteTemplate(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        guard let name = content["name"]?.stringValue, Self.isTemplateName(name) else {
            throw DaemonError(.invalidRequest, "expected 'name': a template name")
        }
        guard let latest = try storeCall({ try store.template(name: name) }) else {
            if templateURL(name) != nil {
                throw DaemonError(.forbidden, "template '\(name)' is a file (built in, or in a templates folder): it cannot be deleted over the wire")
            }
            throw DaemonError(.unknownTemplate, "no saved template '\(name)'")
        }
        guard caller.isAdmin || latest.client == caller.name else {
            throw DaemonError(.forbidden, "template '\(name)' was last saved by client '\(latest.client)': only it or an admin may delete it")
        }
        _ = try storeCall { try store.deleteTemplate(name: name) }
        return (["template": .string(name), "deleted": .bool(true), "file_remains": .bool(templateURL(name) != nil)], [])
    }

    private func templateHistory(_ content: JSONValue) throws(DaemonError) -> Reply {
        guard let name = content["name"]?.stringValue, Self.isTemplateName(name) else {
            throw DaemonError(.invalidRequest, "expected 'name': a template name")
        }
        let versions = try storeCall { try store.templateHistory(name: name) }
        guard !versions.isEmpty else { throw DaemonError(.unknownTemplate, "template '\(name)' has no saved versions") }
        return (["name": .string(name), "versions": .array(versions.map(\.json))], [])
    }

    private func templateSummary(_ name: String, _ url: URL) -> JSONValue {
        guard let workflow = try? ValidatedWorkflow(contentsOf: url, registry: runner.registry, templates: templateSource) else {
            return .object(["name": .string(name), "valid": .bool(false)])
        }
        return .object(Self.describe(name, workflow))
    }

    /// Name, description and typed inputs of a validated template.
    private static func describe(_ name: String, _ workflow: ValidatedWorkflow) -> [String: JSONValue] {
        let inputs: [JSONValue] = workflow.graph.inputs.values.sorted { $0.name < $1.name }.map { input in
            var object: [String: JSONValue] = ["name": .string(input.name), "type": .string(input.type.spelling),
                                               "description": .string(input.description)]
            if let value = input.defaultValue { object["default"] = value.json }
            if let minimum = input.minimum { object["min"] = .float(minimum) }
            if let maximum = input.maximum { object["max"] = .float(maximum) }
            if let choices = input.choices { object["choices"] = .array(choices.map(\.json)) }
            return .object(object)
        }
        return ["name": .string(name), "valid": .bool(true), "description": .string(workflow.graph.description),
                "inputs": .array(inputs)]
    }

    private func template(_ content: JSONValue) throws(DaemonError) -> Reply {
        guard let name = content["name"]?.stringValue else { throw DaemonError(.invalidRequest, "expected 'name': a template name") }
        let version = try optionalInt(content, "version")
        if Self.isTemplateName(name), let saved = try storeCall({ try store.template(name: name, version: version) }) {
            var object = summary(of: saved)
            object["text"] = .string(saved.text)
            return (["template": .object(object)], [])
        }
        if let version { throw DaemonError(.unknownTemplate, "template '\(name.prefix(80))' has no saved version \(version)") }
        guard let url = templateURL(name), let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw DaemonError(.unknownTemplate, "no template '\(name.prefix(80))'")
        }
        var object = templateSummary(name, url).objectValue ?? [:]
        object["text"] = .string(text)
        return (["template": .object(object)], [])
    }

    // MARK: helpers

    private func optionalString(_ content: JSONValue, _ key: String) throws(DaemonError) -> String? {
        guard let value = content[key], value != .null else { return nil }
        guard let text = value.stringValue else { throw DaemonError(.invalidRequest, "'\(key)' must be a string, found \(value.typeName)") }
        return text
    }

    private func optionalInt(_ content: JSONValue, _ key: String) throws(DaemonError) -> Int? {
        guard let value = content[key], value != .null else { return nil }
        guard let number = value.intValue else { throw DaemonError(.invalidRequest, "'\(key)' must be an integer, found \(value.typeName)") }
        return number
    }

    private func storeCall<T>(_ body: () throws -> T) throws(DaemonError) -> T {
        do { return try body() } catch let error as DaemonError { throw error } catch {
            logger.error("job store: \(error)")
            throw DaemonError(.internal, "job store: \(error)")
        }
    }
}

extension FileManager {
    /// Bytes of the regular files under `folder` (not following links).
    func allocatedSizeOfFiles(in folder: URL) throws -> Int {
        guard let items = enumerator(at: folder, includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey]) else { return 0 }
        var total = 0
        for case let url as URL in items {
            let values = try url.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey])
            if values.isRegularFile == true { total += values.fileSize ?? 0 }
        }
        return total
    }
}

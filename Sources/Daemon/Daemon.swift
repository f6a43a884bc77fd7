import CZeroMQ
import Foundation
import Logging
import Workflow

/// The long-lived daemon: a ROUTER socket for signed requests, an XPUB
/// socket for events, a durable job store and one worker that runs jobs in
/// turn. `run()` serves until `stop()`; see `docs/protocol.md`.
public final class Daemon: @unchecked Sendable {
    public let configuration: DaemonConfiguration
    /// What clients need; also written to `STATE/connection.json` (0600).
    public let connection: ConnectionInfo
    /// SQLite in the state folder, or (`configuration.queue`) the PostgreSQL queue many machines share.
    public let store: any DaemonStore
    /// The shared queue, when this daemon is a front of one.
    let sharedQueue: PostgresJobQueue?
    /// Relays the events of workers elsewhere (with a shared queue).
    let relay: PostgresEventRelay?
    public let catalog: ModelCatalog
    /// The program's version (its node library's), in `info` replies.
    public var version: String { runner.nodes.programVersion }

    /// The daemon's own libzmq context (its ZAP handler is one per context).
    let context = ZMQContext()
    let router: ZMQSocket
    let publisher: EventPublisher
    /// The owner's key: refusals of messages that did not authenticate are signed with it.
    let signer: MessageSigner
    /// Who may connect and sign: the owner and the clients `pilot keys add` issued.
    public let clients: ClientRegistry
    /// CURVE's client allow-list (only when the sockets are encrypted).
    let zap: ZAPHandler?
    let blobs: BlobStore
    let worker: any JobRunning
    let runner: WorkflowRunner
    let paths: JobPaths
    let logger: Logger
    let lockDescriptor: Int32
    let started = Date()

    let stateLock = NSLock()
    var stopRequested = false
    var replayGuard: ReplayGuard
    var refused: [String: Int] = [:]
    /// The state folder's size when last measured, and input bytes accepted since (see `checkDiskQuota`).
    var diskUsage: (measured: Date, bytes: Int, acceptedSince: Int) = (.distantPast, 0, 0)
    var served: [String: Int] = [:]

    /// Opens the store (requeueing jobs a previous run left running), binds
    /// the sockets and writes the connection file; jobs run on `nodes` (the
    /// program's node library). Throws if another daemon holds the state directory.
    public init(configuration: DaemonConfiguration, nodes: NodeProvider, logger: Logger = Logger(label: "pilot.daemon")) throws {
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

        var sqlite: JobStore?
        if let queue = configuration.queue {
            guard configuration.workerCommand == nil else {
                throw DaemonError(.invalidRequest, "a front of a shared queue runs jobs on threads (--workers N) or leaves them "
                                  + "to pilot worker --queue processes, not in a supervised worker process")
            }
            let shared = try PostgresJobQueue(connection: queue, worker: Self.frontName(state))
            store = shared
            sharedQueue = shared
        } else {
            let local = try JobStore(path: state.appendingPathComponent("jobs.sqlite").path)
            sqlite = local
            store = local
            sharedQueue = nil
        }
        blobs = BlobStore(directory: state.appendingPathComponent("blobs", isDirectory: true))
        catalog = ModelCatalog(directory: configuration.modelsDirectory, store: store)
        paths = JobPaths(state: state, models: configuration.modelsDirectory.standardizedFileURL,
                         templates: configuration.templateDirectories.map(\.standardizedFileURL),
                         extraReadable: configuration.extraReadDirectories.map(\.standardizedFileURL))
        runner = WorkflowRunner(nodes: nodes, executor: Executor(cache: OutputCache(budgetBytes: configuration.memoryBudget)))
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
        let publisher = self.publisher, logger = self.logger, blobs = self.blobs, paths = self.paths, runner = self.runner
        relay = sharedQueue.map { PostgresEventRelay(queue: $0, publisher: publisher, logger: logger) }
        connection = ConnectionInfo(requests: router.lastEndpoint, events: publisher.endpoint, key: key, eventKey: eventKey,
                                    curveServerKey: curveKey, curvePublicKey: ownerCurve?.publicKey,
                                    curveSecretKey: ownerCurve?.secretKey, pid: getpid())
        try connection.write(to: configuration.connectionFile)

        if let sharedQueue {
            // Events go through the queue, so every front relays them.
            let sink = PostgresEventSink(queue: sharedQueue, logger: logger)
            worker = LocalWorkers((0..<configuration.localWorkers).map { index in
                JobWorker(queue: sharedQueue, blobs: blobs, publisher: sink,
                          runner: index == 0 ? runner : WorkflowRunner(nodes: nodes, executor: Executor(cache: OutputCache(
                              budgetBytes: configuration.memoryBudget))),
                          paths: paths, logger: logger, device: configuration.device, timeLimit: configuration.jobTimeLimit,
                          maxOutputPixels: configuration.maxOutputPixels, lease: configuration.lease)
            })
        } else if let command = configuration.workerCommand, let sqlite {
            worker = WorkerSupervisor(command: command,
                                      setup: WorkerSetup(paths: paths, memoryBudget: configuration.memoryBudget,
                                                         device: configuration.device, jobTimeLimit: configuration.jobTimeLimit,
                                                         maxOutputPixels: configuration.maxOutputPixels),
                                      store: sqlite, publisher: publisher, logger: logger)
        } else {
            worker = JobWorker(queue: store, blobs: blobs, publisher: publisher, runner: runner, paths: paths, logger: logger,
                               device: configuration.device, timeLimit: configuration.jobTimeLimit,
                               maxOutputPixels: configuration.maxOutputPixels)
        }
        var crashed: [String] = []
        let requeued = try store.requeueInterrupted(now: Date(), maxCrashes: JobStore.defaultMaxCrashes, cause: "the daemon stopped",
                                                    lastNode: [:], crashed: &crashed)
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

    /// The worker name a front's own workers claim under: its host and state folder.
    static func frontName(_ state: URL) -> String {
        "front \(ProcessInfo.processInfo.hostName):\(state.standardizedFileURL.path)"
    }

    /// A CURVE key pair kept in the store (a fresh one unless `keep`).
    private static func curvePair(named name: String, store: any DaemonStore, keep: Bool) throws -> (publicKey: String, secretKey: String) {
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
    static func maySubscribe(client: String?, topic: String, clients: ClientRegistry, store: any DaemonStore) -> Bool {
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
        relay?.start()
        var nextSweep = Date()
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
            if sharedQueue != nil, Date() >= nextSweep {
                nextSweep = Date(timeIntervalSinceNow: min(5, configuration.lease / 4))
                sweepLeases()
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
        relay?.stop()
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

    /// A shared queue's leases: jobs whose worker went silent are requeued
    /// (or failed as `worker_lost` after `maxAttempts`), and said so on the
    /// event socket. Every front sweeps; a job is handled by one.
    func sweepLeases() {
        do {
            let (requeued, lost) = try store.expireLeases(now: Date(), maxAttempts: configuration.maxAttempts)
            for id in requeued {
                logger.notice("requeued: its worker's lease ran out", metadata: ["job": "\(id)"])
                publisher.publish(job: id, type: "requeued", content: ["node": .null, "reason": .string("lease expired")])
            }
            for id in lost {
                logger.warning("failed as worker_lost: its lease ran out on its last attempt", metadata: ["job": "\(id)"])
                let error = (try? store.job(id))?.error ?? .null
                publisher.publish(job: id, type: "failed", content: ["error": error])
                publisher.forget(job: id)
            }
            if !requeued.isEmpty { wakeWorkers() }
        } catch {
            logger.error("job queue: cannot sweep expired leases: \(error)")
        }
    }

    /// A job may be claimed: this daemon's workers are woken, and (a shared
    /// queue) idle `pilot worker` processes, which LISTEN for it, instead of
    /// their next look a second later.
    func wakeWorkers() {
        worker.notify()
        if let sharedQueue {
            do { try sharedQueue.notify(PostgresEvents.jobsChannel, "") } catch {
                logger.warning("job queue: cannot wake the workers (they look again within a second): \(error)")
            }
        }
    }

    /// The store secret a clean stop saves the replay cache under.
    static let replayCacheSecret = "replay_cache"

    /// Asks `run()` to return (thread-safe; signal handlers call it).
    public func stop() {
        stateLock.withLock { stopRequested = true }
    }

    var isStopping: Bool { stateLock.withLock { stopRequested } }

    /// Refusals by error code since start.
    public var refusals: [String: Int] { stateLock.withLock { refused } }
}

import Foundation
import Logging
import Workflow

/// Runs queued jobs one at a time on its own thread, in priority then
/// submission order, publishing their events and recording every state
/// change in the store before announcing it.
final class JobWorker: @unchecked Sendable {
    private let queue: any JobQueue
    private let blobs: BlobStore
    private let publisher: any JobEventSink
    let runner: WorkflowRunner
    private let paths: JobPaths
    private let logger: Logger
    /// Where jobs run (DaemonConfiguration.device).
    private let device: String

    private let condition = NSCondition()
    private var stopping = false
    private var finishedRunning = false
    private var current: (id: String, token: CancellationToken, requeue: Bool)?
    private var progress: [String: JSONValue] = [:]

    /// Longest a job may run (DaemonConfiguration.jobTimeLimit).
    private let timeLimit: TimeInterval
    /// Most pixels a job may write (DaemonConfiguration.maxOutputPixels).
    private let maxOutputPixels: Int?
    /// How long a claim holds a job; the heartbeat renews it four times as often.
    private let lease: TimeInterval
    /// Whether a job's folder goes once its end is recorded (a worker on
    /// another machine than the fronts: its outputs are in the queue).
    private let removeJobFolders: Bool

    init(queue: any JobQueue, blobs: BlobStore, publisher: any JobEventSink, runner: WorkflowRunner, paths: JobPaths, logger: Logger,
         device: String = "cpu (fp32)", timeLimit: TimeInterval = 6 * 3600, maxOutputPixels: Int? = nil,
         lease: TimeInterval = JobLease.seconds, removeJobFolders: Bool = false) {
        self.lease = lease
        self.removeJobFolders = removeJobFolders
        self.device = device
        self.maxOutputPixels = maxOutputPixels
        self.timeLimit = timeLimit
        self.queue = queue
        self.blobs = blobs
        self.publisher = publisher
        self.runner = runner
        self.paths = paths
        self.logger = logger
    }

    func start() {
        // Not stored: a Thread keeps its closure (and so this worker) for
        // as long as the Thread lives, so holding it here made a cycle that
        // kept the worker, store and event socket of a stopped daemon.
        // A running thread holds itself; it lets go when `loop` returns.
        let thread = Thread { [self] in loop() }
        thread.name = "pilot-worker"
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Wakes the worker: a job was queued.
    func notify() {
        condition.withLock { condition.signal() }
    }

    /// The running job's id, if any.
    var runningJob: String? { condition.withLock { current?.id } }

    /// The last progress event of `job` while it runs.
    func lastProgress(of job: String) -> JSONValue? { condition.withLock { progress[job] } }

    /// Asks running job `id` to stop at its next step boundary; false if it is not running.
    func cancel(_ id: String) -> Bool {
        condition.withLock {
            guard let current, current.id == id else { return false }
            current.token.cancel()
            return true
        }
    }

    /// Stops taking jobs; a running job is cancelled and requeued. Returns once the worker thread is done.
    func shutdown() {
        condition.withLock {
            stopping = true
            if let running = current {
                current!.requeue = true
                running.token.cancel()
            }
            condition.broadcast()
            while !finishedRunning { condition.wait() }
        }
    }

    private func loop() {
        defer { condition.withLock { finishedRunning = true; condition.broadcast() } }
        while true {
            let job: JobRecord?
            do {
                job = try condition.withLock { () throws -> JobRecord? in
                    if stopping { return nil }
                    guard let claimed = try queue.claimNext(now: Date(), note: "device \(device)", lease: lease) else {
                        _ = condition.wait(until: Date().addingTimeInterval(1))
                        return nil
                    }
                    current = (claimed.id, CancellationToken(), false)
                    return claimed
                }
            } catch {
                logger.error("job store: cannot claim the next job: \(error)")
                Thread.sleep(forTimeInterval: 1)
                continue
            }
            if condition.withLock({ stopping && current == nil }) { return }
            guard let job else { continue }
            run(job)
            if removeJobFolders { try? FileManager.default.removeItem(at: paths.job(job.id)) }
            condition.withLock {
                current = nil
                progress.removeValue(forKey: job.id)
            }
        }
    }

    private func run(_ job: JobRecord) {
        var logger = logger
        logger[metadataKey: "job"] = "\(job.id)"
        let token = condition.withLock { current!.token }
        logger.info("started (attempt \(job.attempts))", metadata: job.template.map { ["template": "\(LogText.escaped($0, limit: 100))"] } ?? [:])
        publisher.begin(job: job.id, attempt: job.attempts)
        // The lease: renewed while the job runs; lost (the queue gave the job
        // to another attempt), the run stops and records nothing.
        let lost = LockedFlag()
        let heartbeat = LeaseHeartbeat(queue: queue, job: job, lease: lease, token: token, lost: lost, logger: logger)
        defer { heartbeat.stop() }
        publisher.publish(job: job.id, type: "started", content: ["attempt": .int(job.attempts), "device": .string(device)])
        let started = DispatchTime.now()
        // The time limit: cancel at the next step, and say why.
        let timedOut = LockedFlag()
        let limit = timeLimit
        let watchdog = DispatchWorkItem { timedOut.set(); token.cancel() }
        DispatchQueue.global().asyncAfter(deadline: .now() + limit, execute: watchdog)
        defer { watchdog.cancel() }
        do {
            let prepared = try JobPreparation.prepare(job, paths: paths, blobs: blobs, registry: runner.registry,
                                                      fetch: { [queue] sha in try queue.blob(sha) })
            let output = paths.outputs(job.id)
            try? FileManager.default.removeItem(at: output)
            try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
            let result = try runner.run(prepared.workflow, file: prepared.file, parameters: prepared.parameters, inputs: prepared.inputs,
                                        inputBase: paths.job(job.id), outputDirectory: output,
                                        allowedReadDirectories: paths.readable(job.id), maxOutputPixels: maxOutputPixels,
                                        annotations: Self.annotations(job), preview: Self.preview(job, models: paths.models),
                                        cancellation: token,
                                        onEvent: { [self] event in handle(event, job: job.id) })
            let outputs = Self.describe(result.files)
            if queue.keepsBlobBytes {
                // Where every front can read them, before the finish that names them.
                var bytes: [String: Data] = [:]
                for file in result.files { bytes[file.sha256] = try Data(contentsOf: output.appendingPathComponent(file.name)) }
                try queue.putBlobs(bytes, now: Date())
            }
            guard try queue.finish(job, state: .finished, outputs: .array(outputs)) else {
                logger.warning("finished, but attempt \(job.attempts) no longer holds the job (requeued or cancelled meanwhile): result not recorded")
                return
            }
            let ms = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e6
            logger.info("finished in \(String(format: "%.0f", ms)) ms, \(outputs.count) output file(s)")
            publisher.publish(job: job.id, type: "finished", content: [
                "outputs": .array(outputs), "ms": .float(ms),
                "nodes": .array(result.nodes.map { .object(["node": .string($0.nodeID), "type": .string($0.nodeType),
                                                             "ms": .float($0.milliseconds), "cached": .bool($0.cacheHit)]) }),
            ])
        } catch let error as ExecutionError {
            if case let .cancelled(node) = error {
                if lost.isSet {
                    logger.warning("stopped at node '\(LogText.escaped(node, limit: 100))': attempt \(job.attempts) lost its lease (the job was requeued), so it records nothing")
                } else if timedOut.isSet {
                    fail(job, DaemonError(.timeout, "the job ran past the time limit of \(Int(limit)) s and was stopped at node '\(node)'",
                                          details: .object(["node": .string(node), "limit_seconds": .int(Int(limit))])), logger: logger)
                } else if condition.withLock({ current?.requeue ?? false }) {
                    _ = try? queue.requeue(job, note: "requeued: the daemon stopped at node '\(node)'")
                    logger.notice("requeued at node '\(LogText.escaped(node, limit: 100))': the daemon is stopping")
                    publisher.publish(job: job.id, type: "requeued", content: ["node": .string(node)])
                } else {
                    _ = try? queue.finish(job, state: .cancelled, error: DaemonError(.notFinished, "cancelled at node '\(node)'").json)
                    logger.info("cancelled at node '\(LogText.escaped(node, limit: 100))'")
                    publisher.publish(job: job.id, type: "cancelled", content: ["node": .string(node)])
                    publisher.forget(job: job.id)
                }
            } else {
                fail(job, Self.structured(error), logger: logger)
            }
        } catch let error as PostgresError {
            // The shared queue was unreachable (restarting, network): not the
            // job's fault. Give it back if the queue answers again; else its
            // lease runs out and a front requeues it.
            let requeued = (try? queue.requeue(job, note: "requeued: the queue was unreachable as attempt \(job.attempts) ended")) ?? false
            logger.warning("the queue was unreachable (\(error)); the job is \(requeued ? "requeued" : "left to its lease")")
            if requeued { publisher.publish(job: job.id, type: "requeued", content: ["node": .null, "reason": .string("queue unreachable")]) }
        } catch let error as DaemonError {
            fail(job, error, logger: logger)
        } catch let failure as BindingFailure {
            fail(job, DaemonError(.invalidParameters, failure.description,
                                  details: .array(failure.problems.map { .string($0.description) })), logger: logger)
        } catch {
            fail(job, DaemonError(.internal, "\(error)"), logger: logger)
        }
    }

    private func fail(_ job: JobRecord, _ error: DaemonError, logger: Logger) {
        // What a failed job wrote is not an output (and may be why the disk is full).
        try? FileManager.default.removeItem(at: paths.outputs(job.id))
        do { try queue.finish(job, state: .failed, error: error.json) } catch {
            logger.error("job store: cannot record the failure: \(error)")
        }
        logger.warning("failed: \(LogText.escaped(error.message))")
        publisher.publish(job: job.id, type: "failed", content: ["error": error.json])
        publisher.forget(job: job.id)
    }

    static func structured(_ error: ExecutionError) -> DaemonError {
        guard case let .nodeFailed(node, type, underlying) = error else {
            return DaemonError(.internal, error.description)
        }
        let details: JSONValue = .object(["node": .string(node), "type": .string(type), "message": .string("\(underlying)")])
        if underlying is PathError { return DaemonError(.pathNotAllowed, error.description, details: details) }
        if underlying is OutputLimitError { return DaemonError(.tooLarge, error.description, details: details) }
        return DaemonError(.nodeFailed, error.description, details: details)
    }

    private func handle(_ event: ExecutionEvent, job: String) {
        switch event {
        case let .nodeStarted(node, type):
            publisher.publish(job: job, type: "node_started", content: ["node": .string(node), "type": .string(type)])
            FaultInjection.crash(atNode: node)
            FaultInjection.freeze(atNode: node)
        case let .progress(p):
            let content: [String: JSONValue] = [
                "node": .string(p.nodeID), "type": .string(p.nodeType), "step": .int(p.step), "total": .int(p.total),
                "values": .object(p.extra.compactMapValues { $0.isFinite ? JSONValue.float($0) : nil }),
            ]
            if Self.isStepProgress(content) { condition.withLock { progress[job] = .object(content) } }
            publisher.publish(job: job, type: "progress", content: content)
        case let .preview(p):
            var content: [String: JSONValue] = [
                "node": .string(p.nodeID), "type": .string(p.nodeType), "step": .int(p.step), "total": .int(p.total),
                "width": .int(p.width), "height": .int(p.height), "method": .string(p.method),
            ]
            if let note = p.note { content["note"] = .string(note) }
            publisher.publish(job: job, type: "preview", content: content, frames: [p.png])
        case let .nodeFinished(run):
            publisher.publish(job: job, type: "node_finished", content: [
                "node": .string(run.nodeID), "type": .string(run.nodeType), "ms": .float(run.milliseconds),
                "cached": .bool(run.cacheHit),
            ])
        }
    }

    /// The previews `job` asked for; taesd looks for its weights in the models folder.
    static func preview(_ job: JobRecord, models: URL) -> PreviewRequest? {
        guard var request = PreviewRequest(stored: job.preview) else { return nil }
        request.decoderDirectory = models
        return request
    }

    /// What a job's images record about it besides the workflow: the job id
    /// and, for a template, its name and (when saved) version and SHA-256.
    static func annotations(_ job: JobRecord) -> [String: String] {
        var notes = ["job": job.id]
        if let template = job.template { notes["template"] = template }
        if let version = job.templateVersion { notes["template-version"] = String(version) }
        if let sha = job.templateSHA256 { notes["template-sha256"] = sha }
        return notes
    }

    /// Whether a progress event is a sampler's own step (not an inner loop
    /// such as PILOT's optimisation steps): what `status` shows.
    static func isStepProgress(_ content: [String: JSONValue]) -> Bool {
        content["values"]?["inner"] == nil
    }

    /// `[{"name", "sha256", "bytes"}]` for each file a job wrote, by name.
    /// The files a run wrote, as `outputs` lists them (by name), from the
    /// executor's record: the folder is neither listed nor read again.
    static func describe(_ files: [OutputFile]) -> [JSONValue] {
        files.sorted { $0.name < $1.name }.map { file in
            .object(["name": .string(file.name), "sha256": .string(file.sha256), "bytes": .int(file.bytes)])
        }
    }
}

/// Where a daemon keeps each job's files: `STATE/jobs/ID/{inputs,outputs}`.
struct JobPaths: Sendable {
    let state: URL
    let models: URL
    let templates: [URL]
    let extraReadable: [URL]

    func job(_ id: String) -> URL { state.appendingPathComponent("jobs", isDirectory: true).appendingPathComponent(id, isDirectory: true) }
    func inputs(_ id: String) -> URL { job(id).appendingPathComponent("inputs", isDirectory: true) }
    func outputs(_ id: String) -> URL { job(id).appendingPathComponent("outputs", isDirectory: true) }

    /// What job `id`'s nodes may read.
    func readable(_ id: String) -> [URL] { [models] + templates + extraReadable + [inputs(id)] }
}

/// A stored job made ready to run: its workflow validated again, inputs on disk.
struct JobPreparation {
    var workflow: ValidatedWorkflow
    /// Relative paths resolve against this file's folder (a template's, or the models directory).
    var file: URL
    /// The submit's parameters as sent: numbers and booleans typed, strings as text (converted to the input's type).
    var parameters: [String: ParameterValue]
    var inputs: [String: String]

    /// `validated`: the job's workflow when the caller has just validated it
    /// (submit); otherwise it is parsed and validated again (a stored job).
    /// `fetch`: the bytes of a blob this machine does not have (a shared queue keeps them).
    static func prepare(_ job: JobRecord, paths: JobPaths, blobs: BlobStore, registry: NodeRegistry,
                        validated: ValidatedWorkflow? = nil, fetch: (String) throws -> Data? = { _ in nil }) throws -> JobPreparation {
        let displayName = job.template.map { "template \($0)" } ?? "job \(job.id)"
        let workflow: ValidatedWorkflow
        if let validated {
            workflow = validated
        } else {
            do {
                // The templates it was validated with at submission, not today's.
                let templates = job.nestedTemplates.flatMap(TemplateSnapshot.init(json:)) ?? TemplateSnapshot([])
                workflow = try ValidatedWorkflow(parsing: job.workflow, file: displayName, registry: registry,
                                                 templates: templates, templateName: job.template)
            } catch {
                throw DaemonError(.invalidWorkflow, "the workflow no longer validates",
                                  details: .array(error.diagnostics.map(\.json)))
            }
        }
        let file = job.templateFile.map { URL(fileURLWithPath: $0) }
            ?? paths.models.appendingPathComponent("inline-workflow.yaml")
        var parameters: [String: ParameterValue] = [:]
        for (name, value) in job.parameters.objectValue ?? [:] {
            parameters[name] = Self.parameter(value)
        }
        var inputs: [String: String] = [:]
        let folder = paths.inputs(job.id)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, reference) in job.inputs.objectValue ?? [:] {
            guard let sha = reference["sha256"]?.stringValue, let fileName = reference["file"]?.stringValue else {
                throw DaemonError(.internal, "job \(job.id): input '\(name)' has no stored blob")
            }
            let target = folder.appendingPathComponent(fileName)
            if !FileManager.default.fileExists(atPath: target.path) {
                if !blobs.contains(sha) {
                    // Cached here by hash (checked) for the next job that names it.
                    guard let data = try fetch(sha), Digest.sha256Hex(data) == sha, (try? blobs.put(data)) == sha else {
                        throw DaemonError(.notFound, "job \(job.id): input '\(name)' blob \(sha) is missing from the store")
                    }
                }
                try FileManager.default.copyItem(at: blobs.url(for: sha), to: target)
            }
            inputs[name] = target.path
        }
        return JobPreparation(workflow: workflow, file: file, parameters: parameters, inputs: inputs)
    }

    /// A JSON parameter as the binder takes it: a number or a boolean as
    /// itself (an Int input takes an integer, a Float input any number, a
    /// Bool input a boolean), a string as text read as the input's type (as
    /// `pilot run --set` reads it).
    static func parameter(_ value: JSONValue) -> ParameterValue {
        switch value {
        case let .string(text): .text(text)
        case let .int(number): .value(.int(number))
        case let .float(number): .value(.float(number))
        case let .bool(flag): .value(.bool(flag))
        case .null: .text("")
        default: .text(value.compact)
        }
    }
}

/// While a job runs: looks for a cancel request every second (or every
/// quarter lease, if shorter) and renews the lease every quarter lease. A
/// renewal the queue refuses means this attempt no longer holds the job
/// (its lease ran out and it was requeued): the run is cancelled and
/// `lost` set, so the worker records nothing.
final class LeaseHeartbeat: @unchecked Sendable {
    private let timer: DispatchSourceTimer
    private let queue: any JobQueue
    private let job: JobRecord
    private let lease: TimeInterval
    private let token: CancellationToken
    private let lost: LockedFlag
    private let logger: Logger
    /// Held for a whole beat, so `stop()` returns only once none is running.
    private let lock = NSLock()
    private var renewed = Date()
    private var stopped = false

    init(queue: any JobQueue, job: JobRecord, lease: TimeInterval, token: CancellationToken, lost: LockedFlag, logger: Logger) {
        self.queue = queue
        self.job = job
        self.lease = lease
        self.token = token
        self.lost = lost
        self.logger = logger
        let period = min(1, lease / 4)
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
        timer.schedule(deadline: .now() + period, repeating: period)
        // Weak: the timer must not own this object, or its last release would
        // happen inside libdispatch's teardown of the timer itself.
        timer.setEventHandler { [weak self] in self?.beat() }
        timer.resume()
    }

    private func beat() {
        lock.withLock {
            guard !stopped else { return }
            if (try? queue.isCancelRequested(job.id)) == true { token.cancel() }
            guard Date().timeIntervalSince(renewed) >= lease / 4 else { return }
            do {
                if try queue.renewLease(job.id, attempt: job.attempts, until: Date().addingTimeInterval(lease)) {
                    renewed = Date()
                } else if !lost.isSet {
                    lost.set()
                    token.cancel()
                }
            } catch {
                // Unreachable queue: try again next tick; the lease may run out meanwhile.
                logger.warning("cannot renew the lease of attempt \(job.attempts): \(error)")
            }
        }
    }

    /// Stops the beats; returns once a beat in progress has ended, so
    /// nothing touches the queue after the job's end is recorded.
    func stop() {
        lock.withLock { stopped = true }
        timer.cancel()
    }
}

/// A flag one thread sets and another reads.
final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

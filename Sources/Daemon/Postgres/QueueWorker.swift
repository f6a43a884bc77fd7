import Foundation
import Logging
import Workflow

/// `pilot worker --queue postgresql://…`: a process, on any machine, that
/// claims jobs from a shared queue and runs them. It keeps a cache folder
/// of its own (input blobs by hash, a job's folder while it runs), renews
/// its claim's lease while a job runs, sends events through the queue for
/// the fronts to publish, and stores outputs in the queue before recording
/// the finish. SIGINT/SIGTERM stop it cleanly (a running job is requeued);
/// `kill -9`, a crash or a frozen process (SIGSTOP) lose the lease, and a
/// front's sweep requeues the job for another worker.
public enum QueueWorker {
    public struct Options: Sendable {
        public var queue: String
        /// The claims' worker name (default `host/pid`).
        public var name: String
        /// The cache folder (blobs by hash, job folders while they run).
        public var cache: URL
        public var models: URL
        public var templates: [URL] = []
        public var readable: [URL] = []
        public var memoryBudget: Int = OutputCache.defaultBudget
        public var device = "cpu (fp32)"
        public var jobTimeLimit: TimeInterval = 6 * 3600
        public var maxOutputPixels: Int? = 64 << 20
        public var lease: TimeInterval = JobLease.seconds
        /// Model affinity: prefer jobs for the last job's models (within a priority).
        public var preferLoaded = true
        /// A job waiting longer than this is taken as if for the loaded model.
        public var ageLimit: TimeInterval = 300

        public init(queue: String, name: String, cache: URL, models: URL) {
            self.queue = queue
            self.name = name
            self.cache = cache
            self.models = models
        }
    }

    /// The default worker name: this host and process.
    public static var defaultName: String { "\(ProcessInfo.processInfo.hostName)/\(getpid())" }

    /// Runs jobs until SIGINT or SIGTERM (then a running job is requeued and this returns).
    public static func run(_ options: Options, nodes: NodeProvider, logger: Logger) throws {
        umask(0o077)
        try FileManager.default.createDirectory(at: options.cache, withIntermediateDirectories: true)
        let queue = try PostgresJobQueue(connection: options.queue, worker: options.name)
        // Only jobs whose models are in its folder; those of the loaded model first.
        let models = options.models
        queue.setAffinity(.init(available: { JobModels.available(in: models) }, preferLoaded: options.preferLoaded,
                                ageLimit: options.ageLimit))
        let paths = JobPaths(state: options.cache, models: options.models.standardizedFileURL,
                             templates: options.templates.map(\.standardizedFileURL),
                             extraReadable: options.readable.map(\.standardizedFileURL))
        let blobs = BlobStore(directory: options.cache.appendingPathComponent("blobs", isDirectory: true))
        let runner = WorkflowRunner(nodes: nodes, executor: Executor(cache: OutputCache(budgetBytes: options.memoryBudget)))
        let worker = JobWorker(queue: queue, blobs: blobs, publisher: PostgresEventSink(queue: queue, logger: logger), runner: runner,
                               paths: paths, logger: logger, device: "\(options.device) on \(options.name)",
                               timeLimit: options.jobTimeLimit, maxOutputPixels: options.maxOutputPixels, lease: options.lease,
                               removeJobFolders: true)
        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            sources.append(source)
        }
        logger.info("worker \(options.name): claiming jobs (lease \(Int(options.lease)) s)")
        // Woken when a front queues a job; otherwise it looks once a second.
        let wakeups = PostgresListener(conninfo: options.queue, channel: PostgresEvents.jobsChannel, logger: logger) { _ in
            worker.notify()
        }
        wakeups.start()
        worker.start()
        stop.wait()
        logger.info("stopping: a running job is requeued")
        wakeups.stop()
        worker.shutdown()
        withExtendedLifetime(sources) {}
    }
}

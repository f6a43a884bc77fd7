import ArgumentParser
import Daemon
import Foundation
import Logging
import Nodes
import Workflow

/// `pilot worker`: runs jobs, either for the `pilot serve` that started it
/// (`--supervised`) or from a queue many machines share (`--queue`).
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run jobs from a shared PostgreSQL queue (--queue), on this or any machine; or, started by pilot serve, for it (--supervised).",
        discussion: """
            With --queue: claims jobs the fronts (pilot serve --queue) accepted, renews each claim's lease while \
            the job runs, sends events through the queue and stores outputs there. SIGINT/SIGTERM stop it cleanly \
            (a running job is requeued); if it dies or freezes, its lease runs out and a front requeues the job. \
            See docs/queue.md.
            With --supervised: pilot serve starts one and restarts it when it dies, so a crash inside a model costs one job, \
            not the daemon. The daemon sends its configuration and requests on standard input; events come back on standard output.
            """)

    @Flag(help: "Talk to the pilot serve that started this process over standard input and output.")
    var supervised = false

    @Option(help: "The shared queue: a PostgreSQL connection string (postgresql://user@host/db?sslmode=verify-full).")
    var queue: String?

    @Option(help: "This worker's name in the queue (default HOST/PID).")
    var name: String?

    @Option(help: "Cache folder: input blobs by hash, a job's folder while it runs (default ~/.local/state/pilot/worker-NAME).")
    var cache: String?

    @Option(help: "Models directory (default: $PILOT_MODELS, else the checkout's models/, else ~/.local/share/pilot/models).")
    var models: String?

    @Option(name: .customLong("templates"), help: "A user templates folder jobs may read (repeatable; the built-in Workflows/ always).")
    var templateDirectories: [String] = []

    @Option(name: .customLong("allow-read"), help: "Another folder jobs may read (repeatable; the checkout's Examples/ by default).")
    var allowRead: [String] = []

    @Option(help: "Memory budget of the model/output cache, e.g. 8G.")
    var memoryBudget = "8G"

    @Option(help: "Seconds a claim holds a job; renewed every quarter of it while the job runs (the fronts' sweep requeues a job whose lease ran out).")
    var lease: Double = 60

    @Option(help: "Seconds a job may wait before it is taken like one for the loaded model (model affinity never starves a job).")
    var ageLimit: Double = 300

    @Flag(inversion: .prefixedNo, help: "Prefer, within a priority, jobs for the model of the last job (fewer checkpoint loads).")
    var preferLoaded = true

    @Option(help: "Longest a job may run, in seconds, before it is stopped and failed with 'timeout'.")
    var jobTimeLimit: Double = 6 * 3600

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "info"

    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        guard supervised != (queue != nil) else {
            throw ValidationError("give --queue postgresql://… (a worker of a shared queue) or --supervised (started by pilot serve), not both or neither")
        }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        if supervised {
            _ = try deviceOptions.apply(command: "worker", quiet: true)
            do {
                try SupervisedWorker.run(nodes: .standard, logger: Logger(label: "pilot.worker"))
            } catch {
                printError("pilot worker: \(error)")
                throw ExitCode(1)
            }
            // Stopped cleanly: its job is requeued and committed. Leave without
            // running the libraries' exit-time destructors (libpq's TLS stack)
            // while dispatch threads may still allocate: CI logs showed worker
            // processes aborting at exit with a corrupted heap.
            fflush(nil)
            _exit(0)
        }
        guard lease >= 1 else { throw ValidationError("--lease must be at least 1 second, found \(lease)") }
        guard jobTimeLimit > 0 else { throw ValidationError("--job-time-limit must be positive, found \(jobTimeLimit)") }
        guard let budget = ByteCount.parse(memoryBudget) else {
            throw ValidationError("--memory-budget: bytes with an optional K, M or G suffix (e.g. 8G), found '\(memoryBudget)'")
        }
        let choice = try deviceOptions.apply(command: "worker")
        let workerName = name ?? QueueWorker.defaultName
        let safeName = workerName.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." ? $0 : "_" }
        let cacheFolder = cache.map { URL(fileURLWithPath: $0, isDirectory: true) }
            ?? DaemonConfiguration.defaultStateDirectory.appendingPathComponent("worker-" + String(safeName), isDirectory: true)
        var options = QueueWorker.Options(queue: queue!, name: workerName, cache: cacheFolder,
                                          models: models.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? Checkout.defaultModels)
        var templates = templateDirectories.map { URL(fileURLWithPath: $0, isDirectory: true) }
        if let builtIn = TemplateLibrary().directory { templates.append(builtIn) }
        options.templates = templates
        options.readable = allowRead.map { URL(fileURLWithPath: $0, isDirectory: true) }
        if let root = Checkout.root { options.readable.append(root.appendingPathComponent("Examples", isDirectory: true)) }
        options.memoryBudget = budget
        options.device = choice.description
        options.lease = lease
        options.jobTimeLimit = jobTimeLimit
        options.preferLoaded = preferLoaded
        options.ageLimit = ageLimit
        do {
            try QueueWorker.run(options, nodes: .standard, logger: Logger(label: "pilot.worker"))
        } catch {
            printError("pilot worker: \(error)")
            throw ExitCode(1)
        }
    }
}

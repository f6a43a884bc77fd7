import ArgumentParser
import Daemon
import Dispatch
import Foundation
import Logging
import Nodes
import Workflow

/// Where a checkout keeps things, found from the templates folder.
enum Checkout {
    /// The checkout's root (the folder holding Workflows/ and Package.swift), if running from one.
    static var root: URL? { TemplateLibrary().directory?.deletingLastPathComponent() }

    static var defaultModels: URL {
        if let variable = ProcessInfo.processInfo.environment["PILOT_MODELS"], !variable.isEmpty {
            return URL(fileURLWithPath: variable, isDirectory: true)
        }
        if let root { return root.appendingPathComponent("models", isDirectory: true) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".local/share/pilot/models", isDirectory: true)
    }
}

/// `pilot serve`: the daemon.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon: accept workflows over ZeroMQ, run them one at a time, keep every job safe across crashes.",
        discussion: """
            Clients find the daemon through STATE/connection.json (mode 0600): its endpoints and HMAC key. \
            The protocol is in docs/protocol.md. SIGINT/SIGTERM stop it cleanly (a running job is requeued); \
            a second signal exits at once.
            """)

    @Option(help: "State directory: job store, inputs, outputs, connection file (default ~/.local/state/pilot).")
    var state: String?

    @Option(help: "Request (ROUTER) endpoint (default ipc://STATE/requests.sock: only this user can connect; tcp://127.0.0.1:5555 lets any local user try, tcp://0.0.0.0:5555 needs CURVE).")
    var requests: String?

    @Option(help: "Event (XPUB) endpoint (default ipc://STATE/events.sock).")
    var events: String?

    @Option(help: "Models directory (default: $PILOT_MODELS, else the checkout's models/, else ~/.local/share/pilot/models).")
    var models: String?

    @Option(name: .customLong("templates"), help: "A user templates folder, searched before the built-in Workflows/ (repeatable).")
    var templateDirectories: [String] = []

    @Option(name: .customLong("allow-read"), help: "Another folder workflows may read (repeatable; the checkout's Examples/ is allowed by default).")
    var allowRead: [String] = []

    @Option(help: "Memory budget of the model/output cache, e.g. 8G, 512M (default 8G).")
    var memoryBudget = "8G"

    @Option(help: "Largest request in bytes (e.g. 64M); larger ones are refused.")
    var maxMessageSize = "64M"

    @Flag(inversion: .prefixedNo, help: "CURVE encryption (default: only, and then required, for non-loopback endpoints).")
    var curve: Bool?

    @Flag(help: "Start with a new owner key, event key and CURVE key pairs (clients issued by `pilot keys add` keep their keys but need a new file under CURVE).")
    var newKey = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "info"

    @Option(help: "Longest a job may run, in seconds, before it is stopped and failed with 'timeout' (default 6 h).")
    var jobTimeLimit: Double = 6 * 3600

    @Option(help: ArgumentHelp("Prune jobs that ended longer ago than this (7d, 12h, …), at start and hourly (default: keep until `pilot prune`).",
                               valueName: "age"))
    var retain: String?

    @Option(help: "Most pixels one job may write in all (its Save* nodes), e.g. 64M; past it the job fails with too_large.")
    var maxOutputPixels = "64M"

    @Option(help: "Most pixels the input images of one submit may declare in all (read from their headers before decoding), e.g. 64M.")
    var maxSubmitPixels = "64M"

    @Option(help: "Largest the state folder may grow, e.g. 32G, or 'none'; past it submits are refused with quota_exceeded.")
    var diskQuota = "32G"

    @Option(help: ArgumentHelp("Where jobs run: process (a supervised pilot worker, restarted if it crashes; the daemon stays up) or thread (inside the daemon: a crash in a model stops it).",
                               valueName: "process|thread"))
    var worker = "process"

    @Option(help: ArgumentHelp("Be a front of a queue many machines share: a PostgreSQL connection string (postgresql://user@host/db?sslmode=verify-full). Jobs, templates, clients and blobs live there; pilot worker --queue processes run the jobs (docs/queue.md).",
                               valueName: "postgresql://…"))
    var queue: String?

    @Option(help: "With --queue: how many jobs run at once on threads of this front (default 0: only pilot worker processes run them).")
    var workers = 0

    @Option(help: "With --queue: seconds a claim holds a job before its worker must renew it.")
    var lease: Double = 60

    @Option(help: "With --queue: attempts a job gets (its worker's lease ran out) before it fails as worker_lost.")
    var maxAttempts = 3

    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        guard worker == "process" || worker == "thread" else {
            throw ValidationError("--worker: expected process or thread, found '\(worker)'")
        }
        guard queue != nil || workers == 0 else { throw ValidationError("--workers needs --queue (without it, one worker runs jobs)") }
        guard (0...64).contains(workers) else { throw ValidationError("--workers must be in 0...64, found \(workers)") }
        guard lease >= 1, maxAttempts >= 1 else {
            throw ValidationError("--lease must be at least 1 second and --max-attempts at least 1, found \(lease) and \(maxAttempts)")
        }
        let retention = try retain.map { text in
            guard let seconds = AgeText.seconds(parsing: text) else {
                throw ValidationError("--retain: expected a duration such as 30d, 12h or seconds, found '\(text)'")
            }
            return seconds
        }
        let choice = try deviceOptions.apply(command: "serve", place: queue == nil ? worker == "thread" : workers > 0)
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let stateDirectory = state.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? DaemonConfiguration.defaultStateDirectory
        let modelsDirectory = models.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? Checkout.defaultModels
        var configuration = DaemonConfiguration(stateDirectory: stateDirectory, modelsDirectory: modelsDirectory)
        // By default ipc:// sockets inside the 0700 state folder: no other
        // local user can connect, so none can send the daemon anything.
        configuration.requestEndpoint = requests ?? "ipc://" + stateDirectory.appendingPathComponent("requests.sock").path
        configuration.eventEndpoint = events ?? "ipc://" + stateDirectory.appendingPathComponent("events.sock").path
        configuration.keepKey = !newKey
        var templates = templateDirectories.map { URL(fileURLWithPath: $0, isDirectory: true) }
        templates.append(stateDirectory.appendingPathComponent("templates", isDirectory: true))
        if let builtIn = TemplateLibrary().directory { templates.append(builtIn) }
        configuration.templateDirectories = templates
        configuration.extraReadDirectories = allowRead.map { URL(fileURLWithPath: $0, isDirectory: true) }
        if let root = Checkout.root { configuration.extraReadDirectories.append(root.appendingPathComponent("Examples", isDirectory: true)) }
        guard let budget = ByteCount.parse(memoryBudget), let maxMessage = ByteCount.parse(maxMessageSize) else {
            throw ValidationError("sizes are bytes with an optional K, M or G suffix (e.g. 8G), found '\(memoryBudget)' / '\(maxMessageSize)'")
        }
        guard let outputPixels = ByteCount.parse(maxOutputPixels), let submitPixels = ByteCount.parse(maxSubmitPixels),
              outputPixels > 0, submitPixels > 0 else {
            throw ValidationError("--max-output-pixels / --max-submit-pixels: a positive count with an optional K, M or G suffix, found '\(maxOutputPixels)' / '\(maxSubmitPixels)'")
        }
        configuration.maxOutputPixels = outputPixels
        configuration.maxSubmitPixels = submitPixels
        if diskQuota.lowercased() == "none" {
            configuration.diskQuota = nil
        } else {
            guard let quota = ByteCount.parse(diskQuota), quota > 0 else {
                throw ValidationError("--disk-quota: bytes with an optional K, M or G suffix (e.g. 32G) or 'none', found '\(diskQuota)'")
            }
            configuration.diskQuota = quota
        }
        configuration.memoryBudget = budget
        configuration.maxMessageBytes = maxMessage
        configuration.curve = curve
        configuration.device = choice.description
        guard jobTimeLimit > 0 else { throw ValidationError("--job-time-limit must be positive, found \(jobTimeLimit)") }
        configuration.jobTimeLimit = jobTimeLimit
        configuration.retention = retention
        if let queue {
            configuration.queue = queue
            configuration.localWorkers = workers
            configuration.lease = lease
            configuration.maxAttempts = maxAttempts
        } else if worker == "process" {
            guard let executable = Self.executablePath else {
                throw ValidationError("cannot find this program's own file (/proc/self/exe) to start its worker: use --worker thread")
            }
            configuration.workerCommand = [executable, "worker", "--supervised", "--log-level", logLevel]
                + deviceOptions.arguments(for: choice)
        }
        try? FileManager.default.createDirectory(at: modelsDirectory, withIntermediateDirectories: true)

        let daemon: Daemon
        do {
            daemon = try Daemon(configuration: configuration, nodes: .standard)
        } catch {
            printError("pilot serve: \(error)")
            throw ExitCode(1)
        }
        printBanner(daemon)
        let signals = SignalHandling(daemon: daemon)
        daemon.run()
        withExtendedLifetime(signals) {}
    }

    /// This program's own file, for starting `pilot worker`.
    static var executablePath: String? {
        guard let resolved = realpath("/proc/self/exe", nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private func printBanner(_ daemon: Daemon) {
        let connection = daemon.connection, configuration = daemon.configuration
        let models = daemon.catalog.entries()
        var lines = [
            "pilot daemon \(daemon.version): requests \(connection.requests), events \(connection.events)"
                + (connection.curveServerKey != nil ? " (CURVE encrypted)" : ""),
            "connection file (mode 0600; clients read it): \(configuration.stateDirectory.appendingPathComponent(ConnectionInfo.fileName).path)",
            "models: \(configuration.modelsDirectory.path): "
                + (models.isEmpty ? "none yet" : models.map { "\($0.name) (\($0.kind))" }.joined(separator: ", ")),
        ]
        if !models.contains(where: { $0.kind == "diffusers" || $0.kind == "safetensors" }) || models.allSatisfy({ $0.name == "tiny" }) {
            lines.append("  put real weights there: a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/) "
                         + "or a single-file SD 1.x/2.x .safetensors checkpoint")
            lines.append("  or try every template at once on a tiny random-weight model (noise images): "
                         + "pilot models create-tiny \(configuration.modelsDirectory.appendingPathComponent("tiny").path)")
        }
        lines.append("templates: " + configuration.templateDirectories.map(\.path).joined(separator: ", "))
        lines.append("try: pilot submit text-inpaint --set steps=10 --wait --output out   (Ctrl-C stops the daemon; a running job is requeued)")
        print(lines.joined(separator: "\n"))
        fflush(nil)
    }
}

/// SIGINT/SIGTERM: the first stops the daemon cleanly, a second exits at once.
final class SignalHandling: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var count = 0

    init(daemon: Daemon) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                let seen = lock.withLock { count += 1; return count }
                if seen == 1 {
                    FileHandle.standardError.write(Data("pilot serve: stopping (signal again to exit at once)\n".utf8))
                    daemon.stop()
                } else {
                    _exit(130)
                }
            }
            source.resume()
            sources.append(source)
        }
    }
}

/// `8G`, `512M`, `64K`, `1000` → bytes.
enum ByteCount {
    static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = trimmed, scale = 1
        if trimmed.hasSuffix("B") { digits.removeLast() }
        if let last = digits.last, let unit = units[last] {
            scale = unit
            digits.removeLast()
        }
        guard let value = Double(digits), value >= 0 else { return nil }
        return Int(value * Double(scale))
    }
}

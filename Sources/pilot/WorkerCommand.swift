import ArgumentParser
import Daemon
import Foundation
import Logging
import Nodes
import Workflow

/// `pilot worker --supervised`: the process `pilot serve` runs jobs in.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run jobs for the pilot serve that started this process (not run by hand).",
        discussion: """
            pilot serve starts one and restarts it when it dies, so a crash inside a model costs one job, \
            not the daemon: the job is requeued, or failed as 'crashed' after two deaths. The daemon sends its \
            configuration and requests on standard input; events come back on standard output.
            """,
        shouldDisplay: false)

    @Flag(help: "Talk to the daemon over standard input and output (required: the worker has no other mode yet).")
    var supervised = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel = "info"

    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        guard supervised else {
            throw ValidationError("pilot worker runs under pilot serve (--supervised), which starts it; start pilot serve instead")
        }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        _ = try deviceOptions.apply(command: "worker", quiet: true)
        do {
            try SupervisedWorker.run(nodes: .standard, logger: Logger(label: "pilot.worker"))
        } catch {
            printError("pilot worker: \(error)")
            throw ExitCode(1)
        }
    }
}

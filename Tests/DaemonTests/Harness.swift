import Daemon
import Diffusion
import Foundation
import Logging
import Nodes
import Workflow
import XCTest

/// Paths shared by the daemon tests.
enum DaemonFixture {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let templates = repository.appendingPathComponent("Workflows", isDirectory: true)
    static let examples = repository.appendingPathComponent("Examples", isDirectory: true)

    static func temporaryFolder(_ label: String) -> URL {
        // Short paths: ipc:// endpoints must fit in a Unix socket path (108 bytes).
        let url = URL(fileURLWithPath: "/tmp/pd-\(label)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A models folder holding a tiny random-weight model, made once per test process.
    static let models: URL = {
        let folder = temporaryFolder("models")
        _ = try! TinyModel.create(at: folder.appendingPathComponent("tiny").path)
        return folder
    }()

    static var tinyModel: String { models.appendingPathComponent("tiny").path }

    /// The `pilot` executable built beside the test bundle.
    static var pilotExecutable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("pilot")
    }

    /// An inline workflow that loads an input image and saves it: a job that needs no model.
    static let copyWorkflow = """
        version: 1
        name: copy
        inputs:
          image: {type: Path}
          name:  {type: String, default: copy}
        nodes:
          load: {type: LoadImage, params: {path: $image}}
          save: {type: SaveImage, inputs: {image: load.image}, params: {name: $name}}
        outputs:
          image: load.image
        """

    /// A submit of `copyWorkflow` with the example image as its input frame.
    static var copySubmit: (content: [String: JSONValue], frames: [Data]) {
        (["workflow": .string(copyWorkflow), "inputs": .object(["image": .int(0)])], [examplePNG])
    }

    static var examplePNG: Data { try! Data(contentsOf: examples.appendingPathComponent("source.png")) }
    static var exampleMask: Data { try! Data(contentsOf: examples.appendingPathComponent("mask.png")) }
}

/// A daemon served on a background thread, on ipc endpoints in a temporary folder.
final class TestDaemon: @unchecked Sendable {
    let daemon: Daemon
    let folder: URL
    private let done = DispatchSemaphore(value: 0)
    private var stopped = false

    init(label: String = "d", configure: (inout DaemonConfiguration) -> Void = { _ in }) throws {
        folder = DaemonFixture.temporaryFolder(label)
        var configuration = DaemonConfiguration(stateDirectory: folder.appendingPathComponent("state"),
                                                modelsDirectory: DaemonFixture.models)
        configuration.requestEndpoint = "ipc://\(folder.path)/r"
        configuration.eventEndpoint = "ipc://\(folder.path)/e"
        configuration.templateDirectories = [DaemonFixture.templates]
        configuration.extraReadDirectories = [DaemonFixture.examples]
        configure(&configuration)
        if SharedTestQueue.isEnabled, configuration.workerCommand == nil, configuration.queue == nil {
            configuration.queue = try SharedTestQueue.connection(for: configuration.stateDirectory)
            configuration.localWorkers = 1
        }
        var logger = Logger(label: "test.daemon")
        logger.logLevel = .error
        daemon = try Daemon(configuration: configuration, nodes: .standard, logger: logger)
        let thread = Thread { [daemon, done] in
            daemon.run()
            done.signal()
        }
        thread.stackSize = 16 << 20
        thread.start()
    }

    var connection: ConnectionInfo { daemon.connection }

    func client(timeout: TimeInterval = 60) throws -> DaemonClient {
        try DaemonClient(connection: connection, timeout: timeout)
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        daemon.stop()
        done.wait()
        try? FileManager.default.removeItem(at: folder)
    }

    deinit { stop() }
}

/// Starts `pilot serve` as its own process (ipc:// endpoints in `folder`)
/// and returns once it answers a ping. `environment` is added to the
/// test's (`PILOT_FAULT` arms a crash point).
func startServe(state: URL, folder: URL, environment: [String: String] = [:], stderr: FileHandle? = nil,
                arguments extra: [String] = []) throws -> Process {
    let process = Process()
    process.executableURL = DaemonFixture.pilotExecutable
    // The PostgreSQL pass: a front of the shared test queue with one worker thread.
    let shared = SharedTestQueue.isEnabled && !extra.contains("--queue")
        ? ["--queue", try SharedTestQueue.connection(for: state), "--workers", "1"] : []
    process.arguments = ["serve", "--state", state.path, "--models", DaemonFixture.models.path,
                         "--requests", "ipc://\(folder.path)/r", "--events", "ipc://\(folder.path)/e",
                         "--templates", DaemonFixture.templates.path, "--allow-read", DaemonFixture.examples.path,
                         "--log-level", "warning"] + extra + shared
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardOutput = FileHandle.nullDevice
    if let stderr { process.standardError = stderr }
    try process.run()
    // Ready once it answers a ping.
    let deadline = Date().addingTimeInterval(60)
    while Date() < deadline, process.isRunning {
        if let info = try? ConnectionInfo.read(from: state.appendingPathComponent(ConnectionInfo.fileName)),
           info.pid == process.processIdentifier,
           (try? DaemonClient(connection: info, timeout: 1).request("ping")) != nil {
            return process
        }
        Thread.sleep(forTimeInterval: 0.1)
    }
    if process.isRunning { process.terminate() }
    throw DaemonError(.internal, "pilot serve did not answer within 60 s (\(DaemonFixture.pilotExecutable.path))")
}

/// Starts `pilot worker --queue QUEUE` named `name`, its cache in
/// `folder/NAME`, reading the test models, templates and examples;
/// `environment` is added to the test's (`PILOT_FAULT` arms a fault).
func startQueueWorker(queue: String, name: String, folder: URL, lease: Double, logLevel: String = "error",
                      environment: [String: String] = [:]) throws -> Process {
    let process = Process()
    process.executableURL = DaemonFixture.pilotExecutable
    process.arguments = ["worker", "--queue", queue, "--name", name, "--cache", folder.appendingPathComponent(name).path,
                         "--models", DaemonFixture.models.path, "--templates", DaemonFixture.templates.path,
                         "--allow-read", DaemonFixture.examples.path, "--lease", "\(lease)", "--log-level", logLevel]
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    return process
}

/// Runs `pilot ARGS` to its end; its exit status and output (standard output and error together).
func runPilot(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stderr: String) {
    let process = Process()
    process.executableURL = DaemonFixture.pilotExecutable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Waits for `job` to reach a final state by polling status.
func waitForFinalState(_ client: DaemonClient, job: String, timeout: TimeInterval = 120) throws -> JSONValue {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let status = try client.request("status", ["job": .string(job)]).content["job"]!
        if let state = status["state"]?.stringValue.flatMap(JobState.init(rawValue:)), state.isFinal { return status }
        Thread.sleep(forTimeInterval: 0.02)
    }
    throw DaemonError(.notFinished, "job \(job) did not end within \(timeout) s")
}

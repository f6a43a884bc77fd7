import ArgumentParser
import Daemon
import Foundation
import Workflow

/// How client commands find the daemon.
struct ClientOptions: ParsableArguments {
    @Option(help: "The daemon's state directory (its connection.json is used).")
    var state: String?

    @Option(help: "A connection file (overrides --state).")
    var connection: String?

    @Option(help: "Seconds to wait for a reply.")
    var timeout: Double = 30

    func client() throws -> DaemonClient {
        let file = connection.map { URL(fileURLWithPath: $0) }
            ?? (state.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? DaemonConfiguration.defaultStateDirectory)
                .appendingPathComponent(ConnectionInfo.fileName)
        do {
            return try DaemonClient(connectionFile: file, timeout: timeout)
        } catch {
            printError("pilot: \(error)")
            throw ExitCode(3)
        }
    }
}

/// Runs a client call; daemon errors print as `pilot: code: message` (exit 1; 3 when unreachable).
func clientCall<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as DaemonError {
        printError("pilot: \(error.code.rawValue): \(error.message)")
        if let details = error.details?.arrayValue {
            for detail in details { printError("  " + (detail["text"]?.stringValue ?? detail.compact)) }
        }
        throw ExitCode(error.code == .internal ? 3 : 1)
    }
}

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a workflow file or a template (by name) to the daemon.",
        discussion: """
            Prints the job id. --input files travel as binary frames; --set values as text the daemon \
            converts to each template input's type. With --wait, follows the job's progress and, with \
            --output, writes its results.
            """)

    @Argument(help: "A workflow file (sent inline) or the name of a template the daemon knows.")
    var workflow: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Set a template input.", valueName: "name=value"))
    var settings: [String] = []

    @Option(name: .customLong("input"), help: ArgumentHelp("Send a file for a template input.", valueName: "name=path"))
    var inputs: [String] = []

    @Option(help: "Higher runs first (default 0).")
    var priority = 0

    @Option(help: "Idempotency key: a retried submit with the same key returns the first job.")
    var key: String?

    @Flag(help: "Wait for the job to end, showing progress.")
    var wait = false

    @Option(help: "With --wait: write the job's output files here.")
    var output: String?

    @Option(help: "Ask for a preview image every N sampler steps (and the last, and every PILOT optimisation step).")
    var previewEvery: Int?

    @Option(help: "Preview method: latent2rgb (default) or taesd (the daemon's models folder holds taesd/ and taesdxl/).")
    var previewMethod: String?

    @Option(help: "A preview's longer side, at most (default 256).")
    var previewMaxSide: Int?

    @Option(help: ArgumentHelp("With --wait: write the job's previews into this folder.", valueName: "dir"))
    var previews: String?

    @OptionGroup var options: ClientOptions

    /// The submit's `preview` field, nil when no preview option is given.
    var previewField: JSONValue? {
        guard previewEvery != nil || previewMethod != nil || previewMaxSide != nil || previews != nil else { return nil }
        var field: [String: JSONValue] = [:]
        if let previewEvery { field["every"] = .int(previewEvery) }
        if let previewMethod { field["method"] = .string(previewMethod) }
        if let previewMaxSide { field["max_side"] = .int(previewMaxSide) }
        return .object(field)
    }

    func run() throws {
        let client = try options.client()
        var content: [String: JSONValue] = ["priority": .int(priority)]
        if FileManager.default.fileExists(atPath: workflow) {
            content["workflow"] = .string(try String(contentsOfFile: workflow, encoding: .utf8))
        } else {
            content["template"] = .string(workflow)
        }
        content["parameters"] = .object(try pairs(settings, option: "--set").mapValues(JSONValue.string))
        var frames: [Data] = [], references: [String: JSONValue] = [:]
        for (name, path) in try pairs(inputs, option: "--input").sorted(by: { $0.key < $1.key }) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("--input \(name): cannot read \(path)")
            }
            references[name] = .object(["frame": .int(frames.count), "filename": .string((path as NSString).lastPathComponent)])
            frames.append(data)
        }
        content["inputs"] = .object(references)
        if let key { content["idempotency_key"] = .string(key) }
        if let previewField { content["preview"] = previewField }
        content["client"] = .string("pilot-cli/\(PilotVersion.string)")
        let reply = try clientCall { try client.request("submit", content, frames: frames) }
        guard let job = reply.content["job"]?.stringValue else { throw ExitCode(3) }
        print(job)
        if reply.content["duplicate"]?.boolValue == true { printError("pilot: (an earlier submit with this key made this job)") }
        guard wait else { return }
        let final = try Watch.follow(client: client, job: job, previews: previews)
        if let output, final["state"]?.stringValue == "finished" {
            try ResultCommand.write(client: client, job: job, to: output)
        }
        if final["state"]?.stringValue != "finished" { throw ExitCode(2) }
    }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Follow a job's progress until it ends (exit 0 finished, 2 failed or cancelled).")

    @Argument(help: "A job id.")
    var job: String

    @Option(help: ArgumentHelp("Write the job's previews (if it asked for them) into this folder: SEQ-NODE-stepNNNN.png.",
                               valueName: "dir"))
    var previews: String?

    @OptionGroup var options: ClientOptions

    func run() throws {
        let final = try Watch.follow(client: try options.client(), job: job, previews: previews)
        if final["state"]?.stringValue != "finished" { throw ExitCode(2) }
    }

    static func follow(client: DaemonClient, job: String, previews: String? = nil) throws -> JSONValue {
        let bar = ProgressBar()
        let folder = try previews.map(PreviewFolder.init(path:))
        let final = try clientCall {
            try client.follow(job: job, onSubscribed: { status in
                printError("pilot: following job \(job) (\(status["state"]?.stringValue ?? "unknown"))")
            }) { event in
                bar.show(event)
                if let folder, event.type == "preview" { save(preview: event, in: folder) }
            }
        }
        bar.finish()
        let state = final["state"]?.stringValue ?? "unknown"
        if let error = final["error"], let message = error["message"]?.stringValue {
            printError("pilot: job \(job) \(state): \(message)")
        } else {
            printError("pilot: job \(job) \(state)")
        }
        return final
    }

    /// Writes a preview event's PNG frame as `SEQ-NODE-stepNNNN.png`.
    static func save(preview event: EventSubscriber.Event, in folder: PreviewFolder) {
        let content = event.content
        guard let png = event.message.frames.first, png.starts(with: [0x89, 0x50, 0x4E, 0x47]),
              let node = content["node"]?.stringValue, let step = content["step"]?.intValue else {
            printError("pilot: a preview event without a PNG frame, node or step")
            return
        }
        folder.write(png, node: node, step: step, sequence: content["seq"]?.intValue)
    }
}

/// The folder `--previews` names, created on first use: previews are
/// written as `[SEQ-]NODE-stepNNNN.png` (``NodePreview/fileName``); a file
/// that cannot be written is reported, never fatal to the run.
struct PreviewFolder: Sendable {
    let url: URL

    init(path: String) throws {
        url = URL(fileURLWithPath: path, isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func write(_ png: Data, node: String, step: Int, sequence: Int? = nil) {
        let file = url.appendingPathComponent(NodePreview.fileName(node: node, step: step, sequence: sequence))
        do { try png.write(to: file, options: .atomic) } catch { printError("pilot: cannot write \(file.path): \(error)") }
    }
}

/// One line per node, redrawn in place while steps advance: node, bar, step/total, ETA.
final class ProgressBar {
    private var node = ""
    private var nodeStart = Date()
    private var drawing = false
    private let terminal = isatty(STDERR_FILENO) == 1

    func show(_ event: EventSubscriber.Event) {
        let content = event.content
        switch event.type {
        case "started": line("started (attempt \(content["attempt"]?.intValue ?? 1))")
        case "node_started":
            node = content["node"]?.stringValue ?? ""
            nodeStart = Date()
            line("▶ \(node) (\(content["type"]?.stringValue ?? ""))")
        case "progress":
            guard content["values"]?["inner"] == nil, let step = content["step"]?.intValue,
                  let total = content["total"]?.intValue, total > 0 else { return }
            let width = 30, filled = width * step / total
            let elapsed = Date().timeIntervalSince(nodeStart)
            let eta = step > 0 ? elapsed / Double(step) * Double(total - step) : 0
            let text = "  \(content["node"]?.stringValue ?? node) [" + String(repeating: "#", count: filled)
                + String(repeating: ".", count: width - filled) + "] \(step)/\(total) ETA \(String(format: "%.1f", eta)) s"
            if terminal {
                FileHandle.standardError.write(Data(("\r" + text + "\u{1B}[K").utf8))
                drawing = true
            } else if step == total || step % max(1, total / 10) == 0 {
                line(text)
            }
        case "node_finished":
            let cached = content["cached"]?.boolValue ?? false
            line(cached ? "✓ \(content["node"]?.stringValue ?? "") (cached)"
                        : "✓ \(content["node"]?.stringValue ?? "") \(String(format: "%.1f", content["ms"]?.doubleValue ?? 0)) ms")
        case "requeued": line("requeued (the daemon is stopping; it will run again when the daemon restarts)")
        default: break
        }
    }

    func finish() {
        if drawing { FileHandle.standardError.write(Data("\n".utf8)); drawing = false }
    }

    private func line(_ text: String) {
        finish()
        printError(text)
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a job's status, or the daemon and its recent jobs.")

    @Argument(help: "A job id (omit for the daemon's summary).")
    var job: String?

    @Option(help: "Only the jobs this worker of a shared queue claimed last (its --name).")
    var worker: String?

    @Flag(help: "Print the reply as JSON.")
    var json = false

    @OptionGroup var options: ClientOptions

    func run() throws {
        let client = try options.client()
        if let job {
            let status = try clientCall { try client.request("status", ["job": .string(job)]) }.content["job"] ?? .null
            if json { return print(status.pretty, terminator: "") }
            let version = status["template_version"]?.intValue.map { " version \($0)" } ?? ""
            print("\(t(job)): \(t(status["state"]?.stringValue ?? "?"))" + (status["template"]?.stringValue.map { " (template \(t($0))\(version))" } ?? ""))
            for transition in status["transitions"]?.arrayValue ?? [] {
                print("  \(transition["time"]?.stringValue ?? "")  \(transition["state"]?.stringValue ?? "")"
                      + (transition["note"]?.stringValue.map { "  \(t($0))" } ?? ""))
            }
            if let progress = status["progress"] {
                print("  progress: \(t(progress["node"]?.stringValue ?? "")) \(progress["step"]?.intValue ?? 0)/\(progress["total"]?.intValue ?? 0)")
            }
            if let error = status["error"]?["message"]?.stringValue { print("  error: \(t(error))") }
            for output in status["outputs"]?.arrayValue ?? [] { print("  output: \(t(output["name"]?.stringValue ?? ""))") }
            return
        }
        let info = try clientCall { try client.request("info") }.content
        var list: [String: JSONValue] = ["limit": .int(20)]
        if let worker { list["worker"] = .string(worker) }
        let jobs = try clientCall { try client.request("list", list) }.content["jobs"]?.arrayValue ?? []
        if json { return print(JSONValue.object(["info": info, "jobs": .array(jobs)]).pretty, terminator: "") }
        print("pilot daemon \(info["version"]?.stringValue ?? "?") (pid \(info["pid"]?.intValue ?? 0)), \(info["device"]?.stringValue ?? "")")
        let queue = info["queue"]?.objectValue ?? [:]
        print("jobs: " + JobState.allCases.map { "\(queue[$0.rawValue]?.intValue ?? 0) \($0.rawValue)" }.joined(separator: ", "))
        if let worker = info["worker"], worker["mode"]?.stringValue == "process" {
            let pid = worker["pid"]?.intValue.map { "pid \($0)" } ?? "restarting"
            print("worker process: \(pid), \(worker["restarts"]?.intValue ?? 0) restart(s) after crashes")
        }
        for job in jobs {
            print("  \(job["id"]?.stringValue ?? "")  \(job["state"]?.stringValue ?? "")  \(job["created"]?.stringValue ?? "")"
                  + (job["template"]?.stringValue.map { "  \(t($0))" } ?? "") + (job["worker"]?.stringValue.map { "  on \(t($0))" } ?? ""))
        }
    }
}

struct Cancel: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a queued or running job (a running job stops at its next step).")

    @Argument(help: "A job id.")
    var job: String

    @OptionGroup var options: ClientOptions

    func run() throws {
        let reply = try clientCall { try options.client().request("cancel", ["job": .string(job)]) }
        print("\(job): \(reply.content["state"]?.stringValue ?? "?")")
    }
}

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove finished, failed and cancelled jobs that ended long ago, with their files and unshared input blobs.")

    @Option(help: ArgumentHelp("How long ago a job must have ended: 7d, 12h, 30m, 90s or seconds.", valueName: "age"))
    var olderThan: String

    @OptionGroup var options: ClientOptions

    func run() throws {
        guard let seconds = AgeText.seconds(parsing: olderThan) else {
            throw ValidationError("--older-than: expected a duration such as 7d, 12h, 30m, 90s or a number of seconds, found '\(olderThan)'")
        }
        let reply = try clientCall { try options.client().request("prune", ["older_than": .float(seconds)]) }
        let jobs = reply.content["jobs"]?.intValue ?? 0, blobs = reply.content["blobs"]?.intValue ?? 0
        let bytes = reply.content["bytes"]?.intValue ?? 0
        print("pruned \(jobs) job(s) and \(blobs) input blob(s), \(bytes) bytes")
    }
}

struct ResultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "result", abstract: "Fetch a finished job's output files.")

    @Argument(help: "A job id.")
    var job: String

    @Option(help: "Folder to write the files to.")
    var output = "output"

    @OptionGroup var options: ClientOptions

    func run() throws {
        try ResultCommand.write(client: try options.client(), job: job, to: output)
    }

    static func write(client: DaemonClient, job: String, to folder: String) throws {
        let reply = try clientCall { try client.request("result", ["job": .string(job)]) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for output in reply.content["outputs"]?.arrayValue ?? [] {
            guard let name = output["name"]?.stringValue, let frame = output["frame"]?.intValue,
                  reply.frames.indices.contains(frame), !name.contains("/"), name != "..", name != "." else { continue }
            let path = (folder as NSString).appendingPathComponent(name)
            try reply.frames[frame].write(to: URL(fileURLWithPath: path))
            print(path)
        }
    }
}

/// Text that came from the daemon (and so from any client of it), printed
/// without control characters: a template name or error cannot drive the terminal.
private func t(_ text: String) -> String { LogText.escaped(text, limit: 2000) }

import ArgumentParser
import Foundation
import Imaging
import Nodes
import Workflow

/// Options shared by the commands that find workflow templates.
struct TemplateOptions: ParsableArguments {
    @Option(help: "Folder of workflow templates (default: $PILOT_TEMPLATES, else the checkout's Workflows/).")
    var templates: String?

    var library: TemplateLibrary { TemplateLibrary(explicit: templates) }

    func resolve(_ nameOrPath: String) throws -> URL {
        guard let url = library.resolve(nameOrPath) else {
            let known = library.templates.map { $0.deletingPathExtension().lastPathComponent }
            printError("pilot: no workflow file or template '\(nameOrPath)'"
                       + (known.isEmpty ? "" : " (templates: \(known.joined(separator: ", ")))"))
            throw ExitCode(1)
        }
        return url
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// `NAME=VALUE` pairs.
func pairs(_ items: [String], option: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for item in items {
        guard let equals = item.firstIndex(of: "="), equals != item.startIndex else {
            throw ValidationError("\(option) expects NAME=VALUE, found '\(item)'")
        }
        result[String(item[..<equals])] = String(item[item.index(after: equals)...])
    }
    return result
}

/// Prints every diagnostic, one a line, on standard error.
func report(_ failure: ValidationFailure) {
    for diagnostic in failure.diagnostics { printError(diagnostic.description) }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a workflow file or a template by name.",
        discussion: """
            Exit status: 0 the workflow ran; 1 validation or parameter binding failed (every diagnostic is \
            printed as FILE:LINE:COL: error: …); 2 a node failed at run time (the node is named).
            """)

    @Argument(help: "A workflow file (YAML or JSON) or a template name (see `pilot templates`).")
    var workflow: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Set a template input from text.", valueName: "name=value"))
    var settings: [String] = []

    @Option(name: .customLong("input"), help: ArgumentHelp("Give a file input (path relative to the current folder).", valueName: "name=path"))
    var inputs: [String] = []

    @Option(help: "Folder Save* nodes write to.")
    var output: String = "output"

    @OptionGroup var templateOptions: TemplateOptions

    @Flag(name: [.short, .long], help: "No progress lines.")
    var quiet = false

    @Option(help: ArgumentHelp("Write step previews of the sampling nodes into this folder (NODE-stepNNNN.png).", valueName: "dir"))
    var previews: String?

    @Option(help: "Preview every N sampler steps (and the last, and every PILOT optimisation step).")
    var previewEvery: Int = PreviewRequest.defaultEvery

    @Option(help: "latent2rgb (no weights) or taesd (the tiny autoencoder: DIR/taesd or DIR/taesdxl of --preview-decoders).")
    var previewMethod: String = PreviewRequest.Method.latent2rgb.rawValue

    @Option(help: "The previews' longer side is at most this many pixels (16...1024).")
    var previewMaxSide: Int = PreviewRequest.defaultMaxSide

    @Option(help: ArgumentHelp("Folder holding the taesd/ and taesdxl/ diffusers folders.", valueName: "dir"))
    var previewDecoders: String?

    @OptionGroup var deviceOptions: DeviceOptions

    /// The previews asked for on the command line, nil for none.
    func previewRequest() throws -> PreviewRequest? {
        guard previews != nil else { return nil }
        guard PreviewRequest.everyRange.contains(previewEvery) else {
            throw ValidationError("--preview-every must be in \(PreviewRequest.everyRange), found \(previewEvery)")
        }
        guard PreviewRequest.maxSideRange.contains(previewMaxSide) else {
            throw ValidationError("--preview-max-side must be in \(PreviewRequest.maxSideRange), found \(previewMaxSide)")
        }
        guard let method = PreviewRequest.Method(rawValue: previewMethod) else {
            throw ValidationError("--preview-method must be latent2rgb or taesd, found '\(previewMethod)'")
        }
        return PreviewRequest(every: previewEvery, method: method, maxSide: previewMaxSide,
                              decoderDirectory: previewDecoders.map { URL(fileURLWithPath: $0, isDirectory: true) })
    }

    func run() throws {
        _ = try deviceOptions.apply(command: "run")
        let file = try templateOptions.resolve(workflow)
        let runner = WorkflowRunner(templates: templateOptions.library.source)
        let validated: ValidatedWorkflow
        do {
            validated = try runner.validate(file, displayName: workflow.contains("/") || FileManager.default.fileExists(atPath: workflow) ? workflow : file.path)
        } catch {
            report(error)
            throw ExitCode(1)
        }
        let set = try pairs(settings, option: "--set"), given = try pairs(inputs, option: "--input")
        let preview = try previewRequest()
        let progress = ProgressPrinter(enabled: !quiet, previews: try previews.map(PreviewFolder.init(path:)))
        let result: ExecutionResult
        do {
            result = try runner.run(validated, file: file, set: set, inputs: given,
                                    outputDirectory: URL(fileURLWithPath: output, isDirectory: true), preview: preview,
                                    onEvent: { progress.handle($0) })
        } catch let failure as BindingFailure {
            for problem in failure.problems { printError(problem.description) }
            throw ExitCode(1)
        } catch let failure as ExecutionError {
            printError(failure.description)
            throw ExitCode(2)
        } catch {
            printError("pilot: \(error)")
            throw ExitCode(2)
        }
        print(Self.timingTable(result))
    }

    static func timingTable(_ result: ExecutionResult) -> String {
        let idWidth = max(4, result.nodes.map(\.nodeID.count).max() ?? 0)
        let typeWidth = max(4, result.nodes.map(\.nodeType.count).max() ?? 0)
        func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
        var lines = [pad("node", idWidth) + "  " + pad("type", typeWidth) + "        ms  cached"]
        for node in result.nodes {
            let ms = String(format: "%10.1f", node.milliseconds)
            lines.append(pad(node.nodeID, idWidth) + "  " + pad(node.nodeType, typeWidth) + ms + "  " + (node.cacheHit ? "yes" : "no"))
        }
        lines.append(pad("total", idWidth) + "  " + pad("", typeWidth) + String(format: "%10.1f", result.milliseconds))
        return lines.joined(separator: "\n")
    }
}

/// Progress lines on standard error: node, step/total, ETA.
final class ProgressPrinter: @unchecked Sendable {
    private let enabled: Bool
    /// Where previews are written (nil: they are dropped).
    private let previews: PreviewFolder?
    private let lock = NSLock()
    private var started: [String: Date] = [:]

    init(enabled: Bool, previews: PreviewFolder? = nil) {
        self.enabled = enabled
        self.previews = previews
    }

    func handle(_ event: ExecutionEvent) {
        if case let .preview(p) = event, let previews {
            previews.write(p.png, node: p.nodeID, step: p.step)
            if let note = p.note, enabled { printError("  preview: \(note)") }
        }
        guard enabled else { return }
        lock.withLock {
            switch event {
            case .preview: break
            case let .nodeStarted(id, type):
                started[id] = Date()
                printError("▶ \(id) (\(type))")
            case let .progress(p):
                guard p.extra["inner"] == nil else { return }
                let elapsed = Date().timeIntervalSince(started[p.nodeID] ?? Date())
                let eta = p.step > 0 ? elapsed / Double(p.step) * Double(p.total - p.step) : 0
                let losses = p.extra.keys.sorted().map { "\($0) \(String(format: "%.4g", p.extra[$0]!))" }
                printError("  \(p.nodeID) \(p.step)/\(p.total)  ETA \(String(format: "%.1f", eta)) s"
                           + (losses.isEmpty ? "" : "  " + losses.joined(separator: " ")))
            case let .nodeFinished(run):
                printError(run.cacheHit ? "✓ \(run.nodeID) (cached)" : "✓ \(run.nodeID) \(String(format: "%.1f", run.milliseconds)) ms")
            }
        }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a workflow file or template without running it (exit 0 valid, 1 invalid).")

    @Argument(help: "A workflow file or a template name.")
    var workflow: String

    @OptionGroup var templateOptions: TemplateOptions

    func run() throws {
        let file = try templateOptions.resolve(workflow)
        do {
            _ = try WorkflowRunner(templates: templateOptions.library.source).validate(file, displayName: FileManager.default.fileExists(atPath: workflow) ? workflow : file.path)
            print("\(workflow): valid")
        } catch {
            report(error)
            throw ExitCode(1)
        }
    }
}

struct NodesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes",
        abstract: "List the node types: their ports, parameters and documentation.",
        discussion: "`pilot nodes --markdown > docs/nodes.md` regenerates the catalog (a test checks it is current).")

    @Flag(help: "The catalog as JSON.")
    var json = false

    @Flag(help: "The catalog as Markdown (docs/nodes.md).")
    var markdown = false

    func run() throws {
        let registry = NodeRegistry.standard
        if json {
            print(registry.catalogJSON.pretty)
        } else if markdown {
            print(registry.catalogMarkdown, terminator: "")
        } else {
            for description in registry.descriptions {
                let inputs = description.inputs.map { "\($0.name): \($0.type.spelling)\($0.isRequired ? "" : "?")" }
                let outputs = description.outputs.map { "\($0.name): \($0.type.spelling)" }
                print("\(description.type) [\(description.category)] (\(inputs.joined(separator: ", "))) → (\(outputs.joined(separator: ", ")))")
            }
        }
    }
}

struct Templates: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the workflow templates; save, show, version and delete them in a daemon.",
        subcommands: [TemplatesList.self, TemplatesSave.self, TemplatesShow.self, TemplatesHistory.self, TemplatesRemove.self,
                      TemplatesFromPNG.self],
        defaultSubcommand: TemplatesList.self)
}

struct TemplatesList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list",
                                                    abstract: "List the workflow templates with their descriptions and inputs.")

    @OptionGroup var templateOptions: TemplateOptions

    func run() throws {
        let library = templateOptions.library
        guard let directory = library.directory else {
            printError("pilot: no templates folder (give --templates DIR or set PILOT_TEMPLATES)")
            throw ExitCode(1)
        }
        print("templates in \(directory.path):")
        for url in library.templates {
            let name = url.deletingPathExtension().lastPathComponent
            guard let workflow = try? WorkflowRunner(templates: library.source).validate(url) else {
                print("\n\(name): (does not validate; run `pilot validate \(url.path)`)")
                continue
            }
            let graph = workflow.graph
            print("\n\(name): \(graph.description)")
            for input in graph.inputs.values.sorted(by: { $0.name < $1.name }) {
                var facts = [input.type.detailedSpelling]
                if let value = input.defaultValue { facts.append("default \(value.json.compact)") }
                if input.minimum != nil || input.maximum != nil {
                    facts.append("range \(input.minimum.map { "\($0)" } ?? "")...\(input.maximum.map { "\($0)" } ?? "")")
                }
                print("  \(input.name) (\(facts.joined(separator: ", ")))" + (input.description.isEmpty ? "" : ": \(input.description)"))
            }
        }
    }
}

struct WorkflowFrom: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow-from",
        abstract: "Print the workflow embedded in an image written by SaveImage, as YAML (re-run it with `pilot run`).")

    @Argument(help: "A PNG, JPEG or WebP written by SaveImage.")
    var png: String

    @Flag(help: "Print the canonical JSON instead of YAML.")
    var json = false

    func run() throws {
        let text: String
        do {
            guard let found = try ImageFile.text(forKey: "pilot:workflow", inFileAt: png) else {
                printError("pilot: \(png) has no embedded workflow (no 'pilot:workflow' entry)")
                throw ExitCode(1)
            }
            text = found
        }
        if json { print(text); return }
        let (graph, problems) = WorkflowParser.parse(text, file: png)
        guard problems.isEmpty else {
            for problem in problems { printError(problem.description) }
            throw ExitCode(1)
        }
        print(graph.yaml, terminator: "")
    }
}

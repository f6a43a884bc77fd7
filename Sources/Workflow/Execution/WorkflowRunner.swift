import Foundation
import SafeTensors

/// What a program built on the engine gives the parts that run workflows
/// (the runner, the daemon, its worker processes): its node types, how
/// object inputs load from files, and its version (recorded in saved
/// images and `info`). The engine and the daemon know no node; the `pilot`
/// executable hands them the node library's (`NodeProvider.standard`).
public struct NodeProvider: Sendable {
    public let registry: NodeRegistry
    /// Loads object template inputs given as files (Image, Mask, Latent),
    /// relative paths resolved against the URL.
    public let objectLoader: @Sendable (URL) -> ObjectLoader
    public let programVersion: String

    public init(registry: NodeRegistry, programVersion: String, objectLoader: @escaping @Sendable (URL) -> ObjectLoader) {
        self.registry = registry
        self.programVersion = programVersion
        self.objectLoader = objectLoader
    }
}

/// Finds workflow templates: `NAME` is `DIR/NAME.yaml` in the templates
/// folder; anything that names an existing file is that file.
public struct TemplateLibrary: Sendable {
    public let directory: URL?

    /// `explicit` (`--templates DIR`), else `$PILOT_TEMPLATES`, else the
    /// `Workflows/` folder of the checkout the executable was built in or
    /// of the current directory (searched upwards).
    public init(explicit: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let explicit {
            directory = URL(fileURLWithPath: explicit, isDirectory: true)
        } else if let variable = environment["PILOT_TEMPLATES"], !variable.isEmpty {
            directory = URL(fileURLWithPath: variable, isDirectory: true)
        } else {
            var starts: [URL] = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)]
            if let executable = Bundle.main.executableURL { starts.insert(executable.deletingLastPathComponent(), at: 0) }
            directory = starts.lazy.compactMap(Self.searchUpwards).first
        }
    }

    private static func searchUpwards(from start: URL) -> URL? {
        var folder = start.standardizedFileURL
        while true {
            let candidate = folder.appendingPathComponent("Workflows", isDirectory: true)
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isFolder), isFolder.boolValue,
               FileManager.default.fileExists(atPath: folder.appendingPathComponent("Package.swift").path) {
                return candidate
            }
            let parent = folder.deletingLastPathComponent()
            if parent.path == folder.path { return nil }
            folder = parent
        }
    }

    /// The file `nameOrPath` means: an existing file, else a template.
    public func resolve(_ nameOrPath: String) -> URL? {
        if FileManager.default.fileExists(atPath: nameOrPath) { return URL(fileURLWithPath: nameOrPath) }
        guard let directory, !nameOrPath.contains("/") else { return nil }
        for ext in ["yaml", "yml", "json"] {
            let url = directory.appendingPathComponent("\(nameOrPath).\(ext)")
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        return nil
    }

    /// Its folder as a template source (nil without one).
    public var source: TemplateFolder? { directory.map(TemplateFolder.init) }

    /// Every template file, sorted by name.
    public var templates: [URL] {
        guard let directory, let items = try? FileManager.default.contentsOfDirectory(
            at: directory, includingPropertiesForKeys: nil) else { return [] }
        return items.filter { ["yaml", "yml"].contains($0.pathExtension) }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }
}

/// Validates, binds and runs workflow files: what `pilot run` does, as a
/// library so tests and the daemon share it. One runner keeps one output
/// cache across runs.
public final class WorkflowRunner: Sendable {
    public let nodes: NodeProvider
    public let executor: Executor
    /// Where template nodes find templates; nil: the folder of the file
    /// being validated (a workflow nests the templates beside it).
    public let templates: (any TemplateSource)?

    public init(nodes: NodeProvider, executor: Executor = Executor(), templates: (any TemplateSource)? = nil) {
        self.nodes = nodes
        self.executor = executor
        self.templates = templates
    }

    public var registry: NodeRegistry { nodes.registry }

    /// Reads and validates `file`; diagnostics name it as `displayName`.
    public func validate(_ file: URL, displayName: String? = nil) throws(ValidationFailure) -> ValidatedWorkflow {
        try ValidatedWorkflow(contentsOf: file, file: displayName ?? file.path, registry: registry,
                              templates: templates(for: file))
    }

    /// The template source for workflows read from `file`: the runner's,
    /// after the templates beside the file.
    public func templates(for file: URL) -> any TemplateSource {
        let beside = TemplateFolder(file.deletingLastPathComponent())
        guard let templates else { return beside }
        return LayeredTemplates([beside, templates])
    }

    /// Binds and runs `workflow` (read from `file`).
    ///
    /// - `set`: `--set name=value` (text as written; paths stay relative to
    ///   the workflow's folder).
    /// - `inputs`: `--input name=path`: relative paths resolve against
    ///   `inputBase` (the caller's current directory), for Path inputs and
    ///   object inputs (Image/Mask/Latent files) alike.
    ///
    /// - `allowedReadDirectories`: when given, nodes read files only inside
    ///   these folders (the daemon confines workflows received over the wire).
    ///
    /// - `maxOutputPixels`: when given, the most pixels the run's Save*
    ///   nodes may write in all.
    ///
    /// - `annotations`: written by SaveImage as `pilot:KEY` text chunks.
    ///
    /// - `preview`: the previews samplers send as `.preview` events.
    ///
    /// Throws ``BindingFailure`` or ``ExecutionError``.
    public func run(_ workflow: ValidatedWorkflow, file: URL, set: [String: String] = [:], inputs: [String: String] = [:],
                    inputBase: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true),
                    outputDirectory: URL, allowedReadDirectories: [URL]? = nil, maxOutputPixels: Int? = nil,
                    annotations: [String: String] = [:], preview: PreviewRequest? = nil,
                    cancellation: CancellationToken = CancellationToken(),
                    onEvent: @escaping @Sendable (ExecutionEvent) -> Void = { _ in }) throws -> ExecutionResult {
        try run(workflow, file: file, parameters: set.mapValues(ParameterValue.text), inputs: inputs, inputBase: inputBase,
                outputDirectory: outputDirectory, allowedReadDirectories: allowedReadDirectories, maxOutputPixels: maxOutputPixels,
                annotations: annotations, preview: preview, cancellation: cancellation, onEvent: onEvent)
    }

    /// Binds and runs `workflow` as ``run(_:file:set:inputs:inputBase:outputDirectory:allowedReadDirectories:maxOutputPixels:annotations:preview:cancellation:onEvent:)``,
    /// with `parameters` typed (a JSON client's numbers and booleans) or text.
    public func run(_ workflow: ValidatedWorkflow, file: URL, parameters: [String: ParameterValue], inputs: [String: String] = [:],
                    inputBase: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true),
                    outputDirectory: URL, allowedReadDirectories: [URL]? = nil, maxOutputPixels: Int? = nil,
                    annotations: [String: String] = [:], preview: PreviewRequest? = nil,
                    cancellation: CancellationToken = CancellationToken(),
                    onEvent: @escaping @Sendable (ExecutionEvent) -> Void = { _ in }) throws -> ExecutionResult {
        var given = parameters
        for (name, path) in inputs {
            given[name] = .text(path.hasPrefix("/") ? path : inputBase.appendingPathComponent(path).standardizedFileURL.path)
        }
        // Every file a loader opens, not only the paths the workflow names, stays inside the allowed folders.
        return try ReadConfinement.confined(to: allowedReadDirectories) {
            let bound = try workflow.bind(given, loader: nodes.objectLoader(inputBase))
            try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
            var paths = PathPolicy(workflowFile: file.standardizedFileURL, allowedReadDirectories: allowedReadDirectories,
                                   outputDirectory: outputDirectory)
            paths.maxOutputPixels = maxOutputPixels
            return try executor.run(bound, paths: paths, cancellation: cancellation, annotations: annotations,
                                    preview: preview, onEvent: onEvent)
        }
    }
}

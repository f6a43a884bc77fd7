import Foundation

/// What a running node may use besides its inputs: progress reporting,
/// cancellation, where files are read and written, and what is being run
/// (for Save* nodes that embed the workflow in their output).
public final class NodeContext: Sendable {
    /// The node's id in the workflow (`pilot`, `decode`).
    public let nodeID: String
    /// The node's type name (`PILOTOptimize`).
    public let nodeType: String
    public let paths: PathPolicy
    /// The workflow and parameters of this run, and the files it read.
    public let record: RunRecord
    let cancellation: CancellationToken
    let emit: @Sendable (ExecutionEvent) -> Void
    /// The run's output allowance (``PathPolicy/maxOutputPixels``), shared by its nodes.
    let written: OutputAllowance
    /// What previews the run asked for; nil: none.
    public let preview: PreviewRequest?

    init(nodeID: String, nodeType: String, paths: PathPolicy, record: RunRecord,
         cancellation: CancellationToken, written: OutputAllowance? = nil, preview: PreviewRequest? = nil,
         emit: @escaping @Sendable (ExecutionEvent) -> Void) {
        self.written = written ?? OutputAllowance(maxPixels: paths.maxOutputPixels)
        self.preview = preview
        self.nodeID = nodeID
        self.nodeType = nodeType
        self.paths = paths
        self.record = record
        self.cancellation = cancellation
        self.emit = emit
    }

    /// A context for calling a node outside the executor (tests, tools).
    public static func standalone(nodeID: String = "node", nodeType: String = "Node",
                                  paths: PathPolicy = .currentDirectory,
                                  cancellation: CancellationToken = CancellationToken(),
                                  preview: PreviewRequest? = nil,
                                  onEvent: @escaping @Sendable (ExecutionEvent) -> Void = { _ in }) -> NodeContext {
        NodeContext(nodeID: nodeID, nodeType: nodeType, paths: paths, record: RunRecord(),
                    cancellation: cancellation, preview: preview, emit: onEvent)
    }

    /// Reports progress within this node: sampler step `step` of `total`,
    /// with optional named numbers (losses, learning rate).
    public func report(step: Int, total: Int, extra: [String: Double] = [:]) {
        emit(.progress(NodeProgress(nodeID: nodeID, nodeType: nodeType, step: step, total: total, extra: extra)))
    }

    /// Sends a preview image of step `step` of `total` (see ``preview``).
    public func emitPreview(step: Int, total: Int, png: Data, width: Int, height: Int, method: String, note: String? = nil) {
        emit(.preview(NodePreview(nodeID: nodeID, nodeType: nodeType, step: step, total: total, png: png,
                                  width: width, height: height, method: method, note: note)))
    }

    /// True once the run was asked to stop.
    public var isCancelled: Bool { cancellation.isCancelled }

    /// Throws `CancellationError` once the run was asked to stop; call it
    /// between steps of long loops.
    public func checkCancelled() throws {
        if cancellation.isCancelled { throw CancellationError() }
    }

    /// The workflow file's folder; relative paths resolve against it.
    public var workflowDirectory: URL { paths.baseDirectory }
    /// Where Save* nodes write.
    public var outputDirectory: URL { paths.outputDirectory }
    /// Folders reads must stay inside; nil allows any path.
    public var allowedReadDirectories: [URL]? { paths.allowedReadDirectories }

    /// See ``PathPolicy/resolveForReading(_:)``.
    public func resolveForReading(_ path: String) throws(PathError) -> URL {
        try paths.resolveForReading(path)
    }

    /// Counts `pixels` against the run's output allowance before a Save*
    /// node writes them; throws, writing nothing, once the run would pass
    /// ``PathPolicy/maxOutputPixels``.
    public func reserveOutput(pixels: Int) throws(OutputLimitError) {
        try written.reserve(pixels)
    }

    /// See ``PathPolicy/outputFile(named:extension:)``.
    public func outputFile(named name: String, extension ext: String) throws(PathError) -> URL {
        try paths.outputFile(named: name, extension: ext)
    }

    /// Records that this node wrote `data` to `url` (a file
    /// ``outputFile(named:extension:)`` gave), for the run's result
    /// (``ExecutionResult/files``) with its SHA-256: whoever ran the workflow
    /// learns what it wrote without listing or reading the folder again.
    public func recordOutput(_ url: URL, data: Data) {
        written.record(OutputFile(name: url.lastPathComponent, nodeID: nodeID, sha256: Digest.sha256Hex(data), bytes: data.count))
    }
}

/// A file a run's Save* node wrote under the output folder.
public struct OutputFile: Sendable, Equatable {
    /// The file name (NAME.EXT) in the output folder.
    public var name: String
    /// The node that wrote it.
    public var nodeID: String
    /// SHA-256 (lowercase hex) of its bytes.
    public var sha256: String
    public var bytes: Int

    public init(name: String, nodeID: String, sha256: String, bytes: Int) {
        self.name = name
        self.nodeID = nodeID
        self.sha256 = sha256
        self.bytes = bytes
    }
}

/// What a run is, for nodes that record it in their output (SaveImage
/// writes these into PNG text chunks).
public struct RunRecord: Sendable {
    /// The workflow in canonical JSON (see ``WorkflowGraph/canonicalJSON``).
    public var workflowJSON: String
    /// SHA-256 (lowercase hex) of ``workflowJSON``'s UTF-8 bytes.
    public var workflowSHA256: String
    /// The template inputs this run bound, scalars only, by name.
    public var parameters: [String: Literal]
    /// Every file the run's needed nodes read through `readsFile`
    /// parameters, by resolved path.
    public var files: [String: FileFingerprint]
    /// What the caller adds about the run (the daemon: the template and
    /// version a job ran); SaveImage writes each as a `pilot:KEY` text chunk.
    public var annotations: [String: String]

    public init(workflowJSON: String = "", workflowSHA256: String = "",
                parameters: [String: Literal] = [:], files: [String: FileFingerprint] = [:], annotations: [String: String] = [:]) {
        self.annotations = annotations
        self.workflowJSON = workflowJSON
        self.workflowSHA256 = workflowSHA256
        self.parameters = parameters
        self.files = files
    }
}

/// A flag one side sets and the other polls; safe across threads.
public final class CancellationToken: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false

    public init() {}

    public func cancel() {
        lock.withLock { cancelled = true }
    }

    public var isCancelled: Bool {
        lock.withLock { cancelled }
    }
}

/// Pixels a run has written so far, against its bound.
final class OutputAllowance: @unchecked Sendable {
    private let lock = NSLock()
    private let maxPixels: Int?
    private var used = 0
    /// What the run wrote, in order (a file written twice: its last write).
    private var written: [OutputFile] = []

    func record(_ file: OutputFile) {
        lock.withLock {
            written.removeAll { $0.name == file.name }
            written.append(file)
        }
    }

    var files: [OutputFile] { lock.withLock { written } }

    init(maxPixels: Int?) { self.maxPixels = maxPixels }

    func reserve(_ pixels: Int) throws(OutputLimitError) {
        guard let maxPixels else { return }
        lock.lock()
        defer { lock.unlock() }
        let (total, overflow) = used.addingReportingOverflow(max(0, pixels))
        guard !overflow, total <= maxPixels else {
            throw OutputLimitError(requested: pixels, written: used, limit: maxPixels)
        }
        used = total
    }
}

/// A run's outputs would pass ``PathPolicy/maxOutputPixels``.
public struct OutputLimitError: Error, Sendable, CustomStringConvertible {
    public let requested: Int
    public let written: Int
    public let limit: Int

    public var description: String {
        "writing \(requested) more pixels would take this run past its output limit of \(limit) pixels "
            + "(\(written) written so far; pilot serve --max-output-pixels)"
    }
}

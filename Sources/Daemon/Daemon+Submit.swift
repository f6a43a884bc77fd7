import Foundation
import Imaging
import Logging
import Workflow

// `submit`: validation of the content, input blobs, the disk quota, the job row.
extension Daemon {
    /// Bounds on what a submit may carry.
    static let maxIdempotencyKey = 128
    static let priorities = -1000...1000
    static let maxParameters = 256
    static let maxDiagnosticsInReply = 50

    func submit(_ content: JSONValue, frames: [Data], caller: ClientRecord) throws(DaemonError) -> Reply {
        let key = try optionalString(content, "idempotency_key")
        if let key, key.utf8.count > Self.maxIdempotencyKey {
            throw DaemonError(.invalidRequest, "'idempotency_key' is \(key.utf8.count) bytes; at most \(Self.maxIdempotencyKey)")
        }
        if let key, let existing = try storeCall({ try store.job(idempotencyKey: key, owner: caller.name) }) {
            return (["job": .string(existing.id), "state": .string(existing.state.rawValue), "duplicate": .bool(true)], [])
        }
        let priority = try optionalInt(content, "priority") ?? 0
        try Self.checkPriorityRange(priority)
        guard priority <= caller.maxPriority else {
            throw DaemonError(.quotaExceeded, "client '\(caller.name)' may submit with priority at most \(caller.maxPriority), "
                              + "asked for \(priority)")
        }
        let active = try storeCall { try store.activeJobs(owner: caller.name) }
        guard active < caller.maxQueued else {
            throw DaemonError(.quotaExceeded, "client '\(caller.name)' has \(active) job(s) queued or running, its limit; "
                              + "submit again when one has ended")
        }
        let client = try optionalString(content, "client").map { String($0.prefix(128)) }
        let preview = try PreviewRequest(submitted: content["preview"])
        let parameters = content["parameters"] ?? .object([:])
        guard case let .object(given) = parameters else {
            throw DaemonError(.invalidRequest, "'parameters' must be an object of name → value, found \(parameters.typeName)")
        }
        guard given.count <= Self.maxParameters else {
            throw DaemonError(.invalidRequest, "\(given.count) parameters; at most \(Self.maxParameters)")
        }
        for (name, value) in given {
            switch value {
            case .string, .int, .float, .bool: break
            default: throw DaemonError(.invalidRequest, "parameter '\(name)' must be a string, number or boolean, found \(value.typeName)")
            }
        }

        // The workflow: inline text, or a template by name.
        let text: String, template: String?, templateFile: URL?
        var templateVersion: (number: Int, sha256: String)?
        // A saved template (its latest version) shadows a file of the same name.
        let requested = content["template"]?.stringValue
        let savedTemplate = try requested.flatMap { name throws(DaemonError) in
            Self.isTemplateName(name) ? try storeCall { try store.template(name: name) } : nil
        }
        switch (content["workflow"], content["template"]) {
        case let (.string(workflow)?, nil):
            (text, template, templateFile) = (workflow, nil, nil)
        case let (nil, .string(name)?) where savedTemplate != nil:
            let saved = savedTemplate!
            (text, template, templateFile) = (saved.text, name, nil)
            templateVersion = (saved.version, saved.sha256)
        case let (nil, .string(name)?):
            guard let url = templateURL(name) else {
                throw DaemonError(.unknownTemplate, "no template '\(name.prefix(80))' (templates: \(templates().map(\.name).joined(separator: ", ")))")
            }
            guard let read = try? String(contentsOf: url, encoding: .utf8) else {
                throw DaemonError(.internal, "cannot read template \(url.path)")
            }
            (text, template, templateFile) = (read, name, url)
        default:
            throw DaemonError(.invalidRequest, "give exactly one of 'workflow' (YAML or JSON text) and 'template' (a name)")
        }
        let displayName = template.map { "template \($0)" } ?? "workflow"
        let validated: ValidatedWorkflow
        do {
            validated = try ValidatedWorkflow(parsing: text, file: displayName, registry: runner.registry,
                                              templates: templateSource, templateName: template)
        } catch {
            // Bounded: a small workflow can produce very many diagnostics.
            let shown = error.diagnostics.prefix(Self.maxDiagnosticsInReply)
            let more = error.diagnostics.count - shown.count
            throw DaemonError(.invalidWorkflow, "the workflow has \(error.diagnostics.count) problem(s): "
                              + shown.map { String($0.description.prefix(500)) }.joined(separator: "; ")
                              + (more > 0 ? "; and \(more) more" : ""),
                              details: .array(shown.map(\.json)))
        }
        let declared = validated.graph.inputs
        for name in given.keys.sorted() {
            if let input = declared[name], [PortType.image, .mask, .latent].contains(input.type) {
                throw DaemonError(.invalidParameters, "template input '\(name)' is \(input.type.spelling): send it as a binary frame under 'inputs', not as a parameter")
            }
        }

        // What the frames would cost, before any is stored or decoded: the
        // pixels their PNG headers declare, and room in the state folder.
        var declaredPixels = 0
        for frame in frames {
            guard let size = PNGHeader.size(of: frame) else { continue }
            let (pixels, overflowed) = size.width.multipliedReportingOverflow(by: size.height)
            let (sum, overflowedSum) = declaredPixels.addingReportingOverflow(pixels)
            declaredPixels = overflowed || overflowedSum ? .max : sum
        }
        guard declaredPixels <= configuration.maxSubmitPixels else {
            throw DaemonError(.tooLarge, "the input images declare \(declaredPixels) pixels in all, over the limit of "
                              + "\(configuration.maxSubmitPixels) per submit (pilot serve --max-submit-pixels); nothing was decoded")
        }
        // Each input is kept twice: the content-addressed blob and the job's own copy.
        let incoming = 2 * frames.reduce(0) { $0 + $1.count }
        try checkDiskQuota(adding: incoming)

        // Input frames: stored content-addressed before the job is.
        let inputSpec = content["inputs"] ?? .object([:])
        guard case let .object(inputRefs) = inputSpec else {
            throw DaemonError(.invalidRequest, "'inputs' must be an object of name → frame index, found \(inputSpec.typeName)")
        }
        var used = Set<Int>()
        var storedInputs: [String: JSONValue] = [:]
        var inputBytes: [String: Data] = [:]
        for name in inputRefs.keys.sorted() {
            let reference = inputRefs[name]!
            guard let index = reference.intValue ?? reference["frame"]?.intValue, frames.indices.contains(index) else {
                throw DaemonError(.invalidRequest, "input '\(name)': expected a frame index below \(frames.count) (or {\"frame\": i, \"filename\": …}), found \(reference.compact.prefix(60))")
            }
            guard name.range(of: "^[A-Za-z_][A-Za-z0-9_-]{0,63}$", options: .regularExpression) != nil else {
                throw DaemonError(.invalidRequest, "input name '\(name.prefix(64))' must be a template input name")
            }
            guard declared[name] != nil else {
                throw DaemonError(.invalidParameters, "no template input '\(name)' (template inputs: \(declared.keys.sorted().joined(separator: ", ")))")
            }
            used.insert(index)
            let sha: String
            do { sha = try blobs.put(frames[index]) } catch { throw DaemonError(.internal, "cannot store input '\(name)': \(error)") }
            try storeCall { try store.recordBlob(sha256: sha, bytes: frames[index].count, now: Date()) }
            if store.keepsBlobBytes { inputBytes[sha] = frames[index] }
            FaultInjection.point("submit-after-blobs")
            let file = name + "." + Self.fileExtension(reference["filename"]?.stringValue, data: frames[index])
            storedInputs[name] = .object(["sha256": .string(sha), "file": .string(file), "bytes": .int(frames[index].count)])
        }
        if let unused = frames.indices.first(where: { !used.contains($0) }) {
            throw DaemonError(.invalidRequest, "binary frame \(unused) is not named by any input")
        }

        // Bind now, so bad parameters are refused before the job exists.
        let id = UUID().uuidString.lowercased()
        var jobModels: [String] = []
        let nestedTemplates = validated.templates.isEmpty ? nil : validated.templateSnapshot.json
        let job = JobRecord(id: id, sequence: 0, idempotencyKey: key, state: .queued, priority: priority, template: template,
                            templateFile: templateFile?.path, workflow: text, parameters: parameters,
                            inputs: .object(storedInputs), client: client, created: Date(), attempts: 0,
                            nestedTemplates: nestedTemplates)
        do {
            let prepared = try JobPreparation.prepare(job, paths: paths, blobs: blobs, registry: runner.registry,
                                                      validated: validated)
            var given = prepared.parameters
            for (name, path) in prepared.inputs { given[name] = .text(path) }
            let bound = try prepared.workflow.bind(given, loader: runner.nodes.objectLoader(paths.inputs(id)))
            jobModels = JobModels.names(bound, registry: runner.registry, base: prepared.file.deletingLastPathComponent(),
                                        models: paths.models)
        } catch let failure as BindingFailure {
            try? FileManager.default.removeItem(at: paths.job(id))
            throw DaemonError(.invalidParameters, failure.description,
                              details: .array(failure.problems.map { problem in
                                  .object(["parameter": .string(problem.parameter), "message": .string(problem.message),
                                           "expected": problem.expected.map(JSONValue.string) ?? .null,
                                           "found": problem.found.map(JSONValue.string) ?? .null])
                              }))
        } catch let error as DaemonError {
            try? FileManager.default.removeItem(at: paths.job(id))
            throw error
        } catch {
            try? FileManager.default.removeItem(at: paths.job(id))
            throw DaemonError(.internal, "\(error)")
        }

        let insertion = try storeCall {
            try store.insert(id: id, idempotencyKey: key, priority: priority, template: template, templateFile: templateFile?.path,
                             workflow: text, parameters: parameters, inputs: .object(storedInputs), client: client,
                             owner: caller.name, templateVersion: templateVersion, nestedTemplates: nestedTemplates,
                             preview: preview?.json, blobs: inputBytes, models: jobModels, now: Date())
        }
        switch insertion {
        case let .duplicate(existing):
            try? FileManager.default.removeItem(at: paths.job(id))
            return (["job": .string(existing.id), "state": .string(existing.state.rawValue), "duplicate": .bool(true)], [])
        case .inserted:
            stateLock.withLock { diskUsage.acceptedSince += incoming }
            FaultInjection.point("submit-after-commit")
            let position = (try? store.queuePosition(id)) ?? nil
            publisher.publish(job: id, type: "queued", content: ["position": position.map(JSONValue.int) ?? .null])
            wakeWorkers()
            var metadata: Logger.Metadata = ["job": "\(id)", "client": "\(caller.name)"]
            if let template { metadata["template"] = "\(LogText.escaped(template, limit: 100))" }
            logger.info("queued", metadata: metadata)
            return (["job": .string(id), "state": .string("queued"), "duplicate": .bool(false),
                     "position": position.map(JSONValue.int) ?? .null], [])
        }
    }

    /// Refuses a priority outside −1000…1000 (submit, move).
    static func checkPriorityRange(_ priority: Int) throws(DaemonError) {
        guard priorities.contains(priority) else {
            throw DaemonError(.invalidRequest, "'priority' must be in \(priorities.lowerBound)...\(priorities.upperBound), found \(priority)")
        }
    }

    /// Refuses a submit that would take the state folder past its quota.
    /// The folder is measured at most once a minute (a walk of its files);
    /// inputs accepted since are added, outputs written since are not, so
    /// the quota can be passed by at most a minute of jobs' outputs, each
    /// bounded by `maxOutputPixels`.
    func checkDiskQuota(adding incoming: Int) throws(DaemonError) {
        guard let quota = configuration.diskQuota else { return }
        let stale = stateLock.withLock { Date().timeIntervalSince(diskUsage.measured) > 60 }
        if stale {
            let bytes = (try? FileManager.default.allocatedSizeOfFiles(in: configuration.stateDirectory)) ?? 0
            stateLock.withLock { diskUsage = (Date(), bytes, 0) }
        }
        let used = stateLock.withLock { diskUsage.bytes + diskUsage.acceptedSince }
        guard used + incoming <= quota else {
            throw DaemonError(.quotaExceeded, "the state folder holds \(used) bytes; this submit's \(incoming) more would pass its quota of "
                              + "\(quota) bytes (pilot serve --disk-quota): prune ended jobs (pilot prune --older-than 7d) or raise the quota",
                              details: .object(["used": .int(used), "incoming": .int(incoming), "quota": .int(quota)]))
        }
    }

    static func fileExtension(_ filename: String?, data: Data) -> String {
        if let filename {
            let ext = URL(fileURLWithPath: filename).pathExtension.lowercased()
            if ext.range(of: "^[a-z0-9]{1,10}$", options: .regularExpression) != nil { return ext }
        }
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "png" }
        return "safetensors"
    }
}

extension FileManager {
    /// Bytes of the regular files under `folder` (not following links).
    func allocatedSizeOfFiles(in folder: URL) throws -> Int {
        guard let items = enumerator(at: folder, includingPropertiesForKeys: [.fileSizeKey, .isRegularFileKey]) else { return 0 }
        var total = 0
        for case let url as URL in items {
            let values = try url.resourceValues(forKeys: [.fileSizeKey, .isRegularFileKey])
            if values.isRegularFile == true { total += values.fileSize ?? 0 }
        }
        return total
    }
}


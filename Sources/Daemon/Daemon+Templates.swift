import Foundation
import Workflow

// `templates`, `template`, `template_save`, `template_history`, `template_delete`.
extension Daemon {
    /// Where template nodes find templates: saved ones, then the template folders.
    var templateSource: DaemonTemplates {
        DaemonTemplates(store: store, folders: configuration.templateDirectories.map(TemplateFolder.init))
    }

    func templates() -> [(name: String, url: URL)] {
        var seen = Set<String>(), found: [(String, URL)] = []
        for directory in configuration.templateDirectories {
            for url in TemplateLibrary(explicit: directory.path).templates {
                let name = url.deletingPathExtension().lastPathComponent
                if seen.insert(name).inserted { found.append((name, url)) }
            }
        }
        return found.sorted { $0.0 < $1.0 }
    }

    func templateURL(_ name: String) -> URL? {
        guard Self.isTemplateName(name) else { return nil }
        return templates().first { $0.name == name }?.url
    }

    /// Template names: 1–100 letters, digits, `_`, `.`, `-`, not starting with a dot.
    static func isTemplateName(_ name: String) -> Bool { TemplateFolder.isValidName(name) }

    /// File templates and saved ones; a saved template shadows a file of the same name, and says so.
    func listTemplates() throws(DaemonError) -> Reply {
        let saved = try storeCall { try store.savedTemplates() }
        let savedNames = Set(saved.map(\.name))
        let files = templates()
        var list: [JSONValue] = saved.map { version in
            var object = summary(of: version)
            if files.contains(where: { $0.name == version.name }) { object["shadows_file"] = .bool(true) }
            return .object(object)
        }
        list += files.filter { !savedNames.contains($0.name) }.map { file in
            var object = templateSummary(file.name, file.url).objectValue ?? [:]
            object["source"] = .string("file")
            return .object(object)
        }
        return (["templates": .array(list.sorted { ($0["name"]?.stringValue ?? "") < ($1["name"]?.stringValue ?? "") })], [])
    }

    /// A saved version's summary: name, inputs, version, hash, who saved it.
    func summary(of version: JobStore.TemplateVersion) -> [String: JSONValue] {
        var object: [String: JSONValue] = ["name": .string(version.name), "valid": .bool(false)]
        if let workflow = try? ValidatedWorkflow(parsing: version.text, file: "template \(version.name)", registry: runner.registry,
                                                 templates: templateSource, templateName: version.name) {
            object = Self.describe(version.name, workflow)
        }
        object["source"] = .string("saved")
        for (key, value) in version.json.objectValue ?? [:] where key != "name" { object[key] = value }
        return object
    }

    /// Saves a new version of a template after validating it; any client may.
    func saveTemplate(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        guard let name = content["name"]?.stringValue, Self.isTemplateName(name) else {
            throw DaemonError(.invalidRequest, "expected 'name': 1 to 100 letters, digits, '_', '.' or '-', not starting with '.'")
        }
        guard let text = content["text"]?.stringValue else { throw DaemonError(.invalidRequest, "expected 'text': the template's YAML") }
        do {
            _ = try ValidatedWorkflow(parsing: text, file: "template \(name)", registry: runner.registry,
                                      templates: templateSource, templateName: name)
        } catch {
            let shown = error.diagnostics.prefix(Self.maxDiagnosticsInReply)
            throw DaemonError(.invalidWorkflow, "template '\(name)' is not saved: \(error.diagnostics.count) problem(s): "
                              + shown.map { String($0.description.prefix(500)) }.joined(separator: "; "),
                              details: .array(shown.map(\.json)))
        }
        let saved = try storeCall { try store.saveTemplate(name: name, text: text, client: caller.name, now: Date()) }
        logger.notice("template saved", metadata: ["template": "\(name)", "version": "\(saved.version)", "client": "\(caller.name)"])
        return (["template": saved.json], [])
    }

    /// Deletes a saved template (every version stays in its history): its
    /// last saver or an admin may; a file template cannot be deleted.
    func deleteTemplate(_ content: JSONValue, caller: ClientRecord) throws(DaemonError) -> Reply {
        guard let name = content["name"]?.stringValue, Self.isTemplateName(name) else {
            throw DaemonError(.invalidRequest, "expected 'name': a template name")
        }
        guard let latest = try storeCall({ try store.template(name: name) }) else {
            if templateURL(name) != nil {
                throw DaemonError(.forbidden, "template '\(name)' is a file (built in, or in a templates folder): it cannot be deleted over the wire")
            }
            throw DaemonError(.unknownTemplate, "no saved template '\(name)'")
        }
        guard caller.isAdmin || latest.client == caller.name else {
            throw DaemonError(.forbidden, "template '\(name)' was last saved by client '\(latest.client)': only it or an admin may delete it")
        }
        _ = try storeCall { try store.deleteTemplate(name: name, now: Date()) }
        return (["template": .string(name), "deleted": .bool(true), "file_remains": .bool(templateURL(name) != nil)], [])
    }

    func templateHistory(_ content: JSONValue) throws(DaemonError) -> Reply {
        guard let name = content["name"]?.stringValue, Self.isTemplateName(name) else {
            throw DaemonError(.invalidRequest, "expected 'name': a template name")
        }
        let versions = try storeCall { try store.templateHistory(name: name) }
        guard !versions.isEmpty else { throw DaemonError(.unknownTemplate, "template '\(name)' has no saved versions") }
        return (["name": .string(name), "versions": .array(versions.map(\.json))], [])
    }

    func templateSummary(_ name: String, _ url: URL) -> JSONValue {
        guard let workflow = try? ValidatedWorkflow(contentsOf: url, registry: runner.registry, templates: templateSource) else {
            return .object(["name": .string(name), "valid": .bool(false)])
        }
        return .object(Self.describe(name, workflow))
    }

    /// Name, description and typed inputs of a validated template.
    static func describe(_ name: String, _ workflow: ValidatedWorkflow) -> [String: JSONValue] {
        let inputs: [JSONValue] = workflow.graph.inputs.values.sorted { $0.name < $1.name }.map { input in
            var object: [String: JSONValue] = ["name": .string(input.name), "type": .string(input.type.spelling),
                                               "description": .string(input.description)]
            if let value = input.defaultValue { object["default"] = value.json }
            if let minimum = input.minimum { object["min"] = .float(minimum) }
            if let maximum = input.maximum { object["max"] = .float(maximum) }
            if let choices = input.choices { object["choices"] = .array(choices.map(\.json)) }
            return .object(object)
        }
        return ["name": .string(name), "valid": .bool(true), "description": .string(workflow.graph.description),
                "inputs": .array(inputs)]
    }

    func template(_ content: JSONValue) throws(DaemonError) -> Reply {
        guard let name = content["name"]?.stringValue else { throw DaemonError(.invalidRequest, "expected 'name': a template name") }
        let version = try optionalInt(content, "version")
        if Self.isTemplateName(name), let saved = try storeCall({ try store.template(name: name, version: version) }) {
            var object = summary(of: saved)
            object["text"] = .string(saved.text)
            return (["template": .object(object)], [])
        }
        if let version { throw DaemonError(.unknownTemplate, "template '\(name.prefix(80))' has no saved version \(version)") }
        guard let url = templateURL(name), let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw DaemonError(.unknownTemplate, "no template '\(name.prefix(80))'")
        }
        var object = templateSummary(name, url).objectValue ?? [:]
        object["text"] = .string(text)
        return (["template": .object(object)], [])
    }
}

import ArgumentParser
import Daemon
import Foundation
import Imaging
import Workflow

/// `--folder DIR`: work on a folder of template files instead of a daemon.
struct LocalTemplateOptions: ParsableArguments {
    @Option(help: "A folder of template files to work on instead of a daemon (versions are kept in DIR/.versions/).")
    var folder: String?

    var local: TemplateFolder? { folder.map { TemplateFolder(URL(fileURLWithPath: $0, isDirectory: true)) } }
}

/// Runs a local template operation; its error prints as `pilot: …` (exit 1).
func localCall<T>(_ body: () throws(TemplateLookupError) -> T) throws -> T {
    do { return try body() } catch {
        printError("pilot: \(error)")
        throw ExitCode(1)
    }
}

/// `pilot templates save NAME FILE`: a new version of a template in the daemon's store.
struct TemplatesSave: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save",
        abstract: "Save FILE as the next version of template NAME in the daemon, or in a folder with --folder (validated first; in a daemon it shadows a file template of that name).")

    @Argument(help: "The template's name (letters, digits, _ . -).") var name: String
    @Argument(help: "The workflow YAML (or JSON) file.") var file: String
    @OptionGroup var options: ClientOptions
    @OptionGroup var localOptions: LocalTemplateOptions

    func run() throws {
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
            printError("pilot: cannot read \(file): \(error.localizedDescription)")
            throw ExitCode(1)
        }
        if let folder = localOptions.local {
            // Validated as the daemon validates: template nodes resolve in the folder, and may not name NAME itself.
            do {
                _ = try ValidatedWorkflow(parsing: text, file: file, registry: .standard, templates: folder, templateName: name)
            } catch {
                report(error)
                printError("pilot: template '\(LogText.escaped(name, limit: 200))' is not saved")
                throw ExitCode(1)
            }
            let saved = try localCall { () throws(TemplateLookupError) in try folder.save(name, text: text) }
            print("\(LogText.escaped(name, limit: 200)): version \(saved.version ?? 0), sha256 \(saved.sha256) (\(saved.file))")
            return
        }
        let client = try options.client()
        let saved = try clientCall { try client.request("template_save", ["name": .string(name), "text": .string(text)]) }
            .content["template"] ?? .null
        print("\(LogText.escaped(name, limit: 200)): version \(saved["version"]?.intValue ?? 0), sha256 \(saved["sha256"]?.stringValue ?? "?")")
    }
}

/// `pilot templates show NAME[@VERSION]`: the text of a template.
struct TemplatesShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Print a daemon's (or --folder's) template NAME, or version V of it with NAME@V.")

    @Argument(help: "NAME or NAME@VERSION.") var template: String
    @OptionGroup var options: ClientOptions
    @OptionGroup var localOptions: LocalTemplateOptions

    func run() throws {
        var content: [String: JSONValue] = ["name": .string(template)]
        var name = template, version: Int?
        if let at = template.lastIndex(of: "@"), let number = Int(template[template.index(after: at)...]) {
            (name, version) = (String(template[..<at]), number)
            content = ["name": .string(name), "version": .int(number)]
        }
        if let folder = localOptions.local {
            guard let found = try localCall({ () throws(TemplateLookupError) in try folder.template(named: name, version: version) }) else {
                printError("pilot: no template '\(LogText.escaped(template, limit: 200))' in \(folder.directory.path)")
                throw ExitCode(1)
            }
            print(found.text, terminator: "")
            return
        }
        let client = try options.client()
        let shown = try clientCall { try client.request("template", content) }.content["template"] ?? .null
        print(shown["text"]?.stringValue ?? "", terminator: "")
    }
}

/// `pilot templates history NAME`: every saved version.
struct TemplatesHistory: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "List every saved version of a daemon's (or --folder's) template NAME.")

    @Argument(help: "The template's name.") var name: String
    @OptionGroup var options: ClientOptions
    @OptionGroup var localOptions: LocalTemplateOptions

    func run() throws {
        if let folder = localOptions.local {
            let versions = folder.history(of: name)
            guard !versions.isEmpty else {
                printError("pilot: template '\(LogText.escaped(name, limit: 200))' has no saved versions in \(folder.directory.path)")
                throw ExitCode(1)
            }
            for version in versions {
                print("\(version.version)  \(WireTime.format(version.time))  \(version.sha256)")
            }
            return
        }
        let client = try options.client()
        let versions = try clientCall { try client.request("template_history", ["name": .string(name)]) }.content["versions"]?.arrayValue ?? []
        for version in versions {
            let deleted = version["deleted"]?.stringValue.map { "  (deleted \($0))" } ?? ""
            print("\(version["version"]?.intValue ?? 0)  \(version["time"]?.stringValue ?? "")  \(LogText.escaped(version["client"]?.stringValue ?? "", limit: 200))  "
                  + "\(version["sha256"]?.stringValue ?? "")\(deleted)")
        }
    }
}

/// `pilot templates rm NAME`: deletes a saved template (its history stays).
struct TemplatesRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm",
                                                    abstract: "Delete a daemon's saved template NAME, or a --folder's file (its versions stay in the history; a daemon's file templates cannot be deleted).")

    @Argument(help: "The template's name.") var name: String
    @OptionGroup var options: ClientOptions
    @OptionGroup var localOptions: LocalTemplateOptions

    func run() throws {
        if let folder = localOptions.local {
            try localCall { () throws(TemplateLookupError) in try folder.remove(name) }
            print("\(LogText.escaped(name, limit: 200)): removed from \(folder.directory.path) (its versions stay in .versions/)")
            return
        }
        let client = try options.client()
        let reply = try clientCall { try client.request("template_delete", ["name": .string(name)]) }.content
        print("\(LogText.escaped(name, limit: 200)): deleted" + (reply["file_remains"] == .bool(true) ? " (the file template of that name is used again)" : ""))
    }
}

/// `pilot templates from-png IMAGE --name NAME --expose a,b`: a template from a finished image.
struct TemplatesFromPNG: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "from-png",
        abstract: "Turn the workflow embedded in a PNG SaveImage wrote into a template: the --expose parameters become typed inputs defaulting to this image's values; everything else is fixed as it was.")

    @Argument(help: "A PNG, JPEG or WebP written by SaveImage.") var png: String
    @Option(help: "The template's name.") var name: String
    @Option(help: "Comma-separated: template inputs to keep, or literal parameters to make inputs (steps, or node.param).")
    var expose: String = ""
    @Option(help: "Write the template here instead of printing it.") var output: String?
    @Flag(help: "Save it as NAME in the daemon (template_save), or in --folder.") var save = false
    @OptionGroup var options: ClientOptions
    @OptionGroup var templateOptions: TemplateOptions
    @OptionGroup var localOptions: LocalTemplateOptions

    func run() throws {
        guard let text = try? ImageFile.text(forKey: "pilot:workflow", inFileAt: png) else {
            printError("pilot: \(png) has no embedded workflow (no 'pilot:workflow' text chunk), or cannot be read")
            throw ExitCode(1)
        }
        let (graph, problems) = Validator(registry: .standard, templates: templateOptions.library.source).validate(text, file: png)
        guard problems.isEmpty else {
            for problem in problems { printError(problem.description) }
            throw ExitCode(1)
        }
        var template: WorkflowGraph
        do {
            template = try graph.exposing(expose.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty },
                                          registry: .standard)
        } catch {
            printError("pilot: \(error)")
            throw ExitCode(1)
        }
        template.name = name
        let yaml = template.yaml
        if save, let folder = localOptions.local {
            let saved = try localCall { () throws(TemplateLookupError) in try folder.save(name, text: yaml) }
            printError("pilot: saved \(LogText.escaped(name, limit: 200)) version \(saved.version ?? 0) in \(folder.directory.path)")
        } else if save {
            let client = try options.client()
            let saved = try clientCall { try client.request("template_save", ["name": .string(name), "text": .string(yaml)]) }
                .content["template"] ?? .null
            printError("pilot: saved \(LogText.escaped(name, limit: 200)) version \(saved["version"]?.intValue ?? 0)")
        }
        if let output {
            try yaml.write(toFile: output, atomically: true, encoding: .utf8)
        } else if !save {
            print(yaml, terminator: "")
        }
    }
}

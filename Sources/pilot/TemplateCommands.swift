import ArgumentParser
import Daemon
import Foundation
import Imaging
import Workflow

/// `pilot templates save NAME FILE`: a new version of a template in the daemon's store.
struct TemplatesSave: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "save",
        abstract: "Save FILE as the next version of template NAME in the daemon (validated first; shadows a file template of that name).")

    @Argument(help: "The template's name (letters, digits, _ . -).") var name: String
    @Argument(help: "The workflow YAML (or JSON) file.") var file: String
    @OptionGroup var options: ClientOptions

    func run() throws {
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
            printError("pilot: cannot read \(file): \(error.localizedDescription)")
            throw ExitCode(1)
        }
        let client = try options.client()
        let saved = try clientCall { try client.request("template_save", ["name": .string(name), "text": .string(text)]) }
            .content["template"] ?? .null
        print("\(LogText.escaped(name, limit: 200)): version \(saved["version"]?.intValue ?? 0), sha256 \(saved["sha256"]?.stringValue ?? "?")")
    }
}

/// `pilot templates show NAME[@VERSION]`: the text of a template.
struct TemplatesShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Print a daemon's template NAME, or version V of it with NAME@V.")

    @Argument(help: "NAME or NAME@VERSION.") var template: String
    @OptionGroup var options: ClientOptions

    func run() throws {
        var content: [String: JSONValue] = ["name": .string(template)]
        if let at = template.lastIndex(of: "@"), let version = Int(template[template.index(after: at)...]) {
            content = ["name": .string(String(template[..<at])), "version": .int(version)]
        }
        let client = try options.client()
        let shown = try clientCall { try client.request("template", content) }.content["template"] ?? .null
        print(shown["text"]?.stringValue ?? "", terminator: "")
    }
}

/// `pilot templates history NAME`: every saved version.
struct TemplatesHistory: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "List every saved version of a daemon's template NAME.")

    @Argument(help: "The template's name.") var name: String
    @OptionGroup var options: ClientOptions

    func run() throws {
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
                                                    abstract: "Delete a daemon's saved template NAME (its versions stay in the history; file templates cannot be deleted).")

    @Argument(help: "The template's name.") var name: String
    @OptionGroup var options: ClientOptions

    func run() throws {
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

    @Argument(help: "A PNG written by SaveImage.") var png: String
    @Option(help: "The template's name.") var name: String
    @Option(help: "Comma-separated: template inputs to keep, or literal parameters to make inputs (steps, or node.param).")
    var expose: String = ""
    @Option(help: "Write the template here instead of printing it.") var output: String?
    @Flag(help: "Save it in the daemon (template_save) as NAME.") var save = false
    @OptionGroup var options: ClientOptions

    func run() throws {
        guard let text = try? PNG.read(path: png).text(forKey: "pilot:workflow") else {
            printError("pilot: \(png) has no embedded workflow (no 'pilot:workflow' text chunk), or cannot be read")
            throw ExitCode(1)
        }
        let (graph, problems) = Validator(registry: .standard).validate(text, file: png)
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
        if save {
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

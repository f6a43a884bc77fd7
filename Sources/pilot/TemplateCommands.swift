import ArgumentParser
import Daemon
import Foundation
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

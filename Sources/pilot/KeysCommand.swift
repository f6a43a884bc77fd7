import ArgumentParser
import Daemon
import Foundation
import Workflow

/// `pilot keys`: client identities of a running daemon (an admin's connection file is needed).
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Issue, list and revoke client keys: each client signs with its own key and sees only its own jobs.",
        discussion: """
            The daemon's own connection.json is the admin client 'owner'. `pilot keys add NAME` writes a \
            connection file for another client (its own HMAC key and, under CURVE, its own key pair on the \
            daemon's allow-list); hand that file to the client. See docs/security.md.
            """,
        subcommands: [Add.self, List.self, Revoke.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a client key and write its connection file (mode 0600).")

        @Argument(help: "The client's name: letters, digits, '.', '_', '-' (names are never reused).")
        var name: String

        @Option(help: "user (its own jobs only) or admin (every job, prune, keys).")
        var role = "user"

        @Option(help: "Highest priority its submits may ask for (default 0; 1000 for admins).")
        var maxPriority: Int?

        @Option(help: "How many of its jobs may be queued or running at once (default 16).")
        var maxQueued: Int?

        @Option(name: .shortAndLong, help: "Where to write the connection file (default NAME.connection.json).")
        var output: String?

        @OptionGroup var options: ClientOptions

        func run() throws {
            var content: [String: JSONValue] = ["name": .string(name), "role": .string(role)]
            if let maxPriority { content["max_priority"] = .int(maxPriority) }
            if let maxQueued { content["max_queued"] = .int(maxQueued) }
            let path = output ?? "\(name).connection.json"
            guard !FileManager.default.fileExists(atPath: path) else {
                throw ValidationError("\(path) exists; choose another --output (a connection file is never overwritten)")
            }
            let reply = try clientCall { try options.client().request("client_add", content) }
            guard let file = reply.content["connection"] else {
                printError("pilot: the daemon's reply has no connection file")
                throw ExitCode(3)
            }
            let info = try ConnectionInfo.read(json: file, source: "the daemon's reply")
            try info.write(to: URL(fileURLWithPath: path))
            print("issued client '\(name)' (\(role)); its connection file is \(path): give it only to that client")
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the clients issued, revoked ones included.")

        @OptionGroup var options: ClientOptions

        func run() throws {
            let reply = try clientCall { try options.client().request("clients") }
            print("name".padding(toLength: 20, withPad: " ", startingAt: 0) + " role   max_priority max_queued curve state")
            for client in reply.content["clients"]?.arrayValue ?? [] {
                let name = LogText.escaped(client["name"]?.stringValue ?? "?", limit: 64)
                let role = client["role"]?.stringValue ?? "?"
                let state = client["revoked"]?.stringValue.map { "revoked \($0)" } ?? "active"
                print(name.padding(toLength: 20, withPad: " ", startingAt: 0) + " "
                      + role.padding(toLength: 6, withPad: " ", startingAt: 0) + " "
                      + String(format: "%12d %10d ", client["max_priority"]?.intValue ?? 0, client["max_queued"]?.intValue ?? 0)
                      + (client["curve"]?.boolValue == true ? "yes   " : "no    ") + state)
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a client key: its requests are refused at once and, under CURVE, it cannot connect again.")

        @Argument(help: "The client's name.")
        var name: String

        @OptionGroup var options: ClientOptions

        func run() throws {
            _ = try clientCall { try options.client().request("client_revoke", ["name": .string(name)]) }
            print("revoked client '\(name)'")
        }
    }
}

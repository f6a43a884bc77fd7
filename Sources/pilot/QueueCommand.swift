import ArgumentParser
import Daemon
import Foundation
import Workflow

/// `pilot queue`: the daemon's queue, its pause, and where jobs stand in it.
struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "Show the daemon's queue, pause or resume it, or move a queued job.",
        discussion: """
            A paused queue starts no job (the running one runs on) until it resumes; the pause is kept across \
            restarts. Pausing, resuming and moving to the front are for admin clients; a user client sees and \
            re-prioritises its own queued jobs, within its priority cap.
            """,
        subcommands: [Show.self, Pause.self, Resume.self, Move.self],
        defaultSubcommand: Show.self)

    /// Prints a `queue` reply: the pause, the length, and each listed job's position.
    static func print(_ reply: JSONValue) {
        let paused = reply["paused"] == .bool(true)
        Swift.print("queue: \(paused ? "paused" : "running"), \(reply["queued"]?.intValue ?? 0) queued"
                    + (reply["running"]?.stringValue.map { ", running \($0)" } ?? ""))
        for job in reply["jobs"]?.arrayValue ?? [] {
            let template = job["template"]?.stringValue.map { " \($0)" } ?? ""
            Swift.print("  \(job["position"]?.intValue ?? 0)  \(job["id"]?.stringValue ?? "?")  priority \(job["priority"]?.intValue ?? 0)"
                        + "  \(job["owner"]?.stringValue ?? "")\(template)")
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "status", abstract: "The queue in order (your own jobs, or all for an admin).")
        @OptionGroup var options: ClientOptions

        func run() throws {
            QueueCommand.print(try clientCall { try options.client().request("queue").content })
        }
    }

    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start no further job until `pilot queue resume` (admins).")
        @OptionGroup var options: ClientOptions

        func run() throws {
            QueueCommand.print(try clientCall { try options.client().request("queue", ["action": .string("pause")]).content })
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start queued jobs again (admins).")
        @OptionGroup var options: ClientOptions

        func run() throws {
            QueueCommand.print(try clientCall { try options.client().request("queue", ["action": .string("resume")]).content })
        }
    }

    struct Move: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a queued job to the front (admins) or give it another priority (−1000…1000, within your cap).")

        @Argument(help: "A queued job's id.")
        var job: String

        @Flag(help: "Run it next, ahead of every priority.")
        var front = false

        @Option(help: "Its new priority (higher runs first).")
        var priority: Int?

        @OptionGroup var options: ClientOptions

        func validate() throws {
            guard front != (priority != nil) else { throw ValidationError("give either --front or --priority N") }
        }

        func run() throws {
            var content: [String: JSONValue] = ["job": .string(job)]
            if front { content["to"] = .string("front") }
            if let priority { content["priority"] = .int(priority) }
            let reply = try clientCall { try options.client().request("move", content).content }
            Swift.print("\(job): position \(reply["position"]?.intValue.map(String.init) ?? "?")")
        }
    }
}

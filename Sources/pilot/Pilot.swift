import ArgumentParser
import Nodes

@main
struct Pilot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pilot",
        abstract: "Multi-modal image inpainting with PILOT, from YAML workflows.",
        discussion: """
            PILOT fills the masked region of an image coherently by optimising the
            diffusion latent during sampling. Workflows are YAML graphs of typed
            nodes (`pilot nodes`); templates ship in Workflows/ (`pilot templates`).
            Try them on a tiny random-weight model: `pilot models create-tiny DIR`.
            """,
        version: PilotVersion.string,
        subcommands: [Serve.self, Submit.self, Watch.self, Status.self, Cancel.self, QueueCommand.self, Prune.self, ResultCommand.self,
                      Run.self, Validate.self, NodesCommand.self, Templates.self, WorkflowFrom.self,
                      Info.self, Inspect.self, Models.self, Keys.self, Worker.self])
}

enum PilotVersion {
    static let string = NodeLibrary.programVersion
}

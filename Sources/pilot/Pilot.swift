import ArgumentParser

@main
struct Pilot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pilot",
        abstract: "Multi-modal image inpainting with PILOT, from YAML workflows.",
        discussion: """
            PILOT fills the masked region of an image coherently by optimising the
            diffusion latent during sampling. This build carries the numerical
            foundation (tensors, autograd, safetensors and PNG I/O); the models,
            workflow engine and daemon arrive in later releases.
            """,
        version: PilotVersion.string,
        subcommands: [Info.self, Inspect.self, Models.self])
}

enum PilotVersion {
    static let string = "0.1.0"
}

import ArgumentParser
import Diffusion

/// `pilot models …`: model files on disk.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect Stable Diffusion models (diffusers folders and single-file checkpoints).",
        subcommands: [InspectModel.self])
}

struct InspectModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print a model's layout, family, files (dtypes, parameters, SHA-256) and whether it loads.")

    @Argument(help: "A diffusers folder or a single-file .safetensors checkpoint.")
    var path: String

    @Option(help: "A diffusers folder whose config files describe a single-file checkpoint.")
    var config: String?

    @Flag(help: "Skip the trial load (faster; reports files only).")
    var noLoad = false

    func run() throws {
        let report = try ModelInspector.inspect(path: path, config: config, load: !noLoad)
        print(report)
        if report.loadError != nil { throw ExitCode(1) }
    }
}

import ArgumentParser
import Diffusion

/// `pilot models …`: model files on disk.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect Stable Diffusion models (diffusers folders and single-file checkpoints).",
        subcommands: [InspectModel.self, CreateTinyModel.self])
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

struct CreateTinyModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-tiny",
        abstract: "Write a tiny random-weight SD 1.x- or SDXL-style model (diffusers layout) to try workflows without real weights.",
        discussion: """
            Its images are coloured noise: it is for exercising workflows, the CLI and the daemon in seconds. \
            Adapters shaped for it are written into the same folder, for the adapter templates: controlnet/, \
            t2i-adapter/ (sd15 only), ip-adapter.safetensors with image_encoder/, and lora.safetensors.
            """)

    @Argument(help: "An empty or new folder.")
    var folder: String

    @Option(help: "Seed for the random weights.")
    var seed: UInt64 = 0

    @Option(help: "The layout: \(TinyModel.Family.allCases.map(\.rawValue).joined(separator: " or ")).")
    var family: TinyModel.Family = .sd15

    func run() throws {
        let path = try TinyModel.create(at: folder, seed: seed, family: family)
        print("wrote a tiny random-weight model and adapters to \(path) (its images are noise; it is for trying workflows)")
    }
}

extension TinyModel.Family: ExpressibleByArgument {}

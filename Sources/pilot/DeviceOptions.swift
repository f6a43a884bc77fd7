import ArgumentParser
import Diffusion
import Foundation
import Tensors

/// `--device` and `--precision`, shared by `pilot run` and `pilot serve`.
struct DeviceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Where models run: auto (a CUDA GPU when one works, else the CPU), cpu, cuda or cuda:N (default: $PILOT_DEVICE, else auto).",
                               valueName: "device"))
    var device: String?

    @Option(help: ArgumentHelp("fp32, tf32, fp16 or bf16 (default: fp16 on a GPU, fp32 on the CPU).", valueName: "precision"))
    var precision: String?

    @Flag(help: "On the CPU, keep 16-bit checkpoints' layer weights 16-bit and widen each as its layer runs: half the memory (SDXL), a little slower, the same results (default: $PILOT_COMPACT_WEIGHTS=1).")
    var compactWeights = false

    /// Resolves the request and says on standard error which device was
    /// chosen and why (unless `quiet`); unless `place` is false, starts that
    /// device and places model weights there from now on (`pilot serve`
    /// leaves that to its worker process).
    func apply(command: String, place: Bool = true, quiet: Bool = false) throws -> DeviceChoice {
        let choice: DeviceChoice
        do {
            let request = try DeviceRequest(parsing: device ?? ProcessInfo.processInfo.environment["PILOT_DEVICE"] ?? "auto")
            choice = try request.resolve(precision: try precision.map(ComputePrecision.init(parsing:)))
        } catch {
            throw ValidationError("\(error)")
        }
        if place, case .cuda(let i) = choice.device {
            do {
                let backend = try CUDARuntime.backend(ordinal: i)
                backend.allowTF32 = choice.precision == .tf32
            } catch {
                throw ValidationError("cuda:\(i) could not be started: \(error)")
            }
        }
        if place {
            WeightPlacement.current = WeightPlacement(device: choice.device, elementType: choice.precision.elementType,
                                                      compactHost: compactWeights || WeightPlacement.host.compactHost)
        }
        if !quiet { FileHandle.standardError.write(Data("pilot \(command): device \(choice)\n".utf8)) }
        return choice
    }

    /// The same choice as arguments for a child process (`pilot worker`), resolved: `auto` is not probed twice.
    func arguments(for choice: DeviceChoice) -> [String] {
        ["--device", "\(choice.device)", "--precision", choice.precision.rawValue] + (compactWeights ? ["--compact-weights"] : [])
    }
}

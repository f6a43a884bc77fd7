import Diffusion
import Foundation
import Tensors

/// A bound on how much UNet work one sampling node may start, so a job that
/// would run for days (1000 steps of a 4096×4096 image) is refused at once
/// with the figures, instead of holding the worker until the time limit.
///
/// The unit is a *cell pass*: one UNet forward over one latent cell (a
/// backward pass counts two more). The paper's text configuration at
/// 512×512 (100 guided steps of batch 2, 100 gradient passes) is 500 forward
/// equivalents × 4096 cells ≈ 2 M; the default limit, 64 M, is 32 times
/// that (SDXL's 1024×1024 paper configuration is 8 M; a 2048×2048 one 33 M).
/// `PILOT_MAX_UNET_WORK` raises or lowers it.
public enum WorkLimit {
    public static let defaultCellPasses = 64_000_000

    public static var cellPasses: Int {
        ProcessInfo.processInfo.environment["PILOT_MAX_UNET_WORK"].flatMap(Int.init).flatMap { $0 > 0 ? $0 : nil }
            ?? defaultCellPasses
    }

    /// Throws when `guidedSteps` forwards of `batch` rows plus
    /// `gradientPasses` forward+backward passes over a `height`×`width`
    /// latent exceed the limit.
    public static func check(node: String, guidedSteps: Int, batch: Int, gradientPasses: Int, height: Int, width: Int,
                      limit: Int = cellPasses) throws {
        let forwards = guidedSteps.multipliedReportingOverflow(by: batch).partialValue + 3 * gradientPasses
        let (work, overflow) = forwards.multipliedReportingOverflow(by: height * width)
        guard overflow || work > limit else { return }
        let shown = overflow ? "more than \(Int.max)" : "\(work)"
        throw NodeError("\(node) would run \(guidedSteps) guided step(s) and \(gradientPasses) gradient pass(es) on a "
                        + "\(8 * width)×\(8 * height) image: \(shown) UNet cell passes, over the limit of \(limit) "
                        + "(about \(limit / 2_000_000)× PILOT's 512×512 paper configuration); lower the steps or the size, "
                        + "or raise PILOT_MAX_UNET_WORK")
    }
}

/// How many candidates of a batch one UNet call takes: all of them unless
/// the call's working memory would pass half the memory of the device the
/// UNet computes on (the machine's RAM, or the GPU's memory), the other half
/// being left to the weights and the rest of the run.
///
/// The working memory grows about linearly in latent cells and alike across
/// families (measured peak resident set above the weights, Benchmarks/
/// README.md): a gradient pass, whose activations stay for the backward
/// pass, about 640 KiB per cell per candidate (SD 1.5 at 64×64: 2.4 GiB;
/// SDXL at 128×128: 10.5 GiB); a guided forward about 160 KiB per cell per
/// candidate (its two rows). `PILOT_BATCH_PER_CALL` sets the figure instead.
enum BatchMemory {
    static let gradientBytesPerCell = 640 << 10
    static let guidedBytesPerCell = 160 << 10

    static func candidatesPerCall(unet: UNet2DConditionModel, latentHeight: Int, latentWidth: Int, gradient: Bool) -> Int {
        if let text = ProcessInfo.processInfo.environment["PILOT_BATCH_PER_CALL"], let n = Int(text), n > 0 { return n }
        return candidatesPerCall(memory: memory(of: unet.device), cells: latentHeight * latentWidth, gradient: gradient)
    }

    /// Candidates whose working memory fits half of `memory` bytes (at least one).
    static func candidatesPerCall(memory: Int, cells: Int, gradient: Bool) -> Int {
        let perCandidate = max(1, cells) * (gradient ? gradientBytesPerCell : guidedBytesPerCell)
        return max(1, memory / 2 / perCandidate)
    }

    /// The memory of `device` in bytes.
    static func memory(of device: Device) -> Int {
        if case let .cuda(ordinal) = device, case let .success(runtime) = CUDARuntime.shared(),
           let info = runtime.probe.devices.first(where: { $0.ordinal == ordinal }) {
            return info.totalMemory
        }
        return Int(clamping: ProcessInfo.processInfo.physicalMemory)
    }
}

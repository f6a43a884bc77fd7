import Foundation

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

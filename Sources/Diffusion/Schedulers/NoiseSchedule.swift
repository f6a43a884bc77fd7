import Foundation
import Tensors

/// What the model predicts.
public enum PredictionType: String, Sendable {
    case epsilon
    case vPrediction = "v_prediction"
    case sample
}

/// How inference timesteps are spaced over the training schedule (diffusers'
/// `timestep_spacing`).
public enum TimestepSpacing: String, Sendable {
    case leading, trailing, linspace
}

/// The training noise schedule and inference options (`scheduler/scheduler_config.json`).
public struct NoiseScheduleConfig: Equatable, Sendable {
    public var trainSteps = 1000
    public var betaStart: Double = 0.00085
    public var betaEnd: Double = 0.012
    public var betaSchedule = "scaled_linear"
    public var prediction = PredictionType.epsilon
    public var stepsOffset = 1
    public var setAlphaToOne = false
    public var spacing = TimestepSpacing.leading

    public init() {}

    public init(_ c: JSONConfig) throws {
        trainSteps = try c.int("num_train_timesteps", default: 1000)
        betaStart = Double(try c.float("beta_start", default: 0.0001))
        betaEnd = Double(try c.float("beta_end", default: 0.02))
        betaSchedule = try c.string("beta_schedule", default: "linear")
        guard ["linear", "scaled_linear"].contains(betaSchedule) else {
            throw ModelLoadError.badConfig(path: c.path, reason: "unsupported beta_schedule \(betaSchedule) (linear, scaled_linear)")
        }
        let p = try c.string("prediction_type", default: "epsilon")
        guard let pt = PredictionType(rawValue: p) else {
            throw ModelLoadError.badConfig(path: c.path, reason: "unsupported prediction_type \(p)")
        }
        prediction = pt
        stepsOffset = try c.int("steps_offset", default: 0)
        setAlphaToOne = try c.bool("set_alpha_to_one", default: true)
        let s = try c.string("timestep_spacing", default: "leading")
        guard let sp = TimestepSpacing(rawValue: s) else {
            throw ModelLoadError.badConfig(path: c.path, reason: "unsupported timestep_spacing \(s)")
        }
        spacing = sp
        if try c.bool("clip_sample", default: false) {
            throw ModelLoadError.badConfig(path: c.path, reason: "clip_sample true is not supported (SD uses false)")
        }
    }

    /// Stable Diffusion 1.x/2.x: scaled-linear betas 0.00085→0.012, leading
    /// spacing with offset 1, set_alpha_to_one false.
    public static func stableDiffusion(_ prediction: PredictionType = .epsilon) -> NoiseScheduleConfig {
        var c = NoiseScheduleConfig()
        c.prediction = prediction
        return c
    }

    /// ᾱ_t for t = 0 ..< trainSteps. Betas are formed as diffusers does in
    /// float32 (`linspace(√β₀, √β₁)²`), the cumulative product accumulated in
    /// double and rounded to float32 (as torch's CPU `cumprod` does).
    public var alphasCumprod: [Float] {
        let n = trainSteps
        var betas = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let f = n == 1 ? 0 : Double(i) / Double(n - 1)
            if betaSchedule == "scaled_linear" {
                let s = Float(betaStart.squareRoot() + (betaEnd.squareRoot() - betaStart.squareRoot()) * f)
                betas[i] = s * s
            } else {
                betas[i] = Float(betaStart + (betaEnd - betaStart) * f)
            }
        }
        // torch's CPU cumprod accumulates float32 input in double.
        var acc: Double = 1
        return betas.map { b in acc *= Double(1 - b); return Float(acc) }
    }

    /// Integer timesteps for `steps` inference steps, descending, per `spacing`.
    public func timesteps(steps: Int) -> [Int] {
        precondition(steps >= 1 && steps <= trainSteps, "steps must be in 1...\(trainSteps)")
        switch spacing {
        case .leading:
            // With more than half the training steps the offset would push
            // the first timestep past the schedule (diffusers then indexes
            // out of range): it is held at the last training step.
            let ratio = trainSteps / steps
            return (0..<steps).reversed().map { min($0 * ratio + stepsOffset, trainSteps - 1) }
        case .trailing:
            let ratio = Double(trainSteps) / Double(steps)
            return stride(from: Double(trainSteps), to: 0, by: -ratio).map { Int($0.rounded()) - 1 }
        case .linspace:
            return (0..<steps).reversed().map { i in
                Int((Double(i) * Double(trainSteps - 1) / Double(max(steps - 1, 1))).rounded(.toNearestOrEven))
            }
        }
    }
}

/// A sampler over the noise schedule. `timesteps` are what the UNet is
/// called with; `step` advances the sample by one inference step.
public protocol Scheduler {
    var timesteps: [Float] { get }
    /// σ of the initial noise (1 for DDIM).
    var initNoiseSigma: Float { get }
    /// The UNet input for step `i` (Euler/DPM scale by 1/√(σ²+1)).
    func scaleModelInput(_ sample: Tensor, step i: Int) -> Tensor
    /// The clean latent the model output at step `i` predicts (x̂₀, what
    /// the step moves toward): previews show it.
    func denoised(_ modelOutput: Tensor, step i: Int, sample: Tensor) -> Tensor
    /// The sample after step `i` given the model output.
    mutating func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, noise: Tensor?) -> Tensor
    /// `original` (a clean latent) noised to step `i`'s noise level, as
    /// diffusers' `add_noise` at `timesteps[i]`: where image-to-image starts.
    func addNoise(_ original: Tensor, noise: Tensor, step i: Int) -> Tensor
}

/// Image-to-image's denoise strength, as diffusers' img2img pipelines read it.
public enum DenoiseStrength {
    /// The step a run of `steps` starts at for `strength` in (0, 1]:
    /// `steps − min(⌊steps · strength⌋, steps)`; strength 1 starts at 0
    /// (from noise at the first timestep). Throws when no step would run.
    public static func firstStep(steps: Int, strength: Double) throws -> Int {
        guard strength > 0, strength <= 1 else {
            throw DenoiseStrengthError("strength must be in (0, 1], found \(strength)")
        }
        let run = min(Int(Double(steps) * strength), steps)
        guard run >= 1 else {
            throw DenoiseStrengthError("strength \(strength) of \(steps) steps runs no step (⌊steps × strength⌋ = 0): raise either")
        }
        return steps - run
    }
}

public struct DenoiseStrengthError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

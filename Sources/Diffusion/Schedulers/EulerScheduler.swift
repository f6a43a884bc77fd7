import Foundation
import Tensors

/// Karras-σ helpers shared by the σ-space samplers.
enum SigmaSchedule {
    /// σ_t = √((1 − ᾱ)/ᾱ) at fractional training timesteps (linear interpolation).
    static func sigmas(alphasCumprod ac: [Float], at timesteps: [Double]) -> [Double] {
        let base = ac.map { Double(((1 - $0) / $0).squareRoot()) }
        return timesteps.map { t in
            let lo = Int(t.rounded(.down)), hi = min(lo + 1, base.count - 1)
            let f = t - Double(lo)
            return base[lo] * (1 - f) + base[hi] * f
        }
    }

    /// σ evenly spaced in log σ between the schedule's σ_max and σ_min, as
    /// diffusers' `use_exponential_sigmas`.
    static func exponential(_ sigmas: [Double]) -> [Double] {
        guard sigmas.count > 1, let high = sigmas.first, let low = sigmas.last else { return sigmas }
        return exponential(from: high, to: low, count: sigmas.count)
    }

    /// `n` σ evenly spaced in log σ from `high` down to `low`.
    static func exponential(from high: Double, to low: Double, count n: Int) -> [Double] {
        guard n > 1 else { return [high] }
        let (a, b) = (log(high), log(low))
        return (0..<n).map { i in exp(a + Double(i) / Double(n - 1) * (b - a)) }
    }

    /// Karras et al.'s σ ramp between the schedule's σ_max and σ_min (ρ = 7),
    /// as diffusers' `use_karras_sigmas`.
    static func karras(_ sigmas: [Double]) -> [Double] {
        guard sigmas.count > 1, let high = sigmas.first, let low = sigmas.last else { return sigmas }
        return karras(from: high, to: low, count: sigmas.count)
    }

    /// `n` σ on Karras's ρ = 7 ramp from `high` down to `low`.
    static func karras(from high: Double, to low: Double, count n: Int) -> [Double] {
        guard n > 1 else { return [high] }
        let rho = 7.0
        let (maxInv, minInv) = (pow(high, 1 / rho), pow(low, 1 / rho))
        return (0..<n).map { i in pow(maxInv + Double(i) / Double(n - 1) * (minInv - maxInv), rho) }
    }

    /// The fractional training timestep of `sigma`: linear in log σ between
    /// the two training steps around it, as diffusers' `_sigma_to_t`.
    static func timestep(forSigma sigma: Double, logSigmas: [Double]) -> Double {
        let logSigma = log(max(sigma, 1e-10))
        // The last index whose log σ is at most this one, kept below the end.
        var low = 0
        for (i, value) in logSigmas.enumerated() where logSigma - value >= 0 { low = i }
        low = min(low, logSigmas.count - 2)
        let (a, b) = (logSigmas[low], logSigmas[low + 1])
        let w = min(max((a - logSigma) / (a - b), 0), 1)
        return (1 - w) * Double(low) + w * Double(low + 1)
    }

    /// Timesteps as diffusers computes them (float) for `spacing`.
    static func timesteps(_ c: NoiseScheduleConfig, steps: Int) -> [Double] {
        switch c.spacing {
        case .linspace:
            return (0..<steps).reversed().map { Double($0) * Double(c.trainSteps - 1) / Double(max(steps - 1, 1)) }
        case .leading, .trailing:
            return c.timesteps(steps: steps).map(Double.init)
        }
    }
}

/// Where the σ of a σ-space sampler's steps lie.
public enum SigmaSpacing: String, Sendable, CaseIterable {
    /// The schedule's own timestep spacing (`timestep_spacing`).
    case schedule
    /// Karras et al.'s ramp, ρ = 7 (diffusers' `use_karras_sigmas`).
    case karras
    /// Even in log σ (diffusers' `use_exponential_sigmas`).
    case exponential
}

/// Euler (Karras et al. 2022, Algorithm 2 without churn) as diffusers'
/// `EulerDiscreteScheduler`.
public struct EulerScheduler: Scheduler {
    public let config: NoiseScheduleConfig
    let sigmas: [Double]          // one per step, then 0
    let floatTimesteps: [Double]

    /// `spacing`: where the steps' σ lie (Karras, exponential: the σ are
    /// placed first and the timesteps follow from them).
    public init(config: NoiseScheduleConfig, steps: Int, spacing: SigmaSpacing = .schedule) {
        self.config = config
        let spaced = SigmaSchedule.timesteps(config, steps: steps)
        let sigmas = SigmaSchedule.sigmas(alphasCumprod: config.alphasCumprod, at: spaced)
        let ramp: [Double]
        switch spacing {
        case .schedule:
            floatTimesteps = spaced
            self.sigmas = sigmas + [0]
            return
        case .karras: ramp = SigmaSchedule.karras(sigmas)
        case .exponential: ramp = SigmaSchedule.exponential(sigmas)
        }
        let logSigmas = config.alphasCumprod.map { Double(Float(log(((1 - $0) / $0).squareRoot()))) }
        floatTimesteps = ramp.map { SigmaSchedule.timestep(forSigma: $0, logSigmas: logSigmas) }
        self.sigmas = ramp + [0]
    }

    public var timesteps: [Float] { floatTimesteps.map { Float($0) } }

    public var initNoiseSigma: Float {
        let m = sigmas.max() ?? 1
        return Float(config.spacing == .leading ? (m * m + 1).squareRoot() : m)
    }

    public var sigmaValues: [Float] { sigmas.map { Float($0) } }

    public func scaleModelInput(_ sample: Tensor, step i: Int) -> Tensor {
        sample * Float(1 / (sigmas[i] * sigmas[i] + 1).squareRoot())
    }

    public func addNoise(_ original: Tensor, noise: Tensor, step i: Int) -> Tensor {
        original + noise * Float(sigmas[i])
    }

    public func denoised(_ modelOutput: Tensor, step i: Int, sample: Tensor) -> Tensor {
        let s = sigmas[i]
        switch config.prediction {
        case .epsilon: return sample - modelOutput * Float(s)
        case .vPrediction: return modelOutput * Float(-s / (s * s + 1).squareRoot()) + sample * Float(1 / (s * s + 1))
        case .sample: return modelOutput
        }
    }

    public mutating func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, noise: Tensor?) -> Tensor {
        let s = sigmas[i]
        let derivative = (sample - denoised(modelOutput, step: i, sample: sample)) / Float(s)
        return sample + derivative * Float(sigmas[i + 1] - s)
    }
}

/// Euler ancestral as diffusers' `EulerAncestralDiscreteScheduler`: each
/// step goes down to σ_down with the Euler derivative, then adds fresh noise
/// of σ_up (σ_up² = σ_next²(σ² − σ_next²)/σ², σ_down² = σ_next² − σ_up²).
/// The noise comes from the caller (`step`'s `noise`, one draw a step), so
/// a run is reproducible from its seed or from recorded noise; without it
/// the step is deterministic (σ_up not added).
public struct EulerAncestralScheduler: Scheduler {
    var euler: EulerScheduler

    public init(config: NoiseScheduleConfig, steps: Int, spacing: SigmaSpacing = .schedule) {
        euler = EulerScheduler(config: config, steps: steps, spacing: spacing)
    }

    public var timesteps: [Float] { euler.timesteps }
    public var initNoiseSigma: Float { euler.initNoiseSigma }

    public func scaleModelInput(_ sample: Tensor, step i: Int) -> Tensor { euler.scaleModelInput(sample, step: i) }

    public func addNoise(_ original: Tensor, noise: Tensor, step i: Int) -> Tensor { euler.addNoise(original, noise: noise, step: i) }

    public func denoised(_ modelOutput: Tensor, step i: Int, sample: Tensor) -> Tensor {
        euler.denoised(modelOutput, step: i, sample: sample)
    }

    public mutating func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, noise: Tensor?) -> Tensor {
        let s = euler.sigmas[i], next = euler.sigmas[i + 1]
        let up = (next * next * (s * s - next * next) / (s * s)).squareRoot()
        let down = (next * next - up * up).squareRoot()
        let derivative = (sample - euler.denoised(modelOutput, step: i, sample: sample)) / Float(s)
        let stepped = sample + derivative * Float(down - s)
        guard let noise else { return stepped }
        return stepped + noise * Float(up)
    }
}

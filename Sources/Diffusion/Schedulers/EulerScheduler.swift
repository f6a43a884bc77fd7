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

/// Euler (Karras et al. 2022, Algorithm 2 without churn) as diffusers'
/// `EulerDiscreteScheduler`.
public struct EulerScheduler: Scheduler {
    public let config: NoiseScheduleConfig
    let sigmas: [Double]          // one per step, then 0
    let floatTimesteps: [Double]

    public init(config: NoiseScheduleConfig, steps: Int) {
        self.config = config
        floatTimesteps = SigmaSchedule.timesteps(config, steps: steps)
        sigmas = SigmaSchedule.sigmas(alphasCumprod: config.alphasCumprod, at: floatTimesteps) + [0]
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

    public mutating func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, noise: Tensor?) -> Tensor {
        let s = sigmas[i]
        let x0: Tensor
        switch config.prediction {
        case .epsilon: x0 = sample - modelOutput * Float(s)
        case .vPrediction: x0 = modelOutput * Float(-s / (s * s + 1).squareRoot()) + sample * Float(1 / (s * s + 1))
        case .sample: x0 = modelOutput
        }
        let derivative = (sample - x0) / Float(s)
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

    public init(config: NoiseScheduleConfig, steps: Int) {
        euler = EulerScheduler(config: config, steps: steps)
    }

    public var timesteps: [Float] { euler.timesteps }
    public var initNoiseSigma: Float { euler.initNoiseSigma }

    public func scaleModelInput(_ sample: Tensor, step i: Int) -> Tensor { euler.scaleModelInput(sample, step: i) }

    public func addNoise(_ original: Tensor, noise: Tensor, step i: Int) -> Tensor { euler.addNoise(original, noise: noise, step: i) }

    public mutating func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, noise: Tensor?) -> Tensor {
        let s = euler.sigmas[i], next = euler.sigmas[i + 1]
        let up = (next * next * (s * s - next * next) / (s * s)).squareRoot()
        let down = (next * next - up * up).squareRoot()
        let x0: Tensor
        switch euler.config.prediction {
        case .epsilon: x0 = sample - modelOutput * Float(s)
        case .vPrediction: x0 = modelOutput * Float(-s / (s * s + 1).squareRoot()) + sample * Float(1 / (s * s + 1))
        case .sample: x0 = modelOutput
        }
        let derivative = (sample - x0) / Float(s)
        let stepped = sample + derivative * Float(down - s)
        guard let noise else { return stepped }
        return stepped + noise * Float(up)
    }
}

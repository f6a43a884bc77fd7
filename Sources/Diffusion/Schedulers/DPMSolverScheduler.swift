import Foundation
import Tensors

/// DPM-Solver++ 2M (Lu et al. 2022) as diffusers' `DPMSolverMultistepScheduler`
/// with `algorithm_type="dpmsolver++"`, `solver_order=2`, midpoint solver,
/// first-order first and final steps (`final_sigmas_type="zero"`).
public struct DPMSolverScheduler: Scheduler {
    public let config: NoiseScheduleConfig
    let sigmas: [Double]
    let floatTimesteps: [Double]
    private var previousX0: Tensor?

    public init(config: NoiseScheduleConfig, steps: Int) {
        self.config = config
        let ts: [Double]
        switch config.spacing {
        case .linspace:
            // diffusers: linspace(0, T−1, n+1).round()[::-1][:-1]
            ts = (1...steps).reversed().map { (Double($0) * Double(config.trainSteps - 1) / Double(steps)).rounded(.toNearestOrEven) }
        case .leading:
            // diffusers' DPM-Solver divides by n+1 here: (0...n)·(T // (n+1)), reversed, last dropped.
            let ratio = config.trainSteps / (steps + 1)
            ts = (1...steps).reversed().map { Double($0 * ratio + config.stepsOffset) }
        case .trailing:
            ts = config.timesteps(steps: steps).map(Double.init)
        }
        floatTimesteps = ts
        sigmas = SigmaSchedule.sigmas(alphasCumprod: config.alphasCumprod, at: ts) + [0]
    }

    public var timesteps: [Float] { floatTimesteps.map { Float($0) } }
    public var initNoiseSigma: Float { 1 }
    public var sigmaValues: [Float] { sigmas.map { Float($0) } }

    public func scaleModelInput(_ sample: Tensor, step i: Int) -> Tensor { sample }

    /// (α_t, σ_t) of the variance-preserving process for Karras σ.
    private func alphaSigma(_ s: Double) -> (Double, Double) {
        let a = 1 / (s * s + 1).squareRoot()
        return (a, s * a)
    }

    public func addNoise(_ original: Tensor, noise: Tensor, step i: Int) -> Tensor {
        let (a, s) = alphaSigma(sigmas[i])
        return original * Float(a) + noise * Float(s)
    }

    public func denoised(_ modelOutput: Tensor, step i: Int, sample: Tensor) -> Tensor {
        let (aS, sS) = alphaSigma(sigmas[i])
        switch config.prediction {
        case .epsilon: return (sample - modelOutput * Float(sS)) / Float(aS)
        case .vPrediction: return sample * Float(aS) - modelOutput * Float(sS)
        case .sample: return modelOutput
        }
    }

    public mutating func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, noise: Tensor?) -> Tensor {
        let (aS, sS) = alphaSigma(sigmas[i])
        let x0 = denoised(modelOutput, step: i, sample: sample)
        defer { previousX0 = x0 }
        let sT = sigmas[i + 1]
        if sT == 0 { return x0 }                      // final step to σ = 0
        let (aT, sigT) = alphaSigma(sT)
        let lambdaT = log(aT) - log(sigT), lambdaS = log(aS) - log(sS)
        let h = lambdaT - lambdaS
        let first = sample * Float(sigT / sS) - x0 * Float(aT * (exp(-h) - 1))
        guard i > 0, let prev = previousX0 else { return first }
        // Second order (midpoint): D1 = (x0 − x0_prev) / r0, r0 = h₀/h.
        let (aP, sP) = alphaSigma(sigmas[i - 1])
        let h0 = lambdaS - (log(aP) - log(sP))
        let r0 = h0 / h
        let d1 = (x0 - prev) * Float(1 / r0)
        return first - d1 * Float(0.5 * aT * (exp(-h) - 1))
    }
}

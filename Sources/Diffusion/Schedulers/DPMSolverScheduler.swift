import Foundation
import Tensors

/// DPM-Solver++ 2M (Lu et al. 2022) as diffusers' `DPMSolverMultistepScheduler`
/// with `algorithm_type="dpmsolver++"`, `solver_order=2`, midpoint solver,
/// first-order first and final steps (`final_sigmas_type="zero"`); with
/// `stochastic`, DPM++ 2M SDE (`algorithm_type="sde-dpmsolver++"`), which
/// adds fresh noise at every step (`step`'s `noise`, one draw a step). With
/// `spacing` Karras or exponential, the σ span the whole training schedule
/// (σ at t = T−1 down to t = 0) and each step's timestep is the integer
/// diffusers gives the one of its σ (nearest for Karras, truncated for
/// exponential).
public struct DPMSolverScheduler: Scheduler {
    public let config: NoiseScheduleConfig
    let sigmas: [Double]
    let floatTimesteps: [Double]
    /// DPM++ 2M SDE.
    public let stochastic: Bool
    private var previousX0: Tensor?

    public init(config: NoiseScheduleConfig, steps: Int, spacing: SigmaSpacing = .schedule, stochastic: Bool = false) {
        self.config = config
        self.stochastic = stochastic
        if spacing != .schedule {
            // The schedule's σ in float32, as diffusers computes them from alphas_cumprod.
            let full = config.alphasCumprod.map { Double(((1 - $0) / $0).squareRoot()) }
            let (high, low) = (full[full.count - 1], full[0])
            let ramp = spacing == .karras ? SigmaSchedule.karras(from: high, to: low, count: steps)
                                          : SigmaSchedule.exponential(from: high, to: low, count: steps)
            // log σ rounded to float32 from the exact log (numpy's float32 log agrees with it where
            // it matters here: σ_max, whose truncated timestep is T−2 only if log σ_max rounds up).
            let logSigmas = full.map { Double(Float(log($0))) }
            // diffusers rounds the Karras timesteps but truncates the exponential ones (cast to int64).
            let rule: FloatingPointRoundingRule = spacing == .karras ? .toNearestOrEven : .towardZero
            floatTimesteps = ramp.map { SigmaSchedule.timestep(forSigma: $0, logSigmas: logSigmas).rounded(rule) }
            sigmas = ramp + [0]
            return
        }
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
    func alphaSigma(_ s: Double) -> (Double, Double) {
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
        if sT == 0 { return x0 }                      // final step to σ = 0 (first order; e^{−h} = 0)
        let (aT, sigT) = alphaSigma(sT)
        let lambdaT = log(aT) - log(sigT), lambdaS = log(aS) - log(sS)
        let h = lambdaT - lambdaS
        // D1 = (x0 − x0_prev) / r0, r0 = h₀/h (second order, midpoint), nil at the first step.
        var d1: Tensor?
        if i > 0, let prev = previousX0 {
            let (aP, sP) = alphaSigma(sigmas[i - 1])
            let h0 = lambdaS - (log(aP) - log(sP))
            d1 = (x0 - prev) * Float(h / h0)
        }
        if stochastic {
            // x_t = σ_t/σ_s·e^{−h}·x + α_t(1 − e^{−2h})(D0 + ½D1) + σ_t√(1 − e^{−2h})·z
            let decay = 1 - exp(-2 * h)
            var x = sample * Float(sigT / sS * exp(-h)) + x0 * Float(aT * decay)
            if let d1 { x = x + d1 * Float(0.5 * aT * decay) }
            if let noise { x = x + noise * Float(sigT * decay.squareRoot()) }
            return x
        }
        let first = sample * Float(sigT / sS) - x0 * Float(aT * (exp(-h) - 1))
        guard let d1 else { return first }
        return first - d1 * Float(0.5 * aT * (exp(-h) - 1))
    }
}

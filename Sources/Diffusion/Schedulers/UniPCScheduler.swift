import Foundation
import Tensors

/// UniPC (Zhao et al. 2023) as diffusers' `UniPCMultistepScheduler` with its
/// defaults: order 2, the B(h) = e^h − 1 variant (`bh2`), predicting x0, a
/// corrector (UniC) at every step after the first, lower order at the last
/// step, final σ 0. Its steps and σ are those of ``DPMSolverScheduler``
/// (diffusers places them the same way), Karras or exponential σ included.
public struct UniPCScheduler: Scheduler {
    var grid: DPMSolverScheduler
    /// The x0 predictions of the last two steps, the newest last.
    private var predictions: [Tensor] = []
    /// The sample the last predictor started from, and that predictor's order.
    private var lastSample: Tensor?
    private var lastOrder = 1
    private var lowerOrderCount = 0

    public init(config: NoiseScheduleConfig, steps: Int, spacing: SigmaSpacing = .schedule) {
        grid = DPMSolverScheduler(config: config, steps: steps, spacing: spacing)
    }

    public var config: NoiseScheduleConfig { grid.config }
    public var timesteps: [Float] { grid.timesteps }
    public var initNoiseSigma: Float { 1 }
    public var sigmaValues: [Float] { grid.sigmaValues }

    public func scaleModelInput(_ sample: Tensor, step i: Int) -> Tensor { sample }

    public func addNoise(_ original: Tensor, noise: Tensor, step i: Int) -> Tensor {
        grid.addNoise(original, noise: noise, step: i)
    }

    public func denoised(_ modelOutput: Tensor, step i: Int, sample: Tensor) -> Tensor {
        grid.denoised(modelOutput, step: i, sample: sample)
    }

    /// λ = log α − log σ of the variance-preserving process at step i's σ: −log σ_karras.
    private func lambda(_ i: Int) -> Double { -log(grid.sigmas[i]) }

    /// (h·φ₁ = e^{−h} − 1 = B(h), the solver's coefficients b₁, b₂) for the step size h.
    private func coefficients(_ h: Double) -> (phi1: Double, b: [Double]) {
        let hh = -h
        let phi1 = expm1(hh)
        var phiK = phi1 / hh - 1
        let b1 = phiK / phi1
        phiK = phiK / hh - 0.5
        return (phi1, [b1, phiK * 2 / phi1])
    }

    public mutating func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, noise: Tensor?) -> Tensor {
        let x0 = denoised(modelOutput, step: i, sample: sample)
        var x = sample
        if i > 0, let last = lastSample, let previous = predictions.last {
            x = corrected(x0, previous: previous, last: last, step: i)
        }
        predictions.append(x0)
        if predictions.count > 2 { predictions.removeFirst() }
        let order = min(2, grid.floatTimesteps.count - i, lowerOrderCount + 1)
        lastOrder = order
        lastSample = x
        if lowerOrderCount < 2 { lowerOrderCount += 1 }
        return predicted(x, step: i, order: order)
    }

    /// UniP: from step i's sample to σ[i+1].
    private func predicted(_ x: Tensor, step i: Int, order: Int) -> Tensor {
        let m0 = predictions[predictions.count - 1]
        guard grid.sigmas[i + 1] > 0 else { return m0 }  // to σ = 0: e^{−h} = 0, first order
        let (aT, sT) = grid.alphaSigma(grid.sigmas[i + 1]), (_, sS) = grid.alphaSigma(grid.sigmas[i])
        let h = lambda(i + 1) - lambda(i)
        let (phi1, _) = coefficients(h)
        let base = x * Float(sT / sS) - m0 * Float(aT * phi1)
        guard order == 2 else { return base }
        let rk = (lambda(i - 1) - lambda(i)) / h
        let d1 = (predictions[predictions.count - 2] - m0) * Float(1 / rk)
        return base - d1 * Float(aT * phi1 * 0.5)
    }

    /// UniC: the sample at step i again, from the sample the last predictor
    /// started at (`last`) with the new x0 (the predictor's own result is not
    /// needed: x0-predicting UniC replaces it).
    private func corrected(_ x0: Tensor, previous m0: Tensor, last: Tensor, step i: Int) -> Tensor {
        let (aT, sT) = grid.alphaSigma(grid.sigmas[i]), (_, sS) = grid.alphaSigma(grid.sigmas[i - 1])
        let h = lambda(i) - lambda(i - 1)
        let (phi1, b) = coefficients(h)
        let base = last * Float(sT / sS) - m0 * Float(aT * phi1)
        let dT = x0 - m0
        guard lastOrder == 2, predictions.count == 2 else {
            return base - dT * Float(aT * phi1 * 0.5)
        }
        // ρ solves [[1, 1], [r, 1]]·ρ = b, r = (λ_{s1} − λ_{s0})/h.
        let rk = (lambda(i - 2) - lambda(i - 1)) / h
        let rho1 = (b[0] - b[1]) / (1 - rk), rho2 = b[0] - rho1
        let d1 = (predictions[0] - m0) * Float(1 / rk)
        return base - (d1 * Float(rho1) + dT * Float(rho2)) * Float(aT * phi1)
    }
}

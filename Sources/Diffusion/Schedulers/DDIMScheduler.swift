import Tensors

/// DDIM (Song et al. 2021) exactly as diffusers' `DDIMScheduler` (no sample
/// clipping, no thresholding): ε or v prediction, η ≥ 0.
public struct DDIMScheduler: Scheduler {
    public let config: NoiseScheduleConfig
    public let alphasCumprod: [Float]
    public let integerTimesteps: [Int]
    public let eta: Float
    let finalAlphaCumprod: Float
    let stride: Int

    public init(config: NoiseScheduleConfig, steps: Int, eta: Float = 0) {
        self.config = config
        alphasCumprod = config.alphasCumprod
        integerTimesteps = config.timesteps(steps: steps)
        self.eta = eta
        finalAlphaCumprod = config.setAlphaToOne ? 1 : alphasCumprod[0]
        stride = config.trainSteps / steps
    }

    public var timesteps: [Float] { integerTimesteps.map(Float.init) }
    public var initNoiseSigma: Float { 1 }

    public func scaleModelInput(_ sample: Tensor, step i: Int) -> Tensor { sample }

    public func addNoise(_ original: Tensor, noise: Tensor, step i: Int) -> Tensor {
        let a = alphaCumprod(integerTimesteps[i])
        return original * a.squareRoot() + noise * (1 - a).squareRoot()
    }

    /// ᾱ at training timestep `t` (negative: the final ᾱ).
    public func alphaCumprod(_ t: Int) -> Float { t >= 0 ? alphasCumprod[t] : finalAlphaCumprod }

    /// The one-step reconstruction x̂₀ and the implied ε for step `i`.
    public func predictOriginal(_ modelOutput: Tensor, step i: Int, sample: Tensor) -> (x0: Tensor, epsilon: Tensor) {
        let a = alphaCumprod(integerTimesteps[i])
        let sa = a.squareRoot(), sb = (1 - a).squareRoot()
        switch config.prediction {
        case .epsilon:
            return ((sample - modelOutput * sb) / sa, modelOutput)
        case .vPrediction:
            return (sample * sa - modelOutput * sb, modelOutput * sa + sample * sb)
        case .sample:
            return (modelOutput, (sample - modelOutput * sa) / sb)
        }
    }

    public func denoised(_ modelOutput: Tensor, step i: Int, sample: Tensor) -> Tensor {
        predictOriginal(modelOutput, step: i, sample: sample).x0
    }

    public mutating func step(_ modelOutput: Tensor, step i: Int, sample: Tensor, noise: Tensor?) -> Tensor {
        let t = integerTimesteps[i]
        let a = alphaCumprod(t), aPrev = alphaCumprod(t - stride)
        let (x0, eps) = predictOriginal(modelOutput, step: i, sample: sample)
        let variance = ((1 - aPrev) / (1 - a)) * (1 - a / aPrev)
        let std = eta * variance.squareRoot()
        var prev = x0 * aPrev.squareRoot() + eps * (1 - aPrev - std * std).squareRoot()
        if eta > 0 {
            precondition(noise != nil, "DDIM with eta > 0 needs variance noise")
            if let noise { prev = prev + noise * std }
        }
        return prev
    }
}

import Tensors

/// `nn.Linear`: `y = x·Wᵀ + b`.
public struct Linear {
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ w: WeightLoader, in inF: Int, out outF: Int, bias: Bool = true) throws {
        weight = try w.tensor("weight", [outF, inF])
        self.bias = bias ? try w.tensor("bias", [outF]) : nil
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { linear(x, weight: weight, bias: bias) }
}

/// `nn.Conv2d` (square kernel, symmetric padding).
public struct Conv2d {
    public let weight: Tensor
    public let bias: Tensor?
    public let parameters: Conv2DParameters

    public init(_ w: WeightLoader, in inC: Int, out outC: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true) throws {
        weight = try w.tensor("weight", [outC, inC, kernel, kernel])
        self.bias = bias ? try w.tensor("bias", [outC]) : nil
        parameters = Conv2DParameters(stride: stride, padding: padding)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { conv2d(x, weight: weight, bias: bias, parameters) }
}

/// `nn.GroupNorm` with affine parameters.
public struct GroupNorm {
    public let weight: Tensor, bias: Tensor
    public let groups: Int
    public let eps: Float

    public init(_ w: WeightLoader, groups: Int, channels: Int, eps: Float) throws {
        weight = try w.tensor("weight", [channels])
        bias = try w.tensor("bias", [channels])
        self.groups = groups
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }
}

/// `nn.LayerNorm` over the last dimension.
public struct LayerNorm {
    public let weight: Tensor, bias: Tensor
    public let eps: Float

    public init(_ w: WeightLoader, dim: Int, eps: Float) throws {
        weight = try w.tensor("weight", [dim])
        bias = try w.tensor("bias", [dim])
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { layerNorm(x, weight: weight, bias: bias, eps: eps) }
}

/// Activations named as in model configs.
public enum Activation: String, Sendable {
    case gelu, quickGelu = "quick_gelu", silu, geluTanh = "gelu_pytorch_tanh"

    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .gelu: return x.gelu()
        case .quickGelu: return x.quickGelu()
        case .silu: return x.silu()
        case .geluTanh: return x.gelu(approximateTanh: true)
        }
    }
}

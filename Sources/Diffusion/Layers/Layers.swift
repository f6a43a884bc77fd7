import SafeTensors
import Tensors

/// A layer's weight: a tensor, or (compact host placement) the 16-bit
/// elements of a memory-mapped file, widened to Float32 each time the layer
/// runs, so only the running layer's weight is ever wide.
public struct LayerWeight: @unchecked Sendable {
    private enum Storage {
        case tensor(Tensor)
        case compact(file: SafeTensorsFile, key: String, shape: [Int])
    }

    private let storage: Storage

    public init(_ tensor: Tensor) { storage = .tensor(tensor) }

    /// `key` of `file`, already checked to be a 16-bit tensor of `shape`'s size.
    init(compact file: SafeTensorsFile, key: String, shape: [Int]) { storage = .compact(file: file, key: key, shape: shape) }

    /// Whether the weight stays 16-bit in its file between uses.
    public var isCompact: Bool {
        if case .compact = storage { return true }
        return false
    }

    /// The Float32 weight (for a compact one, a fresh widened copy).
    public var tensor: Tensor {
        switch storage {
        case .tensor(let t): return t
        case let .compact(file, key, shape):
            // The mapping is read-only and was checked at load: reading it cannot fail now.
            do { return try Tensor(file, key).reshaped(shape) } catch { preconditionFailure("re-reading \(key) of \(file.source): \(error)") }
        }
    }
}

/// `nn.Linear`: `y = x·Wᵀ + b`.
public struct Linear {
    public let storedWeight: LayerWeight
    public let bias: Tensor?

    public init(_ w: WeightLoader, in inF: Int, out outF: Int, bias: Bool = true) throws {
        storedWeight = try w.layerWeight("weight", [outF, inF])
        self.bias = bias ? try w.tensor("bias", [outF]) : nil
    }

    public var weight: Tensor { storedWeight.tensor }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        // A compact weight is widened again for the backward, not held wide by the tape.
        linear(x, weight: weight, bias: bias, reloadWeight: storedWeight.isCompact ? { storedWeight.tensor } : nil)
    }
}

/// `nn.Conv2d` (square kernel, symmetric padding).
public struct Conv2d {
    public let storedWeight: LayerWeight
    public let bias: Tensor?
    public let parameters: Conv2DParameters

    public var weight: Tensor { storedWeight.tensor }

    public init(_ w: WeightLoader, in inC: Int, out outC: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true) throws {
        storedWeight = try w.layerWeight("weight", [outC, inC, kernel, kernel])
        self.bias = bias ? try w.tensor("bias", [outC]) : nil
        parameters = Conv2DParameters(stride: stride, padding: padding)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv2d(x, weight: weight, bias: bias, parameters, reloadWeight: storedWeight.isCompact ? { storedWeight.tensor } : nil)
    }
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

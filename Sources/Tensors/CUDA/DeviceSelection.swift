import Foundation

/// How a run computes: the element type tensors take on the device and
/// whether float32 products may use TF32 tensor cores.
public enum ComputePrecision: String, Sendable, CaseIterable, CustomStringConvertible {
    /// float32 storage, float32 products (bit-faithful to the CPU up to summation order).
    case fp32
    /// float32 storage, products on TF32 tensor cores (10-bit mantissa inputs, float32 sums).
    case tf32
    /// float16 storage, products on tensor cores with float32 accumulation.
    case fp16
    /// bfloat16 storage, products on tensor cores with float32 accumulation.
    case bf16

    public var elementType: ElementType {
        switch self {
        case .fp32, .tf32: return .float32
        case .fp16: return .float16
        case .bf16: return .bfloat16
        }
    }

    public var description: String { rawValue }

    /// The default for a device: fp16 on a GPU, fp32 on the CPU.
    public static func defaultFor(_ device: Device) -> ComputePrecision { device == .cpu ? .fp32 : .fp16 }

    public init(parsing text: String) throws {
        guard let p = ComputePrecision(rawValue: text.lowercased()) else {
            throw DeviceSelectionError("unknown precision '\(text)': expected fp32, tf32, fp16 or bf16")
        }
        self = p
    }
}

public struct DeviceSelectionError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// What `--device` asks for.
public enum DeviceRequest: Equatable, Sendable, CustomStringConvertible {
    /// The first CUDA device when CUDA works, else the CPU (with the reason).
    case auto
    case cpu
    case cuda(Int)

    /// Parses `auto`, `cpu`, `cuda` (device 0) or `cuda:N`.
    public init(parsing text: String) throws {
        let t = text.lowercased()
        switch t {
        case "auto": self = .auto
        case "cpu": self = .cpu
        case "cuda", "gpu": self = .cuda(0)
        default:
            if t.hasPrefix("cuda:"), let n = Int(t.dropFirst(5)), n >= 0 {
                self = .cuda(n)
            } else {
                throw DeviceSelectionError("unknown device '\(text)': expected auto, cpu, cuda or cuda:N")
            }
        }
    }

    public var description: String {
        switch self {
        case .auto: return "auto"
        case .cpu: return "cpu"
        case .cuda(let i): return "cuda:\(i)"
        }
    }
}

/// The device a run got, and why.
public struct DeviceChoice: Sendable, CustomStringConvertible {
    public let device: Device
    public let precision: ComputePrecision
    /// Why this device: the GPU's name, or why CUDA was not used.
    public let reason: String

    public var description: String { "\(device) (\(precision)): \(reason)" }
}

extension DeviceRequest {
    /// Resolves the request against what CUDA offers (`probe`, the real one
    /// by default). `cuda:N` that cannot be had is an error; `auto` falls
    /// back to the CPU and says why. A nil `precision` takes the device's
    /// default; fp16/bf16/tf32 on the CPU is an error.
    public func resolve(precision: ComputePrecision?, probe: () -> CUDAProbe = { CUDARuntime.probe() }) throws -> DeviceChoice {
        switch self {
        case .cpu:
            let p = precision ?? .fp32
            guard p == .fp32 else { throw DeviceSelectionError("precision \(p) needs a CUDA device; the CPU computes in fp32") }
            return DeviceChoice(device: .cpu, precision: p, reason: "requested")
        case .cuda(let i):
            let found = probe()
            if let why = found.unavailableReason { throw DeviceSelectionError("cuda:\(i) is not available: \(why)") }
            guard i < found.devices.count else {
                throw DeviceSelectionError("cuda:\(i) does not exist: \(found.devices.count) CUDA device(s) found")
            }
            let d = found.devices[i]
            return DeviceChoice(device: .cuda(i), precision: precision ?? .fp16, reason: "\(d.name) (sm_\(d.computeCapability))")
        case .auto:
            let found = probe()
            if let why = found.unavailableReason {
                let p = precision ?? .fp32
                guard p == .fp32 else { throw DeviceSelectionError("precision \(p) needs a CUDA device, and CUDA is not available: \(why)") }
                return DeviceChoice(device: .cpu, precision: .fp32, reason: "CUDA not used: \(why)")
            }
            guard let d = found.devices.first else {
                return DeviceChoice(device: .cpu, precision: .fp32, reason: "CUDA not used: no CUDA device found")
            }
            return DeviceChoice(device: .cuda(0), precision: precision ?? .fp16, reason: "\(d.name) (sm_\(d.computeCapability))")
        }
    }
}

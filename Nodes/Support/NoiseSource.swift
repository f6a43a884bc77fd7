import Foundation
import Tensors
import Workflow

/// Which generator a sampling node draws its random numbers from
/// (the `noise_source` parameter of Sample and PILOTOptimize).
enum NoiseSourceKind: String, CaseIterable, Sendable {
    /// Ours (SplitMix64 + Box–Muller in Double): the same numbers on every
    /// machine, each step's noise seeded on its own (a stage or a rerun asks
    /// for any step in any order and gets the same tensor).
    case ours
    /// `torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))`
    /// bit for bit (mt19937; diffusers with a CPU generator, ComfyUI).
    case torchCPU = "torch-cpu"
    /// `torch.randn` on a CUDA device after `manual_seed(seed)` (Philox 4×32;
    /// AUTOMATIC1111's "NV" source, stable-diffusion.cpp's cuda rng).
    case torchCUDA = "torch-cuda"

    static let portType = PortType.enumeration(name: "NoiseSource", cases: allCases.map(\.rawValue))

    static let input: PortSpec = .parameter("noise_source", portType, default: .string(NoiseSourceKind.ours.rawValue), doc: """
        The random numbers behind `seed`. ours (default): our generator, the same on every machine. torch-cpu: \
        torch.randn with torch.manual_seed(seed) on the CPU generator, bit for bit, so a seed from diffusers or \
        ComfyUI gives the same initial noise. torch-cuda: the CUDA (Philox) generator's torch.randn, as \
        AUTOMATIC1111's NV source (unverified on a GPU). With a torch source, the initial noise is drawn first \
        and every later draw (η, ancestral or blend noise) continues the same stream in step order, as a \
        diffusers pipeline given one generator does.
        """)
}

/// The random numbers of one sampling run: the initial noise, then the
/// per-step noise (DDIM η, ancestral samplers, PILOT's blend noise).
///
/// A value type: a copy taken after the initial draw is the stream's state
/// at that point, so PILOTOptimize hands Blend a copy and Blend, run again
/// on a cached state, draws the same numbers again.
struct NoiseSource: Sendable {
    private enum Generator: Sendable {
        case ours
        case torchCPU(TorchCPUGenerator)
        case torchCUDA(TorchCUDAPhiloxGenerator)
    }

    let kind: NoiseSourceKind
    let seed: Int
    private var generator: Generator

    init(kind: NoiseSourceKind, seed: Int) {
        self.kind = kind
        self.seed = seed
        let bits = UInt64(bitPattern: Int64(seed))
        switch kind {
        case .ours: generator = .ours
        case .torchCPU: generator = .torchCPU(TorchCPUGenerator(seed: bits))
        case .torchCUDA: generator = .torchCUDA(TorchCUDAPhiloxGenerator(seed: bits))
        }
    }

    /// The node's `noise_source` and `seed` parameters.
    init(_ inputs: NodeInputs) throws {
        let name = try inputs.string("noise_source")
        guard let kind = NoiseSourceKind(rawValue: name) else {
            throw NodeError("noise_source '\(name)' is not one of \(NoiseSourceKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.init(kind: kind, seed: try inputs.int("seed"))
    }

    /// Initial noise of `shape`; with a torch source it advances the stream.
    mutating func initial(_ shape: [Int]) -> Tensor {
        switch generator {
        case .ours:
            return Tensor(shape: shape, values: SeededNoise.normals(seed: seed, count: shape.reduce(1, *)))
        case .torchCPU(var g):
            defer { generator = .torchCPU(g) }
            return g.randnTensor(shape)
        case .torchCUDA(var g):
            defer { generator = .torchCUDA(g) }
            return g.randnTensor(shape)
        }
    }

    /// Noise for each step, `shape` each: ours seeds every step of `stream`
    /// on its own; a torch source continues from this value's state in the
    /// order the steps ask (a step asked again gets the same tensor).
    func steps(stream: UInt64, shape: [Int]) -> (Int) -> Tensor {
        switch generator {
        case .ours:
            let seed = seed
            return { i in SeededNoise.step(seed: seed, stream: stream, step: i, shape: shape) }
        case .torchCPU(let g):
            let draws = StepDraws(g) { generator, shape in generator.randnTensor(shape) }
            return { i in draws.noise(step: i, shape: shape) }
        case .torchCUDA(let g):
            let draws = StepDraws(g) { generator, shape in generator.randnTensor(shape) }
            return { i in draws.noise(step: i, shape: shape) }
        }
    }
}

/// A torch stream's per-step draws, remembered by step so that asking for a
/// step twice (a preview, a retry) does not advance the stream.
private final class StepDraws<G: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var generator: G
    private var drawn: [Int: Tensor] = [:]
    private let draw: (inout G, [Int]) -> Tensor

    init(_ generator: G, draw: @escaping (inout G, [Int]) -> Tensor) {
        self.generator = generator
        self.draw = draw
    }

    func noise(step: Int, shape: [Int]) -> Tensor {
        lock.lock()
        defer { lock.unlock() }
        if let known = drawn[step] { return known }
        let tensor = draw(&generator, shape)
        drawn[step] = tensor
        return tensor
    }
}

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
/// per-step noise (DDIM η, ancestral samplers, PILOT's blend noise), for a
/// batch of candidates: candidate k draws from seed + k with its own
/// generator (as AUTOMATIC1111 seeds a batch), so candidate k of a batch is
/// the single run of seed + k.
///
/// A value type: a copy taken after the initial draw is the streams' state
/// at that point, so PILOTOptimize hands Blend a copy and Blend, run again
/// on a cached state, draws the same numbers again.
struct NoiseSource: Sendable {
    private enum Generator: Sendable {
        case ours(seed: Int)
        case torchCPU(TorchCPUGenerator)
        case torchCUDA(TorchCUDAPhiloxGenerator)
    }

    let kind: NoiseSourceKind
    /// The first candidate's seed.
    let seed: Int
    private var generators: [Generator]

    /// How many candidates it draws for.
    var candidates: Int { generators.count }

    init(kind: NoiseSourceKind, seed: Int, candidates: Int = 1) {
        precondition(candidates >= 1, "a noise source for \(candidates) candidates")
        self.kind = kind
        self.seed = seed
        generators = (0..<candidates).map { k in
            let candidateSeed = seed + k
            let bits = UInt64(bitPattern: Int64(candidateSeed))
            switch kind {
            case .ours: return .ours(seed: candidateSeed)
            case .torchCPU: return .torchCPU(TorchCPUGenerator(seed: bits))
            case .torchCUDA: return .torchCUDA(TorchCUDAPhiloxGenerator(seed: bits))
            }
        }
    }

    /// The node's `noise_source`, `seed` and (where it has one) `batch` parameters.
    init(_ inputs: NodeInputs) throws {
        let name = try inputs.string("noise_source")
        guard let kind = NoiseSourceKind(rawValue: name) else {
            throw NodeError("noise_source '\(name)' is not one of \(NoiseSourceKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let seed = try inputs.int("seed")
        let batch = inputs.has("batch") ? try inputs.int("batch") : 1
        guard batch >= 1, seed <= Int.max - (batch - 1) else {
            throw NodeError("seed \(seed) with batch \(batch): the candidates' seeds seed … seed + \(batch - 1) pass the largest seed, \(Int.max)")
        }
        self.init(kind: kind, seed: seed, candidates: batch)
    }

    /// Initial noise: `shape` is one candidate's `[1, C, h, w]`; the result
    /// has a row per candidate. A torch source advances its streams.
    mutating func initial(_ shape: [Int]) -> Tensor {
        precondition(shape.first == 1, "one candidate's shape starts with 1, found \(shape)")
        var rows: [Tensor] = []
        for k in generators.indices {
            switch generators[k] {
            case let .ours(seed):
                rows.append(Tensor(shape: shape, values: SeededNoise.normals(seed: seed, count: shape.reduce(1, *))))
            case .torchCPU(var g):
                rows.append(g.randnTensor(shape))
                generators[k] = .torchCPU(g)
            case .torchCUDA(var g):
                rows.append(g.randnTensor(shape))
                generators[k] = .torchCUDA(g)
            }
        }
        return rows.count == 1 ? rows[0] : concat(rows, axis: 0)
    }

    /// Noise for each step, one candidate's `shape` per row: ours seeds every
    /// step of `stream` on its own; a torch source continues from this
    /// value's state in the order the steps ask (a step asked again gets the
    /// same tensor).
    func steps(stream: UInt64, shape: [Int]) -> (Int) -> Tensor {
        let draws: [(Int) -> Tensor] = generators.map { generator in
            switch generator {
            case let .ours(seed):
                return { i in SeededNoise.step(seed: seed, stream: stream, step: i, shape: shape) }
            case .torchCPU(let g):
                let draws = StepDraws(g) { generator, shape in generator.randnTensor(shape) }
                return { i in draws.noise(step: i, shape: shape) }
            case .torchCUDA(let g):
                let draws = StepDraws(g) { generator, shape in generator.randnTensor(shape) }
                return { i in draws.noise(step: i, shape: shape) }
            }
        }
        if draws.count == 1 { return draws[0] }
        return { i in concat(draws.map { $0(i) }, axis: 0) }
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

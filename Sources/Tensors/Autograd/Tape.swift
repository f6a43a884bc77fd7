/// A tape entry link carried by a traced tensor.
public struct Trace {
    public let tape: Tape
    public let id: Int
}

/// Errors from reverse-mode differentiation.
public enum AutogradError: Error, CustomStringConvertible {
    case notTraced(what: String)
    case differentTape(what: String)
    case consumed
    case seedShape(expected: [Int], found: [Int])

    public var description: String {
        switch self {
        case .notTraced(let what):
            return "\(what) is not recorded on this tape: pass a tensor returned by tape.watch(_:) or computed from one"
        case .differentTape(let what):
            return "\(what) belongs to a different tape"
        case .consumed:
            return "this tape was already differentiated and released its graph; use retainGraph: true to differentiate twice"
        case .seedShape(let e, let f):
            return "seed gradient must have the output's shape \(e), found \(f)"
        }
    }
}

/// An explicit reverse-mode autograd tape.
///
/// `watch(_:)` marks a leaf; every op whose inputs include a traced tensor
/// appends a node holding its backward function, which captures only what the
/// backward needs (as untraced tensors, so the tape owns no cycles).
/// `gradient(of:wrt:)` sweeps the nodes in reverse and frees each node's
/// captures as soon as it has run, unless `retainGraph` is set.
public final class Tape {
    /// The backward of one node: output gradient, which inputs need a
    /// gradient → one gradient (or nil) per input.
    public typealias Backward = (_ gradOutput: Tensor, _ needs: [Bool]) -> [Tensor?]

    struct Node {
        var inputs: [Int?]
        var backward: Backward?
        let shape: [Int]
    }

    private(set) var nodes: [Node] = []
    private var consumed = false

    public init() {}

    /// Number of recorded nodes (leaves included).
    public var nodeCount: Int { nodes.count }

    /// Returns `x` as a leaf recorded on this tape.
    public func watch(_ x: Tensor) -> Tensor {
        var t = x
        t.trace = Trace(tape: self, id: nodes.count)
        nodes.append(Node(inputs: [], backward: nil, shape: x.shape))
        return t
    }

    /// Records `output = f(inputs)` when any input is traced. Returns `output`
    /// traced, or unchanged when no input is traced (nothing is recorded).
    public static func record(_ output: Tensor, inputs: [Tensor], backward: @escaping Backward) -> Tensor {
        var tape: Tape?
        for input in inputs {
            guard let trace = input.trace else { continue }
            if let t = tape {
                precondition(t === trace.tape, "an op mixes tensors from two different tapes")
            } else {
                tape = trace.tape
            }
        }
        guard let tape else { return output }
        var out = output
        out.trace = Trace(tape: tape, id: tape.nodes.count)
        tape.nodes.append(Node(inputs: inputs.map { $0.trace?.id }, backward: backward, shape: output.shape))
        return out
    }

    /// Gradients of `output` (scalar, or seeded with `seed` of its shape)
    /// with respect to each tensor in `wrt`. A tensor that `output` does not
    /// depend on gets a zero gradient.
    public func gradient(of output: Tensor, wrt: [Tensor], seed: Tensor? = nil,
                         retainGraph: Bool = false) throws -> [Tensor] {
        guard !consumed else { throw AutogradError.consumed }
        guard let outTrace = output.trace else { throw AutogradError.notTraced(what: "the output") }
        guard outTrace.tape === self else { throw AutogradError.differentTape(what: "the output") }
        var wrtIDs: [Int] = []
        for (i, x) in wrt.enumerated() {
            guard let tr = x.trace else { throw AutogradError.notTraced(what: "wrt[\(i)]") }
            guard tr.tape === self else { throw AutogradError.differentTape(what: "wrt[\(i)]") }
            wrtIDs.append(tr.id)
        }
        if let seed, seed.shape != output.shape {
            throw AutogradError.seedShape(expected: output.shape, found: seed.shape)
        }

        // Forward sweep: which nodes depend on a wrt tensor.
        let last = outTrace.id
        var needed = [Bool](repeating: false, count: last + 1)
        let wanted = Set(wrtIDs)
        for id in 0...last {
            if wanted.contains(id) { needed[id] = true; continue }
            needed[id] = nodes[id].inputs.contains { $0.map { needed[$0] } ?? false }
        }

        var grads: [Int: Tensor] = [last: seed?.detached ?? Tensor.ones(output.shape).to(output.device, as: output.elementType)]
        var results: [Int: Tensor] = [:]
        for id in stride(from: last, through: 0, by: -1) where needed[id] {
            guard let g = grads.removeValue(forKey: id) else { continue }
            if wanted.contains(id) { results[id] = g }
            guard let backward = nodes[id].backward else { continue }
            let inputs = nodes[id].inputs
            let needs = inputs.map { $0.map { needed[$0] } ?? false }
            let inputGrads = backward(g, needs)
            if !retainGraph { nodes[id].backward = nil }
            for (k, inputID) in inputs.enumerated() {
                guard let inputID, needs[k], k < inputGrads.count, let gi = inputGrads[k] else { continue }
                precondition(gi.shape == nodes[inputID].shape,
                             "backward produced gradient of shape \(gi.shape) for an input of shape \(nodes[inputID].shape)")
                if let acc = grads[inputID] {
                    grads[inputID] = Backends.backend(for: acc, gi).binary(.add, acc, gi)
                } else {
                    grads[inputID] = gi
                }
            }
        }
        if !retainGraph {
            consumed = true
            nodes.removeAll()
        }
        return zip(wrt, wrtIDs).map { x, id in results[id] ?? Tensor.zeros(x.shape) }
    }
}

import Foundation
import SafeTensors
import Tensors
import XCTest

/// One PyTorch reference case from `Tests/Fixtures/tensors/` (written by
/// `Tests/Reference/make_tensor_fixtures.py`). Inputs are regenerated from
/// the metadata with the shared splitmix64-v1 generator and checked against
/// the stored heads; references were computed in float64.
struct Fixture {
    let name: String
    let file: SafeTensorsFile
    let params: [String: Any]
    let inputs: [String: Tensor]

    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/tensors").standardized

    init(_ name: String) throws {
        self.name = name
        file = try SafeTensorsFile(path: Fixture.folder.appendingPathComponent("\(name).safetensors").path)
        guard file.metadata["generator"] == "splitmix64-v1" else {
            throw FixtureError("\(name): expected generator splitmix64-v1, found \(file.metadata["generator"] ?? "none")")
        }
        params = try Fixture.json(file.metadata["params"] ?? "{}")
        let specs = try Fixture.json(file.metadata["inputs"] ?? "{}")
        var inputs: [String: Tensor] = [:]
        for (key, value) in specs {
            guard let spec = value as? [String: Any], let shape = spec["shape"] as? [Int],
                  let seed = spec["seed"] as? UInt64 ?? (spec["seed"] as? Int).map(UInt64.init) else {
                throw FixtureError("\(name): input \(key) has no shape/seed")
            }
            let scale = Float(spec["scale"] as? Double ?? 1), offset = Float(spec["offset"] as? Double ?? 0)
            var g = SplitMix64(seed: seed)
            let t = Tensor(shape: shape, values: g.fixtureValues(shape.reduce(1, *), scale: scale, offset: offset))
            let head = try file.floats("\(key).head")
            guard Array(t.scalars.prefix(head.count)) == head else {
                throw FixtureError("\(name): regenerated input \(key) starts \(Array(t.scalars.prefix(4))), fixture head \(Array(head.prefix(4)))")
            }
            inputs[key] = t
        }
        self.inputs = inputs
    }

    func input(_ key: String) -> Tensor { inputs[key]! }

    /// The stored reference `key`.
    func reference(_ key: String) throws -> Tensor { try Tensor(file, key) }

    /// Compares a full Swift result with reference `key`, subsampling rows as
    /// the fixture did when it lists `key` in `row_strided`.
    func check(_ actual: Tensor, _ key: String, tolerance: Float,
               file: StaticString = #filePath, line: UInt = #line) throws {
        var a = actual
        if let strided = params["row_strided"] as? [String], strided.contains(key),
           let stride = params["row_stride"] as? Int, let axis = params["row_axis"] as? Int {
            let keep = Array(Swift.stride(from: 0, to: a.dim(axis), by: stride))
            a = concat(keep.map { a.sliced(axis: axis, $0..<($0 + 1)) }, axis: axis)
        }
        assertClose(a, try reference(key), tolerance: tolerance, "\(name) \(key)", file: file, line: line)
    }

    static func json(_ text: String) throws -> [String: Any] {
        guard let obj = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw FixtureError("metadata is not a JSON object: \(text.prefix(80))")
        }
        return obj
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Runs `f` on watched inputs and returns its output and the gradients of
/// Σ f(x)·dout with respect to each input.
func forwardBackward(_ inputs: [Tensor], dout: Tensor, _ f: ([Tensor]) -> Tensor) throws -> (Tensor, [Tensor]) {
    let tape = Tape()
    let xs = inputs.map { tape.watch($0) }
    let y = f(xs)
    let grads = try tape.gradient(of: y, wrt: xs, seed: dout)
    return (y.detached, grads)
}

import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// The tiny random-weight SD1-/SD2-style models and diffusers dumps written
/// by `Tests/Reference/make_sd_fixtures.py` (diffusers 0.39.0, float32).
struct SDFixture {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/sd").standardized

    let variant: String
    let reference: SafeTensorsFile

    init(_ variant: String) throws {
        self.variant = variant
        reference = try SafeTensorsFile(path: SDFixture.root.appendingPathComponent("\(variant)_reference.safetensors").path)
    }

    var folder: String { SDFixture.root.appendingPathComponent(variant).path }
    var singleFile: String { SDFixture.root.appendingPathComponent("\(variant).safetensors").path }

    func tensor(_ name: String) throws -> Tensor { try Tensor(reference, name) }

    func floats(_ name: String) throws -> [Float] { try reference.floats(name) }

    /// Token ids stored as exact float32 integers.
    func ids(_ name: String) throws -> [[Int32]] {
        let t = try tensor(name)
        let row = t.dim(-1)
        let v = t.scalars.map { Int32($0) }
        return stride(from: 0, to: v.count, by: row).map { Array(v[$0..<($0 + row)]) }
    }

    func loadFolder(variant: String? = nil) throws -> StableDiffusionModel {
        try StableDiffusionModel.load(path: folder, variant: variant)
    }

    func loadSingleFile() throws -> StableDiffusionModel {
        try StableDiffusionModel.load(path: singleFile, config: folder)
    }
}

/// Max |a − e| / max |e|.
func relativeError(_ actual: Tensor, _ expected: Tensor) -> Float {
    precondition(actual.shape == expected.shape, "shape \(actual.shape) vs \(expected.shape)")
    var diff: Float = 0, scale: Float = 0
    for (a, e) in zip(actual.scalars, expected.scalars) {
        diff = max(diff, abs(a - e))
        scale = max(scale, abs(e))
    }
    return diff / max(scale, 1e-30)
}

func assertClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.shape == expected.shape else {
        XCTFail("\(what): expected shape \(expected.shape), got \(actual.shape)", file: file, line: line)
        return
    }
    let err = relativeError(actual, expected)
    XCTAssertLessThanOrEqual(err, tolerance, "\(what): expected max relative error ≤ \(tolerance), got \(err)",
                             file: file, line: line)
}

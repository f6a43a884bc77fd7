import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// AutoencoderTiny (TAESD) against diffusers on random weights
/// (Tests/Reference/make_taesd_fixture.py).
final class AutoencoderTinyTests: XCTestCase {
    static let folder = SDFixture.root.appendingPathComponent("taesd")

    func testDecodeAndEncodeMatchDiffusers() throws {
        let reference = try SafeTensorsFile(path: SDFixture.root.appendingPathComponent("taesd_reference.safetensors").path)
        func tensor(_ name: String) throws -> Tensor { try Tensor(reference, name) }
        let model = try AutoencoderTiny.load(path: Self.folder.path)
        XCTAssertEqual(model.config.encoderChannels, [8, 8, 8, 8])
        XCTAssertEqual(model.config.decoderBlocks, [2, 2, 2, 1])
        assertClose(try model.decode(try tensor("latent")), try tensor("decoded"), tolerance: 1e-4, "TAESD decode of a batch of 2")
        assertClose(try model.encode(try tensor("image")), try tensor("encoded"), tolerance: 1e-4, "TAESD encode")
    }

    func testAFolderWithoutWeightsOrWithAnUnsupportedActivationIsRefusedNamingTheFile() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let config = try Data(contentsOf: Self.folder.appendingPathComponent("config.json"))
        try folder.write("config.json", config)
        XCTAssertThrowsError(try AutoencoderTiny.load(path: folder.url.path)) { error in
            XCTAssertTrue("\(error)".contains("diffusion_pytorch_model.safetensors"), "expected the missing weights file named, got \(error)")
        }
        let text = String(decoding: config, as: UTF8.self).replacingOccurrences(of: "\"relu\"", with: "\"silu\"")
        try folder.write("config.json", Data(text.utf8))
        XCTAssertThrowsError(try AutoencoderTiny.load(path: folder.url.path)) { error in
            XCTAssertTrue("\(error)".contains("act_fn silu"), "expected the unsupported act_fn named, got \(error)")
        }
    }

    func testALatentWithTheWrongChannelsIsRefused() throws {
        let model = try AutoencoderTiny.load(path: Self.folder.path)
        XCTAssertThrowsError(try model.decode(Tensor.zeros([1, 3, 8, 8]))) { error in
            XCTAssertTrue("\(error)".contains("[B, 4, h, w]"), "expected the latent shape named, got \(error)")
        }
    }
}

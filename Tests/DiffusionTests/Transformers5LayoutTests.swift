@testable import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// CLIP models as transformers 5.25 saves them
/// (`Tests/Reference/make_transformers5_fixtures.py`): `CLIPTextModel`
/// without the `text_model.` prefix, `CLIPTextModelWithProjection` and
/// `CLIPVisionModelWithProjection` with theirs. Each loads with no tensor
/// left unread and gives transformers' outputs (≤ 1e-4).
final class Transformers5LayoutTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Fixtures/transformers5").standardized

    var reference: SafeTensorsFile!

    override func setUpWithError() throws {
        reference = try SafeTensorsFile(path: Self.root.appendingPathComponent("reference.safetensors").path)
    }

    /// XCTest keeps every test case until the process exits: let go of what setUp loaded.
    override func tearDown() { reference = nil }

    func r(_ name: String) throws -> Tensor { try Tensor(reference, name) }

    func textEncoder(_ folder: String) throws -> CLIPTextModel {
        let dir = Self.root.appendingPathComponent(folder)
        let config = try CLIPTextConfig(JSONConfig(path: dir.appendingPathComponent("config.json").path))
        let file = try SafeTensorsFile(path: dir.appendingPathComponent("model.safetensors").path)
        return try loadChecked(WeightSource.clipText(file)) { try CLIPTextModel(WeightLoader($0), config: config) }
    }

    func testUnprefixedCLIPTextModelLoadsAndMatches() throws {
        let file = try SafeTensorsFile(path: Self.root.appendingPathComponent("text_encoder/model.safetensors").path)
        XCTAssertTrue(file.names.contains("embeddings.token_embedding.weight"), "transformers 5 wrote no text_model. prefix")
        XCTAssertFalse(file.names.contains { $0.hasPrefix("text_model.") })
        let model = try textEncoder("text_encoder")
        XCTAssertEqual(model.config.endTokenId, 999, "eos_token_id read from the config")
        let ids = [try r("ids").scalars.map { Int32($0) }]
        assertClose(model.encode(ids: ids).hidden, try r("text_encoder.last_hidden_state"), tolerance: 1e-4, "last_hidden_state")
        assertClose(model.encode(ids: ids, skipLastLayers: 1, normalised: false).hidden, try r("text_encoder.penultimate"),
                    tolerance: 1e-4, "hidden_states[-2]")
    }

    func testPrefixedTextModelWithProjectionLoadsAndMatches() throws {
        let file = try SafeTensorsFile(path: Self.root.appendingPathComponent("text_encoder_2/model.safetensors").path)
        XCTAssertTrue(file.names.contains("text_model.embeddings.token_embedding.weight") && file.names.contains("text_projection.weight"),
                      "CLIPTextModelWithProjection keeps text_model. and adds text_projection")
        let model = try textEncoder("text_encoder_2")
        let ids = [try r("ids").scalars.map { Int32($0) }]
        let out = model.encode(ids: ids, skipLastLayers: 1, normalised: false, pooled: true)
        assertClose(out.hidden, try r("text_encoder_2.penultimate"), tolerance: 1e-4, "hidden_states[-2]")
        assertClose(try XCTUnwrap(out.pooled), try r("text_encoder_2.text_embeds"), tolerance: 1e-4, "text_embeds at the first eos")
        assertClose(model.encode(ids: ids).hidden, try r("text_encoder_2.last_hidden_state"), tolerance: 1e-4, "last_hidden_state")
    }

    func testVisionModelWithProjectionLoadsAndMatches() throws {
        let encoder = try CLIPVisionModel.load(folder: Self.root.appendingPathComponent("image_encoder").path)
        assertClose(try encoder.imageEmbeds(try r("image_encoder.pixel_values")), try r("image_encoder.image_embeds"),
                    tolerance: 1e-4, "image_embeds")
    }
}

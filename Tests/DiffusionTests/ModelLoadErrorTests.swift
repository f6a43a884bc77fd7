import Diffusion
import Foundation
import SafeTensors
import XCTest

/// Broken model folders and files: each load fails with an error naming the
/// file (and key) and what was expected.
final class ModelLoadErrorTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("pilot-model-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: SDFixture.root.appendingPathComponent("sd1"), to: tmp)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: tmp)
        tmp = nil   // XCTest keeps every test case until the process exits
    }

    func assertLoadFails(_ expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try StableDiffusionModel.load(path: tmp.path), file: file, line: line) { error in
            let message = "\(error)"
            for part in expected {
                XCTAssertTrue(message.contains(part), "error should mention \"\(part)\": \(message)", file: file, line: line)
            }
        }
    }

    func testMissingComponentNamesTheFile() throws {
        try FileManager.default.removeItem(at: tmp.appendingPathComponent("vae/diffusion_pytorch_model.safetensors"))
        assertLoadFails(["vae/diffusion_pytorch_model.safetensors", "missing vae weights"])
    }

    func testMissingConfigNamesTheFile() throws {
        try FileManager.default.removeItem(at: tmp.appendingPathComponent("unet/config.json"))
        assertLoadFails(["unet/config.json", "missing unet config"])
    }

    func testWrongShapesNameTheKey() throws {
        // A config that disagrees with the weights: cross-attention width 8 instead of 6.
        let url = tmp.appendingPathComponent("unet/config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        json["cross_attention_dim"] = 8
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        assertLoadFails(["attn2.to_k.weight", "has shape [8, 6]", "expected [8, 8]", "diffusion_pytorch_model"])
    }

    func testTruncatedWeightsFileNamesTheFile() throws {
        let url = tmp.appendingPathComponent("text_encoder/model.safetensors")
        let data = try Data(contentsOf: url)
        try data.prefix(data.count / 2).write(to: url)
        assertLoadFails(["text_encoder/model.safetensors"])
    }

    /// transformers 5 saves CLIPTextModel without the `text_model.` prefix;
    /// such a folder loads, and its text encoder gives the same states.
    func testATextEncoderSavedWithoutTheTextModelPrefixLoads() throws {
        let reference = try StableDiffusionModel.load(path: tmp.path)
        let url = tmp.appendingPathComponent("text_encoder/model.safetensors")
        let original = try SafeTensorsFile(path: url.path)
        var writer = SafeTensorsWriter()
        for name in original.names {
            let info = try original.info(name)
            let short = name.hasPrefix("text_model.") ? String(name.dropFirst("text_model.".count)) : name
            try writer.add(short, shape: info.shape, floats: try original.floats(name))
        }
        try writer.write(to: url.path)
        XCTAssertFalse(try SafeTensorsFile(path: url.path).names.contains { $0.hasPrefix("text_model.") })
        let renamed = try StableDiffusionModel.load(path: tmp.path)
        let ids: [[Int32]] = [[49406, 320, 49407] + [Int32](repeating: 49407, count: 4)]
        XCTAssertEqual(renamed.textEncoder(ids: ids).scalars, reference.textEncoder(ids: ids).scalars,
                       "the unprefixed text encoder must give the prefixed one's states")
    }

    func testUnexpectedTensorsAreReportedNotDropped() throws {
        let url = tmp.appendingPathComponent("vae/diffusion_pytorch_model.safetensors")
        let original = try SafeTensorsFile(path: url.path)
        var writer = SafeTensorsWriter()
        for name in original.names {
            let info = try original.info(name)
            try writer.add(name, shape: info.shape, floats: try original.floats(name))
        }
        try writer.add("encoder.extra_layer.weight", shape: [2], floats: [1, 2])
        try writer.write(to: url.path)
        assertLoadFails(["unexpected tensor", "encoder.extra_layer.weight"])
    }

    /// A single-file checkpoint with a tensor no component reads is refused
    /// as a diffusers folder is, naming the key; the noise-schedule buffers
    /// and EMA copies such files carry are not weights and still load.
    func testUnexpectedTensorsInASingleFileAreReported() throws {
        for variant in ["sd1", "sd2"] {
            let fixture = try SDFixture(variant)
            let original = try SafeTensorsFile(path: fixture.singleFile)
            func copy(adding extra: [String]) throws -> String {
                var writer = SafeTensorsWriter()
                for name in original.names {
                    let info = try original.info(name)
                    try writer.add(name, shape: info.shape, floats: try original.floats(name))
                }
                for name in extra { try writer.add(name, shape: [2], floats: [1, 2]) }
                let path = tmp.appendingPathComponent("\(variant)-\(extra.count).safetensors").path
                try writer.write(to: path)
                return path
            }
            let harmless = try copy(adding: ["posterior_variance", "model_ema.decay", "first_stage_model.loss.logvar"])
            XCTAssertNoThrow(try StableDiffusionModel.load(path: harmless, config: fixture.folder),
                             "\(variant): schedule buffers, EMA and loss weights are not model weights")
            let stray = try copy(adding: ["model.diffusion_model.input_blocks.1.0.stray.weight",
                                          "first_stage_model.decoder.extra.bias"])
            XCTAssertThrowsError(try StableDiffusionModel.load(path: stray, config: fixture.folder)) { error in
                let message = "\(error)"
                for part in ["2 unexpected tensor", "model.diffusion_model.input_blocks.1.0.stray.weight",
                             "first_stage_model.decoder.extra.bias", "\(variant)-2.safetensors"] {
                    XCTAssertTrue(message.contains(part), "\(variant): error should mention \"\(part)\": \(message)")
                }
            }
        }
    }

    /// Rewrites the model copy's `relativePath` JSON file after `edit`.
    private func editConfig(_ relativePath: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = tmp.appendingPathComponent(relativePath)
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
    }

    func testBadConfigValueNamesKeyAndExpectation() throws {
        try editConfig("unet/config.json") { $0["layers_per_block"] = "two" }
        assertLoadFails(["unet/config.json", "layers_per_block should be an integer"])
    }

    func testUnsupportedActivationNamesFileAndValue() throws {
        try editConfig("text_encoder/config.json") { $0["hidden_act"] = "swish" }
        assertLoadFails(["text_encoder/config.json", "unsupported hidden_act swish"])
    }

    func testSingleFileWithoutUNetIsRefused() throws {
        var writer = SafeTensorsWriter()
        try writer.add("cond_stage_model.transformer.text_model.final_layer_norm.weight", shape: [2], floats: [1, 1])
        let path = tmp.appendingPathComponent("not-a-model.safetensors").path
        try writer.write(to: path)
        XCTAssertThrowsError(try StableDiffusionModel.load(path: path)) { error in
            XCTAssertTrue("\(error)".contains("not a Stable Diffusion checkpoint"), "\(error)")
        }
    }

    func testPickleCheckpointsAreRefusedWithAReason() throws {
        let path = tmp.appendingPathComponent("model.ckpt").path
        try Data([0x80, 0x02]).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try StableDiffusionModel.load(path: path)) { error in
            XCTAssertTrue("\(error)".contains("only .safetensors"), "\(error)")
        }
    }

    func testInspectReportsFilesHashesAndWhyAModelCannotLoad() throws {
        let good = try ModelInspector.inspect(path: SDFixture.root.appendingPathComponent("sd1").path)
        XCTAssertNil(good.loadError, "the fixture model loads")
        XCTAssertEqual(good.family?.id, "sd15")
        XCTAssertTrue(good.files.contains { $0.path.hasSuffix("unet/diffusion_pytorch_model.safetensors") && $0.sha256.count == 64 })
        try FileManager.default.removeItem(at: tmp.appendingPathComponent("vae/config.json"))
        let bad = try ModelInspector.inspect(path: tmp.path)
        XCTAssertTrue(bad.loadError?.contains("vae/config.json") ?? false, "inspect says why: \(bad.loadError ?? "nil")")
    }
}

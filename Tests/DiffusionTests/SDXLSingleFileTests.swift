@testable import Diffusion
import Foundation
import SafeTensors
import Tensors
import XCTest

/// A single-file SDXL checkpoint in Stability's SGM layout, assembled from
/// the tiny SDXL fixture folder by `single_file_recipe.json.gz` (written by
/// `Tests/Reference/make_sdxl_fixtures.py` from its own key map, which
/// diffusers' `from_single_file` loads to the folder's weights bit for bit).
final class SDXLSingleFileTests: XCTestCase {
    struct Recipe: Decodable {
        struct Source: Decodable { let component: String; let name: String }
        struct Entry: Decodable { let key: String; let op: String; let sources: [Source] }
        struct Constant: Decodable { let key: String; let shape: [Int]; let value: Float }
        struct Ignored: Decodable { let key: String; let shape: [Int]; let dtype: String }
        let constants: [Constant]
        let ignored_keys: [Ignored]
        let entries: [Entry]
    }

    /// Writes the single file to `path`; `extra` adds tensors a loader must refuse.
    static func assemble(to path: String, extra: [(String, [Int])] = []) throws -> Int {
        let data = try Data(contentsOf: SDXLParityTests.root.appendingPathComponent("single_file_recipe.json.gz"))
        let recipe = try JSONDecoder().decode(Recipe.self, from: try Gunzip.decompress(data))
        var files: [String: SafeTensorsFile] = [:]
        for (component, file) in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"),
                                  ("text_encoder", "model"), ("text_encoder_2", "model")] {
            files[component] = try SafeTensorsFile(path: SDXLParityTests.folder
                .appendingPathComponent("\(component)/\(file).fp16.safetensors").path)
        }
        var writer = SafeTensorsWriter()
        for entry in recipe.entries {
            let parts = try entry.sources.map { try Tensor(files[$0.component]!, $0.name) }
            let t: Tensor
            switch entry.op {
            case "copy": t = parts[0]
            case "rows": t = concat(parts, axis: 0)
            case "transpose": t = parts[0].transposed()
            case "conv1x1": t = parts[0].reshaped(parts[0].shape + [1, 1])
            default: throw XCTSkip("unknown recipe op \(entry.op)")
            }
            try writer.add(entry.key, shape: t.shape, floats: t.scalars, dtype: .F16)
        }
        for c in recipe.constants {
            try writer.add(c.key, shape: c.shape, floats: [Float](repeating: c.value, count: c.shape.reduce(1, *)))
        }
        for i in recipe.ignored_keys {
            let n = i.shape.reduce(1, *)
            if i.dtype == "I64" {
                try writer.add(i.key, shape: i.shape, int64s: (0..<n).map(Int64.init))
            } else {
                try writer.add(i.key, shape: i.shape, floats: [Float](repeating: 0.5, count: n))
            }
        }
        for (key, shape) in extra { try writer.add(key, shape: shape, floats: [Float](repeating: 0, count: shape.reduce(1, *))) }
        try writer.write(to: path)
        return recipe.entries.count
    }

    func testSGMSingleFileLoadsAsSDXLToTheFolderWeights() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilot-sdxl-single-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("sd_xl_tiny.safetensors").path
        XCTAssertGreaterThan(try Self.assemble(to: path), 1000, "the recipe lists every tensor")

        let folder = try StableDiffusionModel.load(path: SDXLParityTests.folder.path)
        let single = try StableDiffusionModel.load(path: path, config: SDXLParityTests.folder.path)
        XCTAssertEqual(single.family.id, "sdxl-base", "conditioner.embedders.0/1 make it SDXL")
        XCTAssertEqual(single.textEncoders.count, 2)
        XCTAssertNil(single.loraReport.unknown.first)

        // The same weights give bit-identical outputs.
        let reference = try SafeTensorsFile(path: SDXLParityTests.root.appendingPathComponent("sdxl_reference.safetensors").path)
        func r(_ k: String) throws -> Tensor { try Tensor(reference, k) }
        let added = AddedConditioning(textEmbeds: try r("unet.text_embeds"), timeIds: try r("unet.time_ids"))
        func unetOut(_ m: StableDiffusionModel) throws -> [Float] {
            try m.unet(r("unet.sample"), timesteps: [501, 501],
                       conditioning: UNetConditioning(context: r("unet.context"), added: added)).scalars
        }
        XCTAssertEqual(try unetOut(single), try unetOut(folder), "UNet (label_emb → add_embedding included)")
        let a = try folder.promptEncoder().encode("a red fox in the snow")
        let b = try single.promptEncoder().encode("a red fox in the snow")
        XCTAssertEqual(a.embedding.scalars, b.embedding.scalars, "both encoders' penultimate states")
        XCTAssertEqual(a.pooled?.scalars, b.pooled?.scalars, "pooled projection (text_projection stored transposed)")
        let image = Tensor(shape: [1, 3, 32, 32], values: (0..<3072).map { Float($0 % 17) / 8 - 1 })
        XCTAssertEqual(try single.vae.decode(single.vae.encode(image).mean).scalars,
                       try folder.vae.decode(folder.vae.encode(image).mean).scalars, "VAE (1×1-conv attention)")
    }

    func testExtraTensorsInAnSDXLSingleFileAreReported() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pilot-sdxl-extra-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("extra.safetensors").path
        let stray = "conditioner.embedders.1.model.transformer.resblocks.3.ln_1.weight"
        _ = try Self.assemble(to: path, extra: [(stray, [4]), ("conditioner.embedders.2.model.proj", [2, 2])])
        XCTAssertThrowsError(try StableDiffusionModel.load(path: path, config: SDXLParityTests.folder.path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(stray), "an OpenCLIP block beyond the config's 3 is named: \(text)")
            XCTAssertTrue(text.contains("conditioner.embedders.2.model.proj"), "an unknown embedder is named: \(text)")
        }
    }
}

/// Compact host weights: 16-bit layer weights stay in the mapped file and
/// are widened per use, with results identical to widening at load.
final class CompactWeightTests: XCTestCase {
    func testCompactSDXLGivesBitIdenticalOutputsAndKeepsLayerWeightsInTheFile() throws {
        let wide = try StableDiffusionModel.load(path: SDXLParityTests.folder.path)
        let saved = WeightPlacement.current
        WeightPlacement.current = WeightPlacement(device: .cpu, compactHost: true)
        defer { WeightPlacement.current = saved }
        let compact = try StableDiffusionModel.load(path: SDXLParityTests.folder.path)
        XCTAssertTrue(compact.unet.convIn.storedWeight.isCompact, "conv_in's 16-bit weight stays in the file")
        XCTAssertFalse(wide.unet.convIn.storedWeight.isCompact, "the default placement widens at load")

        let reference = try SafeTensorsFile(path: SDXLParityTests.root.appendingPathComponent("sdxl_reference.safetensors").path)
        func r(_ k: String) throws -> Tensor { try Tensor(reference, k) }
        let added = AddedConditioning(textEmbeds: try r("unet.text_embeds"), timeIds: try r("unet.time_ids"))
        func out(_ m: StableDiffusionModel) throws -> [Float] {
            try m.unet(r("unet.sample"), timesteps: [501, 501],
                       conditioning: UNetConditioning(context: r("unet.context"), added: added)).scalars
        }
        XCTAssertEqual(try out(compact), try out(wide), "compact and widened weights give the same UNet output")
        XCTAssertEqual(try compact.promptEncoder().encode("a fox").embedding.scalars,
                       try wide.promptEncoder().encode("a fox").embedding.scalars, "and the same text embeddings")

        // The backward re-widens compact weights instead of keeping them: the same gradient.
        func gradient(_ m: StableDiffusionModel) throws -> [Float] {
            let tape = Tape()
            let x = tape.watch(try r("unet.sample"))
            let out = try m.unet(x, timesteps: [501, 501], conditioning: UNetConditioning(context: r("unet.context"), added: added))
            return try tape.gradient(of: (out * out).sum(), wrt: [x])[0].scalars
        }
        XCTAssertEqual(try gradient(compact), try gradient(wide), "∂L/∂x through compact and widened weights")
    }
}

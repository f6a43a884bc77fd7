import Diffusion
import Foundation
import Imaging
@testable import Nodes
import Tensors
import Workflow
import XCTest

/// Options the library had and the nodes now expose: CLIP skip on
/// TextEncode, tiled VAEEncode/VAEDecode.
final class EncoderOptionTests: XCTestCase {
    private lazy var model = try! StableDiffusionModel.load(path: Fixture.tinyModel)

    func testClipSkipIsTheLibrarysLayerSkip() throws {
        let clip = CLIPPayload(encoder: try model.promptEncoder(), estimatedBytes: 0)
        func encode(_ skip: Int) throws -> ConditioningPayload {
            try TextEncode().run(NodeInputs(["clip": .object(clip, type: .clip), "prompt": .string("a red ball"),
                                             "negative": .string(""), "clip_skip": .int(skip)], paths: .currentDirectory),
                                 .standalone())["conditioning"]!.asObject(ConditioningPayload.self)
        }
        let expected = try clip.encoder.encode(prompt: "a red ball", negative: "", skipLastLayers: 1)
        XCTAssertEqual(try encode(1).positive.scalars, expected.positive.embedding.scalars, "clip_skip 1 = one final layer left out")
        XCTAssertNotEqual(try encode(1).positive.scalars, try encode(0).positive.scalars)
    }

    func testLargeImagesAreEncodedAndDecodedInTilesAboveTheThreshold() throws {
        let vae = VAEPayload(vae: model.vae, estimatedBytes: 0)
        let (w, h) = (192, 128)
        let image = try Image(width: w, height: h, planes: (0..<(3 * w * h)).map { Float(($0 * 7919) % 1000) / 1000 })
        func encode(above: Int) throws -> Tensor {
            try VAEEncode().run(NodeInputs(["vae": .object(vae, type: .vae), "image": .object(image, type: .image),
                                            "tile_above": .int(above), "tile_size": .int(64), "tile_overlap": .int(16)],
                                           paths: .currentDirectory), .standalone())["latent"]!.asObject(LatentPayload.self).latent
        }
        let whole = try encode(above: 4096), tiled = try encode(above: 100)
        let reference = try model.vae.encodeTiled(image.tensor * 2 - 1, tile: 64, overlap: 16) * model.vae.config.scalingFactor
        XCTAssertEqual(tiled.scalars, reference.scalars, "above the threshold: the library's tiled encoder")
        XCTAssertEqual(whole.scalars, try model.vae.encodeImage(image.tensor).scalars, "below it: one pass")
        func decode(_ latent: Tensor, above: Int) throws -> Image {
            try VAEDecode().run(NodeInputs(["vae": .object(vae, type: .vae), "latent": .object(LatentPayload(latent), type: .latent),
                                            "tile_above": .int(above), "tile_size": .int(64), "tile_overlap": .int(16)],
                                           paths: .currentDirectory), .standalone())["image"]!.asObject(Image.self)
        }
        let decodedTiles = try decode(whole, above: 0), decodedWhole = try decode(whole, above: 4096)
        XCTAssertEqual([decodedTiles.width, decodedTiles.height], [w, h])
        let plain = try model.vae.decodeTiled(whole * (1 / model.vae.config.scalingFactor), tile: 8, overlap: 2)
        XCTAssertEqual(decodedTiles.planes, (plain * 0.5 + 0.5).clamped(0, 1).scalars, "tile_above 0: always tiled")
        XCTAssertNotEqual(decodedTiles.planes, decodedWhole.planes, "the tiled pass is a different (blended) computation")
        XCTAssertThrowsError(try VAEDecode().run(NodeInputs(["vae": .object(vae, type: .vae), "latent": .object(LatentPayload(whole), type: .latent),
                                                             "tile_above": .int(0), "tile_size": .int(60), "tile_overlap": .int(16)],
                                                            paths: .currentDirectory), .standalone())) { error in
            XCTAssertTrue("\(error)".contains("multiples of 8"), "\(error)")
        }
    }

    func testSigmaSpacingsRunOnTheSigmaSamplersAndAreRefusedOnDDIM() throws {
        func sample(_ scheduler: String, sigmas: String, seed: Int = 0) throws -> Tensor {
            try Fixture.runLatent("""
                \(Fixture.workflowHead())
                  sample: {type: Sample, inputs: {unet: model.unet, conditioning: text.conditioning},
                           params: {steps: 3, width: 64, height: 64, scheduler: \(scheduler), sigmas: \(sigmas), seed: \(seed)}}
                outputs:
                  latent: sample.latent
                """)
        }
        XCTAssertNotEqual(try sample("euler", sigmas: "karras").scalars, try sample("euler", sigmas: "schedule").scalars,
                          "expected the Karras ramp to change the run")
        XCTAssertNoThrow(try sample("euler_a", sigmas: "exponential"))
        XCTAssertNotEqual(try sample("dpmpp_2m", sigmas: "karras").scalars, try sample("dpmpp_2m", sigmas: "schedule").scalars,
                          "expected DPM++ 2M Karras to differ from DPM++ 2M")
        let sde = try sample("dpmpp_2m_sde", sigmas: "karras", seed: 4)
        XCTAssertEqual(sde.scalars, try sample("dpmpp_2m_sde", sigmas: "karras", seed: 4).scalars,
                       "expected DPM++ 2M SDE to be reproducible from its seed")
        XCTAssertTrue(sde.scalars.allSatisfy(\.isFinite), "expected a finite latent")
        XCTAssertNotEqual(try sample("unipc", sigmas: "karras").scalars, try sample("dpmpp_2m", sigmas: "karras").scalars,
                          "expected UniPC's corrector to give another result than DPM++ 2M")
        XCTAssertThrowsError(try sample("ddim", sigmas: "karras")) { error in
            XCTAssertTrue("\(error)".contains("sigmas karras applies to the euler, euler_a, dpmpp_2m, dpmpp_2m_sde and unipc schedulers, found ddim"),
                          "\(error)")
        }
    }
}

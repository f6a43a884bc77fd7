@testable import Diffusion
@testable import Tensors
import XCTest

/// Text encoder, UNet and VAE outputs against diffusers on the tiny models,
/// ≤ 1e-4 relative to the reference's max |value|, for diffusers-folder,
/// fp16-variant and single-file loads of the same weights. (The weights are
/// fp16-representable, so all three loads hold identical values; the
/// reference is PyTorch float32, whose own rounding differs from ours by
/// ~1e-6.)
final class ModelParityTests: XCTestCase {
    let tol: Float = 1e-4

    func checkTextEncoder(_ fx: SDFixture, _ model: StableDiffusionModel, _ how: String) throws {
        for i in 0..<4 {
            let ids = try fx.ids("text.\(i).input_ids")
            let out = model.textEncoder(ids: ids)
            assertClose(out, try fx.tensor("text.\(i).last_hidden_state"), tolerance: tol, "\(fx.variant) \(how) text \(i)")
        }
    }

    func checkUNet(_ fx: SDFixture, _ model: StableDiffusionModel, _ how: String) throws {
        for i in 0..<3 {
            let x = try fx.tensor("unet.\(i).sample"), ctx = try fx.tensor("unet.\(i).encoder_hidden_states")
            let t = try fx.floats("unet.\(i).timestep")
            let out = try model.unet(x, timesteps: t, conditioning: UNetConditioning(context: ctx))
            assertClose(out, try fx.tensor("unet.\(i).out"), tolerance: tol, "\(fx.variant) \(how) unet \(i) (t = \(t))")
        }
    }

    func testSD1DiffusersFolder() throws {
        let fx = try SDFixture("sd1")
        let model = try fx.loadFolder()
        XCTAssertEqual(model.family.id, "sd15")
        try checkTextEncoder(fx, model, "folder")
        try checkUNet(fx, model, "folder")
    }

    func testSD2DiffusersFolderWithListHeadsAndLinearProjections() throws {
        let fx = try SDFixture("sd2")
        let model = try fx.loadFolder()
        XCTAssertEqual(model.unet.config.heads, [2, 4, 4])
        XCTAssertTrue(model.unet.config.useLinearProjection)
        try checkTextEncoder(fx, model, "folder")
        try checkUNet(fx, model, "folder")
    }

    func testFP16VariantFiles() throws {
        let fx = try SDFixture("sd1")
        try checkUNet(fx, try fx.loadFolder(variant: "fp16"), "fp16 variant")
    }

    func testSingleFileCheckpointsMatchTheirFolders() throws {
        for v in ["sd1", "sd2"] {
            let fx = try SDFixture(v)
            let model = try fx.loadSingleFile()
            XCTAssertEqual(model.family.id, v == "sd1" ? "sd15" : "sd2-v", "family detected from the text encoder keys")
            try checkTextEncoder(fx, model, "single file")
            try checkUNet(fx, model, "single file")
        }
    }

    func testControlNetResidualsAreAddedToSkipsAndMidBlock() throws {
        for v in ["sd1", "sd2"] {
            let fx = try SDFixture(v)
            let model = try fx.loadFolder()
            let down = try (0..<9).map { try fx.tensor("unet.control.down_residual.\($0)") }
            let cond = UNetConditioning(context: try fx.tensor("unet.control.encoder_hidden_states"), controlDown: down,
                                        controlMid: try fx.tensor("unet.control.mid_residual"))
            let x = try fx.tensor("unet.control.sample")
            XCTAssertEqual(model.unet.controlResidualShapes(batch: 2, height: 16, width: 16).down, down.map(\.shape),
                           "residual shapes the UNet expects")
            let out = try model.unet(x, timesteps: try fx.floats("unet.control.timestep"), conditioning: cond)
            assertClose(out, try fx.tensor("unet.control.out"), tolerance: tol, "\(v) unet with control residuals")
        }
    }

    /// The tiny models are too small for the automatic Winograd choice;
    /// forcing im2col, F(2×2) and F(4×4) on every 3×3 stride-1 conv in turn
    /// checks each path through whole models against diffusers.
    func testEveryConvolutionPathMatchesDiffusers() throws {
        let fx = try SDFixture("sd1")
        let model = try fx.loadFolder()
        defer { Winograd.mode = .auto }
        for mode in [Winograd.Mode.off, .only(.two), .only(.four)] {
            Winograd.mode = mode
            try checkUNet(fx, model, "conv \(mode)")
            let decoded = try model.vae.decode(try fx.tensor("vae.decode.latent"))
            assertClose(decoded, try fx.tensor("vae.decode.out"), tolerance: tol, "VAE decode, conv \(mode)")
        }
    }

    func testVAEEncodeAndDecode() throws {
        let fx = try SDFixture("sd1")
        for model in [try fx.loadFolder(), try fx.loadSingleFile()] {
            let posterior = try model.vae.encode(try fx.tensor("vae.image"))
            assertClose(posterior.mean, try fx.tensor("vae.posterior_mean"), tolerance: tol, "posterior mean")
            assertClose(posterior.logVariance, try fx.tensor("vae.posterior_logvar"), tolerance: tol, "posterior log-variance")
            assertClose(posterior.sample(noise: try fx.tensor("vae.noise")), try fx.tensor("vae.sample"), tolerance: tol,
                        "posterior sample")
            let decoded = try model.vae.decode(try fx.tensor("vae.decode.latent"))
            assertClose(decoded, try fx.tensor("vae.decode.out"), tolerance: tol, "decode")
        }
    }

    func testSingleTileDecodeEqualsUntiled() throws {
        let fx = try SDFixture("sd1")
        let model = try fx.loadFolder()
        let z = try fx.tensor("vae.decode.latent")
        let single = try model.vae.decodeTiled(z, tile: 16, overlap: 4)
        XCTAssertEqual(single.scalars, try model.vae.decode(z).scalars, "one tile covering the latent is the untiled decode")
    }
}

@testable import Diffusion
import Tensors
import XCTest

/// The tiler behind tiled VAE encode/decode. VAE tiles normalise with their
/// own group-norm statistics (as diffusers' tiling does), so a tiled decode
/// is not equal to an untiled one; what must hold is that the blending itself
/// is exact and seamless.
final class TilingTests: XCTestCase {
    func testATileCoveringTheImageIsThePlainMap() throws {
        var rng = SplitMix64(seed: 1)
        let x = Tensor.randn([1, 3, 40, 52], using: &rng)
        let w1 = Tensor.randn([4, 3, 3, 3], using: &rng)
        let f: (Tensor) -> Tensor = { conv2d($0, weight: w1, padding: 1).tanh() }
        let y = try SpatialTiler(tile: 52, overlap: 8, multiply: 1, divide: 1).run(x) { f($0) }
        XCTAssertEqual(y.scalars, f(x).scalars, "a tile as large as the image is the plain map")
    }

    func testBlendWeightsAreAPartitionOfUnity() throws {
        // Tiling the identity must return the input exactly: weights sum to 1 everywhere.
        var rng = SplitMix64(seed: 2)
        let x = Tensor.randn([2, 3, 37, 29], using: &rng)
        for (tile, overlap) in [(8, 2), (16, 8), (10, 9), (5, 0)] {
            let y = try SpatialTiler(tile: tile, overlap: overlap, multiply: 1, divide: 1).run(x) { $0 }
            XCTAssertLessThan(relativeError(y, x), 1e-6, "identity through tiles \(tile)/\(overlap)")
        }
    }

    func testUpscalingTilesLandWhereTheyBelong() throws {
        // A map that upsamples ×8 (like the decoder) tiled must equal the untiled map.
        var rng = SplitMix64(seed: 3)
        let x = Tensor.randn([1, 2, 12, 20], using: &rng)
        let y = try SpatialTiler(tile: 6, overlap: 2, multiply: 8, divide: 1).run(x) { upsampleNearest($0, factor: 8) }
        XCTAssertLessThan(relativeError(y, upsampleNearest(x, factor: 8)), 1e-6, "nearest ×8 through tiles")
        let z = try SpatialTiler(tile: 32, overlap: 16, multiply: 1, divide: 8).run(upsampleNearest(x, factor: 8)) {
            let s = $0.shape
            return $0.reshaped([s[0], s[1], s[2] / 8, 8, s[3] / 8, 8]).mean(axes: [3, 5])
        }
        XCTAssertLessThan(relativeError(z, x), 1e-6, "8× average-pool through tiles (encoder direction)")
    }

    func testTiledDecodeHasNoSeams() throws {
        let fx = try SDFixture("sd1")
        let model = try fx.loadFolder()
        let z = try fx.tensor("vae.decode.latent")
        let tiled = try model.vae.decodeTiled(z, tile: 8, overlap: 4).scalars
        // Mean |horizontal step| at the columns where tiles meet vs everywhere.
        let (h, w) = (128, 128)
        func step(_ c: Int, _ y: Int, _ x: Int) -> Float { abs(tiled[(c * h + y) * w + x + 1] - tiled[(c * h + y) * w + x]) }
        var all: Float = 0, n = 0
        for c in 0..<3 { for y in 0..<h { for x in 0..<(w - 1) { all += step(c, y, x); n += 1 } } }
        var seam: Float = 0, m = 0
        for x in [63, 64, 95, 96] { for c in 0..<3 { for y in 0..<h { seam += step(c, y, x); m += 1 } } }
        XCTAssertLessThan(seam / Float(m), 2 * all / Float(n), "steps at tile boundaries should look like any other step")
    }
}

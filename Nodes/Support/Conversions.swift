import Diffusion
import Foundation
import Imaging
import Tensors

/// A node was given something it cannot use; the message says what and why.
public struct NodeError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Seeded standard-normal noise: the same seed gives the same numbers on
/// every machine (SplitMix64 + Box–Muller, computed in Double).
public enum SeededNoise {
    /// `count` normals from `seed` (an Int seed is taken bit for bit).
    public static func normals(seed: Int, count: Int) -> [Float] {
        var generator = SplitMix64(seed: UInt64(bitPattern: Int64(seed)))
        return generator.normals(count)
    }

    /// A `[1, 4, h, w]` latent of noise.
    public static func latent(seed: Int, height: Int, width: Int, channels: Int = 4) -> Tensor {
        Tensor(shape: [1, channels, height, width], values: normals(seed: seed, count: channels * height * width))
    }

    /// Noise for step `step` of a stream derived from `seed` (blend noise,
    /// DDIM-η noise): each step gets its own generator, so a stream is the
    /// same whatever ran before it.
    public static func step(seed: Int, stream: UInt64, step: Int, shape: [Int]) -> Tensor {
        var mixer = SplitMix64(seed: UInt64(bitPattern: Int64(seed)) ^ (stream &* 0x9E37_79B9_7F4A_7C15))
        for _ in 0...step { _ = mixer.nextUInt64() }
        var generator = SplitMix64(seed: mixer.nextUInt64())
        return Tensor(shape: shape, values: generator.normals(shape.reduce(1, *)))
    }

    static let blendStream: UInt64 = 1
    static let etaStream: UInt64 = 2
}

extension Image {
    /// `[1, 3, H, W]` with values in [0, 1].
    var tensor: Tensor { Tensor(shape: [1, 3, height, width], values: planes) }

    /// An image from `[1, 3, H, W]` (or `[3, H, W]`) values, clamped to [0, 1].
    init(tensor: Tensor) throws {
        guard tensor.rank >= 3, tensor.dim(-3) == 3, tensor.count == 3 * tensor.dim(-1) * tensor.dim(-2) else {
            throw NodeError("expected an RGB tensor [1, 3, H, W], found \(tensor.shape)")
        }
        try self.init(width: tensor.dim(-1), height: tensor.dim(-2), planes: tensor.scalars.map { Swift.min(Swift.max($0, 0), 1) })
    }
}

extension Image {
    /// This image resized bilinearly (itself when the size already fits).
    func resized(width: Int, height: Int) -> Image {
        guard width != self.width || height != self.height else { return self }
        let planes = ResizeImage.bilinear(planes, channels: Image.channelCount, fromWidth: self.width,
                                          fromHeight: self.height, toWidth: width, toHeight: height)
        return try! Image(width: width, height: height, planes: planes)  // positive sizes from the caller
    }

    /// A control image `[1, channels, height, width]` in [0, 1], resized
    /// to that size; one channel is the BT.601 luminance (sketch adapters).
    func tensor(width: Int, height: Int, channels: Int) -> Tensor {
        let image = resized(width: width, height: height)
        guard channels == 1 else { return image.tensor }
        let n = width * height
        let luminance = (0..<n).map { 0.299 * image.planes[$0] + 0.587 * image.planes[n + $0] + 0.114 * image.planes[2 * n + $0] }
        return Tensor(shape: [1, 1, height, width], values: luminance)
    }
}

import Foundation

/// What a run's caller asked to see while samplers run: a small image of the
/// current estimate of the result every `every` steps (and at the last step,
/// and at every PILOT optimisation step).
public struct PreviewRequest: Sendable, Equatable {
    /// How a latent becomes a preview image.
    public enum Method: String, Sendable, CaseIterable {
        /// A fixed linear map of the latent's channels to RGB, per model
        /// family: no weights, one cell per latent cell.
        case latent2rgb
        /// The tiny autoencoder (diffusers `AutoencoderTiny`): full
        /// resolution, needs its weights in the models folder.
        case taesd
    }

    /// Previews every this many sampler steps.
    public var every: Int
    public var method: Method
    /// The preview's longer side is at most this many pixels.
    public var maxSide: Int
    /// Where `taesd` finds its weights: `taesd/` (SD 1.x/2.x) and `taesdxl/`
    /// (SDXL) diffusers folders inside it; nil: taesd falls back to latent2rgb.
    public var decoderDirectory: URL?

    public static let defaultEvery = 5
    public static let everyRange = 1...1000
    public static let defaultMaxSide = 256
    public static let maxSideRange = 16...1024

    public init(every: Int = PreviewRequest.defaultEvery, method: Method = .latent2rgb,
                maxSide: Int = PreviewRequest.defaultMaxSide, decoderDirectory: URL? = nil) {
        self.every = every
        self.method = method
        self.maxSide = maxSide
        self.decoderDirectory = decoderDirectory
    }

    /// Whether sampler step `step` (1-based) of `total` is previewed: every
    /// `every`-th step and the last.
    public func wants(step: Int, total: Int) -> Bool {
        step == total || (every > 0 && step % every == 0)
    }
}

/// One preview a node made: a PNG of its current estimate.
public struct NodePreview: Sendable, Equatable {
    public var nodeID: String
    public var nodeType: String
    /// Sampler step (1-based) and the node's total.
    public var step: Int
    public var total: Int
    /// The PNG file's bytes.
    public var png: Data
    public var width: Int
    public var height: Int
    /// The method that made it (``PreviewRequest/Method``'s raw value).
    public var method: String
    /// Why it is not the method asked for, when it is not (no taesd weights).
    public var note: String?

    public init(nodeID: String, nodeType: String, step: Int, total: Int, png: Data, width: Int, height: Int,
                method: String, note: String? = nil) {
        self.nodeID = nodeID
        self.nodeType = nodeType
        self.step = step
        self.total = total
        self.png = png
        self.width = width
        self.height = height
        self.method = method
        self.note = note
    }
}

extension NodePreview {
    /// The file name a preview is saved under: `[SEQ-]NODE-stepNNNN.png`,
    /// with characters outside `[A-Za-z0-9._-]` in the node id (a template
    /// node's `outer/inner`) written as `_`. `sequence` (the event's `seq`)
    /// orders a job's previews as they came.
    public static func fileName(node: String, step: Int, sequence: Int? = nil) -> String {
        let safe = String(node.prefix(100).map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
        let prefix = sequence.map { String(format: "%06d-", $0) } ?? ""
        return prefix + safe + String(format: "-step%04d.png", step)
    }
}

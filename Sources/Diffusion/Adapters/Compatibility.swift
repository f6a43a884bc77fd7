import Tensors

/// An adapter that does not fit the model it is used with. The message
/// names both sides and what differs.
public struct AdapterMismatchError: Error, CustomStringConvertible, Equatable {
    public let adapter: String
    public let model: String
    public let reason: String

    public var description: String { "\(adapter) does not fit \(model): \(reason)" }
}

extension UNetConfig {
    var summary: String {
        "cross-attention width \(crossAttentionDim), blocks \(blockOutChannels), \(layersPerBlock) layers per block"
    }
}

extension ControlNetModel {
    /// Refuses a ControlNet built for another UNet (e.g. SD 2 on SD 1).
    public func checkCompatible(with unet: UNet2DConditionModel, unetSource: String = "the UNet") throws {
        try ControlNetModel.checkCompatible(config, source: source, with: unet.config, unetSource: unetSource)
    }

    /// The configuration-level check behind `checkCompatible(with:)`.
    public static func checkCompatible(_ cn: ControlNetConfig, source: String, with u: UNetConfig, unetSource: String) throws {
        let c = cn.unet
        guard c.crossAttentionDim == u.crossAttentionDim, c.blockOutChannels == u.blockOutChannels,
              c.layersPerBlock == u.layersPerBlock, c.downBlockTypes == u.downBlockTypes else {
            throw AdapterMismatchError(adapter: "ControlNet \(source) (\(c.summary))", model: "\(unetSource) (\(u.summary))",
                                       reason: "their encoders differ, so the residuals cannot be added")
        }
    }
}

extension IPAdapter {
    /// Refuses an IP-Adapter whose tokens do not match the UNet's context width
    /// or whose projection expects another image-embedding size.
    public func checkCompatible(with unet: UNet2DConditionModel, encoder: CLIPVisionModel,
                                unetSource: String = "the UNet", encoderSource: String = "the image encoder") throws {
        guard crossAttentionDim == unet.config.crossAttentionDim else {
            throw AdapterMismatchError(adapter: "IP-Adapter \(source) (tokens of width \(crossAttentionDim))",
                                       model: "\(unetSource) (cross-attention width \(unet.config.crossAttentionDim))",
                                       reason: "token widths differ")
        }
        guard imageEmbedDim == encoder.config.projectionDim else {
            throw AdapterMismatchError(adapter: "IP-Adapter \(source) (expects image embeddings of \(imageEmbedDim))",
                                       model: "\(encoderSource) (projects to \(encoder.config.projectionDim))",
                                       reason: "wrong vision encoder")
        }
    }
}

extension AdapterStack {
    /// Checks every adapter against `unet` for a latent of `height`×`width`
    /// before any sampling starts.
    public func checkCompatible(with unet: UNet2DConditionModel, height: Int, width: Int, unetSource: String = "the UNet") throws {
        for use in controlNets { try use.model.checkCompatible(with: unet, unetSource: unetSource) }
        if let features = adapterFeatures {
            // One feature per down block, at that block's resolution and width.
            let shapes = unet.controlResidualShapes(batch: 1, height: height, width: width).down
            var expected: [[Int]] = []
            var index = 0
            for (i, _) in unet.config.blockOutChannels.enumerated() {
                index += unet.config.layersPerBlock
                expected.append(shapes[index])
                if i < unet.config.blockOutChannels.count - 1 { index += 1 }
            }
            let found = features.map(\.shape)
            guard found.count <= expected.count, zip(found, expected).allSatisfy({ $0 == $1 }) else {
                throw AdapterMismatchError(adapter: "T2I-Adapter (features \(found))", model: "\(unetSource) (down blocks \(expected))",
                                           reason: "feature shapes differ from the UNet's down-block outputs")
            }
        }
        if let ip = imagePrompt, ip.adapter.crossAttentionDim != unet.config.crossAttentionDim {
            throw AdapterMismatchError(adapter: "IP-Adapter \(ip.adapter.source)", model: unetSource,
                                       reason: "token width \(ip.adapter.crossAttentionDim) vs cross-attention width \(unet.config.crossAttentionDim)")
        }
    }
}

import Foundation

/// Where a text encoder sits in an original-layout single-file checkpoint.
public enum SingleFileTextLayout: Sendable, Equatable {
    /// Hugging Face CLIP names under `prefix` (SD 1.x `cond_stage_model.transformer.`,
    /// SDXL `conditioner.embedders.0.transformer.`).
    case openAI(prefix: String)
    /// OpenCLIP's text tower under `prefix`; the file stores
    /// `skippedLayers` more residual blocks than the encoder uses (SD 2.x
    /// conditions on the penultimate block, so it loads one fewer).
    case openCLIP(prefix: String, skippedLayers: Int)

    public var prefix: String {
        switch self {
        case .openAI(let p), .openCLIP(let p, _): p
        }
    }

    /// Whether a file with `keys` holds this encoder.
    func isPresent(in keys: Set<String>) -> Bool {
        switch self {
        case .openAI(let p): keys.contains { $0.hasPrefix(p) }
        case .openCLIP(let p, _): keys.contains(p + "token_embedding.weight")
        }
    }
}

/// One text encoder of a family and how its output conditions the UNet.
public struct TextEncoderRole: Sendable, Equatable {
    /// The diffusers folder component (`text_encoder`, `text_encoder_2`).
    public var component: String
    /// Its tokenizer's folder component (`tokenizer`, `tokenizer_2`).
    public var tokenizerComponent: String
    /// The shape a single-file checkpoint's config-less load assumes.
    public var preset: CLIPTextConfig
    public var padding: PromptPadding
    /// SDXL conditions on `hidden_states[-2]` without the final layer norm;
    /// SD 1.x/2.x on the final-norm last state.
    public var penultimate: Bool
    /// Whether this encoder's pooled projection is the UNet's pooled text input.
    public var pooled: Bool
    /// Its place in a single-file checkpoint.
    public var singleFile: SingleFileTextLayout
    /// Which LoRA entries merge into it (`lora_te1_`/`text_encoder.` or
    /// `lora_te2_`/`text_encoder_2.`).
    public var loraTarget: LoRATarget { component == "text_encoder_2" ? .textEncoder2 : .textEncoder }

    public init(component: String, tokenizerComponent: String, preset: CLIPTextConfig, padding: PromptPadding,
                penultimate: Bool = false, pooled: Bool = false, singleFile: SingleFileTextLayout) {
        self.component = component
        self.tokenizerComponent = tokenizerComponent
        self.preset = preset
        self.padding = padding
        self.penultimate = penultimate
        self.pooled = pooled
        self.singleFile = singleFile
    }
}

/// A model family as data: its UNet layout, its text encoders and how their
/// outputs are used, its VAE and its default noise schedule. Loading,
/// prompt encoding and sampling read these values, so a new family is a new
/// preset here (and, for single files, a key map), not edits across the tree.
public struct ModelFamily: Sendable, Equatable, CustomStringConvertible {
    /// Short name: `sd15`, `sd2`, `sd2-v`, `sdxl-base`.
    public var id: String
    public var name: String
    public var unet: UNetConfig
    public var textEncoders: [TextEncoderRole]
    public var vae: VAEConfig
    public var prediction: PredictionType
    /// The image side the family was trained at (the default size of new latents).
    public var imageSize: Int
    /// diffusers' `force_zeros_for_empty_prompt`: an empty negative prompt
    /// conditions with zeros, not with the encoding of "".
    public var zeroEmptyNegative: Bool

    public var description: String { "\(name) (\(id))" }

    /// Whether the UNet takes SDXL's pooled text and time ids.
    public var hasAddedConditioning: Bool { unet.addition != nil }

    // MARK: Presets

    static let openAIText = TextEncoderRole(component: "text_encoder", tokenizerComponent: "tokenizer",
                                            preset: .sd1, padding: .sd1,
                                            singleFile: .openAI(prefix: "cond_stage_model.transformer."))

    /// Stable Diffusion 1.x (runwayml/stable-diffusion-v1-5).
    public static let sd15 = ModelFamily(id: "sd15", name: "Stable Diffusion 1.x", unet: .sd1, textEncoders: [openAIText],
                                         vae: .sd, prediction: .epsilon, imageSize: 512, zeroEmptyNegative: false)

    /// Stable Diffusion 2.x base (512, ε-prediction).
    public static let sd2 = ModelFamily(
        id: "sd2", name: "Stable Diffusion 2.x",
        unet: .sd2, textEncoders: [TextEncoderRole(component: "text_encoder", tokenizerComponent: "tokenizer",
                                                   preset: .sd2, padding: .sd2,
                                                   singleFile: .openCLIP(prefix: "cond_stage_model.model.", skippedLayers: 1))],
        vae: .sd, prediction: .epsilon, imageSize: 512, zeroEmptyNegative: false)

    /// Stable Diffusion 2.x 768-v (v-prediction).
    public static let sd2v: ModelFamily = {
        var f = sd2
        f.id = "sd2-v"
        f.name = "Stable Diffusion 2.x 768-v"
        f.prediction = .vPrediction
        f.imageSize = 768
        return f
    }()

    /// SDXL base 1.0: CLIP ViT-L and OpenCLIP ViT-bigG, penultimate states
    /// concatenated (768 + 1280 = 2048), the bigG pooled projection and six
    /// size/crop numbers as added conditioning.
    public static let sdxlBase: ModelFamily = {
        var unet = UNetConfig()
        unet.blockOutChannels = [320, 640, 1280]
        unet.downBlockTypes = ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"]
        unet.upBlockTypes = ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]
        unet.heads = [5, 10, 20]
        unet.transformerLayers = [1, 2, 10]
        unet.crossAttentionDim = 2048
        unet.useLinearProjection = true
        unet.addition = AdditionEmbeddingConfig(timeEmbedDim: 256, inputDim: 2816)
        unet.sampleSize = 128
        var bigG = CLIPTextConfig()
        bigG.hiddenSize = 1280; bigG.intermediateSize = 5120; bigG.heads = 20; bigG.layers = 32
        bigG.activation = .gelu
        bigG.projectionDim = 1280
        var vae = VAEConfig.sd
        vae.scalingFactor = 0.13025
        return ModelFamily(
            id: "sdxl-base", name: "Stable Diffusion XL",
            unet: unet,
            textEncoders: [
                TextEncoderRole(component: "text_encoder", tokenizerComponent: "tokenizer", preset: .sd1, padding: .sd1,
                                penultimate: true, singleFile: .openAI(prefix: "conditioner.embedders.0.transformer.")),
                TextEncoderRole(component: "text_encoder_2", tokenizerComponent: "tokenizer_2", preset: bigG, padding: .sd2,
                                penultimate: true, pooled: true,
                                singleFile: .openCLIP(prefix: "conditioner.embedders.1.model.", skippedLayers: 0)),
            ],
            vae: vae, prediction: .epsilon, imageSize: 1024, zeroEmptyNegative: true)
    }()

    public static let all: [ModelFamily] = [.sd15, .sd2, .sd2v, .sdxlBase]

    /// The families a single file may be, most specific first: a file holds
    /// no scheduler config, so SD 2.x files are taken as 768-v (`sd2-v`)
    /// unless a config folder or `prediction` says otherwise.
    static let singleFileCandidates: [ModelFamily] = [.sdxlBase, .sd2v, .sd15]

    /// The preset called `id`.
    public static func named(_ id: String) -> ModelFamily? { all.first { $0.id == id } }

    // MARK: Detection

    /// The family a diffusers folder's configs describe: SDXL when the UNet
    /// takes added text/time conditioning (and the folder has a second
    /// text encoder), SD 2.x when the cross-attention width is ≥ 1024 or the
    /// text encoder is OpenCLIP's (gelu), else SD 1.x; v-prediction picks
    /// `sd2-v`.
    static func detect(unet: UNetConfig, text: CLIPTextConfig, prediction: PredictionType) -> ModelFamily {
        if unet.addition != nil { return .sdxlBase }
        if unet.crossAttentionDim >= 1024 || text.activation == .gelu { return prediction == .vPrediction ? .sd2v : .sd2 }
        return .sd15
    }
}

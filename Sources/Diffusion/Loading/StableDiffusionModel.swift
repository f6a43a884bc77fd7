import Foundation
import SafeTensors
import Tensors

/// A loaded Stable Diffusion model: text encoders, UNet, VAE and noise
/// schedule, from a diffusers folder or a single-file (LDM) checkpoint, with
/// the family that says how they fit together.
public final class StableDiffusionModel {
    public let family: ModelFamily
    /// One per `family.textEncoders` role, in order.
    public let textEncoders: [CLIPTextModel]
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    public let schedule: NoiseScheduleConfig
    /// Each text encoder's diffusers tokenizer folder, when the model came with one.
    public let tokenizerFolders: [URL?]
    /// Where the weights came from.
    public let source: String
    /// What merging LoRAs at load did (empty without LoRAs).
    public internal(set) var loraReport = LoRAReport()

    init(family: ModelFamily, textEncoders: [CLIPTextModel], unet: UNet2DConditionModel, vae: AutoencoderKL,
         schedule: NoiseScheduleConfig, tokenizerFolders: [URL?], source: String) {
        precondition(textEncoders.count == family.textEncoders.count && tokenizerFolders.count == textEncoders.count,
                     "one text encoder and tokenizer folder per role of \(family)")
        self.family = family
        self.textEncoders = textEncoders
        self.unet = unet
        self.vae = vae
        self.schedule = schedule
        self.tokenizerFolders = tokenizerFolders
        self.source = source
    }

    /// The first (for SD 1.x/2.x the only) text encoder.
    public var textEncoder: CLIPTextModel { textEncoders[0] }

    /// Loads `path`: a diffusers folder (with `model_index.json`) or a
    /// single-file `.safetensors` checkpoint. `config` names a diffusers
    /// folder whose config files describe a single file (head counts are not
    /// in the weights); without it the SD 1.x/2.x presets apply. `variant`
    /// picks `*.VARIANT.safetensors` files in a diffusers folder.
    ///
    /// `loras` are merged into the UNet and text-encoder weights as they
    /// load (W + scale·(α/r)·up·down), so each call builds a fresh model from
    /// the memory-mapped files and a LoRA-free model stays as it was. Entries
    /// and keys that match nothing are listed in `loraReport.unknown`.
    public static func load(path: String, config: String? = nil, variant: String? = nil,
                            prediction: PredictionType? = nil,
                            loras: [(LoRA, Float)] = []) throws -> StableDiffusionModel {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelLoadError.missingFile(path: path, what: "model (no such file or folder)")
        }
        if isDir.boolValue {
            return try DiffusersFolder(path).load(variant: variant, prediction: prediction, loras: loras)
        }
        return try SingleFileCheckpoint(path: path).load(configFolder: config.map(DiffusersFolder.init), prediction: prediction,
                                                         loras: loras)
    }
}

/// A diffusers pipeline folder.
struct DiffusersFolder {
    let root: URL

    init(_ path: String) { root = URL(fileURLWithPath: path) }

    func config(_ component: String, _ file: String = "config.json") throws -> JSONConfig {
        let url = root.appendingPathComponent(component).appendingPathComponent(file)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ModelLoadError.missingFile(path: url.path, what: "\(component) config (is \(root.path) a diffusers folder?)")
        }
        return try JSONConfig(path: url.path)
    }

    /// The safetensors weights of `component`, preferring `variant` files.
    func weights(_ component: String, base: String, variant: String?) throws -> SafeTensorsFile {
        let dir = root.appendingPathComponent(component)
        var candidates = ["\(base).safetensors"]
        if let variant { candidates.insert("\(base).\(variant).safetensors", at: 0) } else { candidates.append("\(base).fp16.safetensors") }
        for name in candidates {
            let url = dir.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: url.path) { return try SafeTensorsFile(path: url.path) }
        }
        let bin = dir.appendingPathComponent("\(base).bin")
        if FileManager.default.fileExists(atPath: bin.path) {
            throw ModelLoadError.unrecognised(path: bin.path, reason: "PyTorch pickle weights are not supported; convert the model to .safetensors")
        }
        throw ModelLoadError.missingFile(path: dir.appendingPathComponent(candidates[0]).path, what: "\(component) weights")
    }

    func unetConfig() throws -> UNetConfig { try UNetConfig(config("unet")) }
    func vaeConfig() throws -> VAEConfig { try VAEConfig(config("vae")) }
    func textConfig() throws -> CLIPTextConfig { try CLIPTextConfig(config("text_encoder")) }
    func scheduleConfig() throws -> NoiseScheduleConfig {
        try NoiseScheduleConfig(config("scheduler", "scheduler_config.json"))
    }

    func load(variant: String?, prediction: PredictionType?, loras: [(LoRA, Float)]) throws -> StableDiffusionModel {
        let textConfig = try textConfig(), unetConfig = try unetConfig(), vaeConfig = try vaeConfig()
        var schedule = try scheduleConfig()
        if let prediction { schedule.prediction = prediction }
        let family = ModelFamily.detect(unet: unetConfig, text: textConfig, prediction: schedule.prediction)
        var report = LoRAReport(loras, components: Set([.unet] + family.textEncoders.map(\.loraTarget)))
        let unetSource = WeightSource(files: [try weights("unet", base: "diffusion_pytorch_model", variant: variant)])
        try unetSource.merge(loras, target: .unet, report: &report)
        var encoders: [CLIPTextModel] = []
        for (i, role) in family.textEncoders.enumerated() {
            let config = i == 0 ? textConfig : try CLIPTextConfig(self.config(role.component))
            let source = WeightSource.clipText(try weights(role.component, base: "model", variant: variant))
            try source.merge(loras, target: role.loraTarget, report: &report)
            encoders.append(try loadChecked(source, ignoring: { $0.hasSuffix("position_ids") }) {
                try CLIPTextModel(WeightLoader($0), config: config)
            })
        }
        let unet = try loadChecked(unetSource) {
            try UNet2DConditionModel(WeightLoader($0), config: unetConfig)
        }
        let vae = try loadChecked(WeightSource(files: [weights("vae", base: "diffusion_pytorch_model", variant: variant)])) {
            try AutoencoderKL(WeightLoader($0), config: vaeConfig)
        }
        let tokenizers = family.textEncoders.map { role -> URL? in
            let url = root.appendingPathComponent(role.tokenizerComponent)
            return FileManager.default.fileExists(atPath: url.path) ? url : nil
        }
        let model = StableDiffusionModel(family: family, textEncoders: encoders, unet: unet, vae: vae, schedule: schedule,
                                         tokenizerFolders: tokenizers, source: root.path)
        model.loraReport = report
        return model
    }
}

/// Builds a component and refuses weights it never read.
func loadChecked<T>(_ source: WeightSource, ignoring: (String) -> Bool = { _ in false },
                    _ build: (WeightSource) throws -> T) throws -> T {
    let model = try build(source)
    let unused = source.unused(ignoring: ignoring)
    guard unused.isEmpty else { throw ModelLoadError.unexpectedTensors(keys: unused, source: source.description) }
    return model
}

/// An original-layout single-file checkpoint (A1111 / ComfyUI).
struct SingleFileCheckpoint {
    let file: SafeTensorsFile
    let keys: Set<String>

    init(path: String) throws {
        guard path.hasSuffix(".safetensors") else {
            throw ModelLoadError.unrecognised(path: path, reason: "only .safetensors checkpoints are supported (no pickled .ckpt/.pt)")
        }
        file = try SafeTensorsFile(path: path)
        keys = Set(file.names)
    }

    /// The first of `ModelFamily.singleFileCandidates` whose text encoders
    /// are all in the file (SDXL: both `conditioner.embedders`; SD 2.x:
    /// OpenCLIP under `cond_stage_model.model.`; SD 1.x: CLIP under
    /// `cond_stage_model.transformer.`).
    var family: ModelFamily? {
        ModelFamily.singleFileCandidates.first { f in f.textEncoders.allSatisfy { $0.singleFile.isPresent(in: keys) } }
    }

    func load(configFolder: DiffusersFolder?, prediction: PredictionType?, loras: [(LoRA, Float)]) throws -> StableDiffusionModel {
        guard keys.contains("model.diffusion_model.input_blocks.0.0.weight") else {
            throw ModelLoadError.unrecognised(path: file.source, reason: "no model.diffusion_model.* UNet weights: not a Stable Diffusion checkpoint")
        }
        guard let family else {
            throw ModelLoadError.unrecognised(
                path: file.source,
                reason: "no text encoder weights of a known family (cond_stage_model.* for SD 1.x/2.x, conditioner.embedders.* for SDXL)")
        }
        var unetConfig = try configFolder?.unetConfig() ?? family.unet
        let vaeConfig = try configFolder?.vaeConfig() ?? family.vae
        var schedule = try configFolder?.scheduleConfig() ?? .stableDiffusion(family.prediction)
        if let prediction { schedule.prediction = prediction }
        if configFolder == nil {
            let s = try file.info("model.diffusion_model.input_blocks.0.0.weight").shape
            if s.count == 4 { unetConfig.inChannels = s[1] }          // 9 for inpainting checkpoints
        }
        let unetSource = WeightSource(files: [file], locations: LDMKeyMap.unet(unetConfig, keys: keys))
        let vaeSource = WeightSource(files: [file], locations: LDMKeyMap.vae(vaeConfig, keys: keys))
        var textSources: [WeightSource] = [], textConfigs: [CLIPTextConfig] = []
        for role in family.textEncoders {
            var config = try configFolder.map { try CLIPTextConfig($0.config(role.component)) } ?? role.preset
            switch role.singleFile {
            case .openAI(let prefix):
                textSources.append(WeightSource(files: [file], locations: LDMKeyMap.clipText(keys: keys, prefix: prefix)))
            case let .openCLIP(prefix, skipped):
                let width = try file.info(prefix + "token_embedding.weight").shape.last ?? 0
                if configFolder == nil {
                    config.layers = max(1, LDMKeyMap.openCLIPLayerCount(keys: keys, prefix: prefix) - skipped)
                }
                textSources.append(WeightSource(files: [file], locations: LDMKeyMap.openCLIPText(
                    keys: keys, width: width, prefix: prefix, projection: config.projectionDim != nil)))
            }
            textConfigs.append(config)
        }
        var report = LoRAReport(loras, components: Set([.unet] + family.textEncoders.map(\.loraTarget)))
        for (source, role) in zip(textSources, family.textEncoders) {
            try source.merge(loras, target: role.loraTarget, report: &report)
        }
        try unetSource.merge(loras, target: .unet, report: &report)
        let detected = ModelFamily.detect(unet: unetConfig, text: textConfigs[0], prediction: schedule.prediction)
        let model = StableDiffusionModel(
            family: detected.textEncoders.count == family.textEncoders.count ? detected : family,
            textEncoders: try zip(textSources, textConfigs).map { try CLIPTextModel(WeightLoader($0), config: $1) },
            unet: try UNet2DConditionModel(WeightLoader(unetSource), config: unetConfig),
            vae: try AutoencoderKL(WeightLoader(vaeSource), config: vaeConfig),
            schedule: schedule, tokenizerFolders: family.textEncoders.map { _ in nil }, source: file.source)
        let unused = unusedKeys(read: [unetSource, vaeSource] + textSources, family: family,
                                textLayers: textConfigs.map(\.layers))
        guard unused.isEmpty else { throw ModelLoadError.unexpectedTensors(keys: unused, source: file.source) }
        model.loraReport = report
        return model
    }

    /// Keys of the UNet, VAE and text-encoder sections that no component
    /// read: refused, as a diffusers folder's unused tensors are, since they
    /// mean the file is not the architecture the config describes. Not
    /// weights of the inference model, and so not reported: the noise
    /// schedule buffers and EMA copies (outside these sections), position-id
    /// buffers, OpenCLIP's contrastive head (`logit_scale`, and
    /// `text_projection` where the family does not pool, `attn_mask`), the
    /// OpenCLIP blocks a family skips (SD 2.x's last; more blocks than that
    /// are reported), and training-only
    /// `first_stage_model.loss.*` (discriminator/LPIPS) weights.
    func unusedKeys(read sources: [WeightSource], family: ModelFamily, textLayers: [Int]) -> [String] {
        let used = sources.reduce(into: Set<String>()) { $0.formUnion($1.usedKeys()) }
        let sections = ["model.diffusion_model.", "first_stage_model.", "cond_stage_model.", "conditioner."]
        let openCLIP: [(prefix: String, skipped: Range<Int>)] = zip(family.textEncoders, textLayers).compactMap { role, layers in
            if case let .openCLIP(prefix, skipped) = role.singleFile { return (prefix, layers..<(layers + skipped)) }
            return nil
        }
        func ignorable(_ key: String) -> Bool {
            if key.hasSuffix("position_ids") || key.hasPrefix("first_stage_model.loss.") { return true }
            guard let (prefix, skipped) = openCLIP.first(where: { key.hasPrefix($0.prefix) }) else { return false }
            let rest = key.dropFirst(prefix.count)
            if ["logit_scale", "text_projection", "attn_mask"].contains(String(rest)) { return true }
            let blocks = "transformer.resblocks."
            guard rest.hasPrefix(blocks), let index = Int(rest.dropFirst(blocks.count).prefix { $0 != "." }) else { return false }
            return skipped.contains(index)   // only the blocks the family skips (SD 2.x: the last one)
        }
        return file.names.filter { key in
            sections.contains { key.hasPrefix($0) } && !used.contains(key) && !ignorable(key)
        }.sorted()
    }
}

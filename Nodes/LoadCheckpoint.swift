import Diffusion
import Foundation
import Workflow

/// Loads a Stable Diffusion checkpoint of any supported family.
struct LoadCheckpoint: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "LoadCheckpoint", category: "loaders",
        doc: """
            Loads a Stable Diffusion checkpoint (SD 1.x, SD 2.x ε or v-prediction, SDXL base): a diffusers \
            folder (model_index.json, unet/, vae/, text_encoder/ and for SDXL text_encoder_2/, scheduler/) or a \
            single-file .safetensors checkpoint (A1111/ComfyUI layout). The family is read from the configs or the \
            tensor names and shapes, and the same downstream nodes serve every family. Its files are \
            fingerprinted into the cache key, so a changed model reloads and an unchanged one is loaded once.
            """,
        inputs: [
            .file("path", doc: "A diffusers folder or a single-file .safetensors checkpoint."),
            .file("config", optional: true,
                  doc: "A diffusers folder whose config files describe a single-file checkpoint (optional)."),
        ],
        outputs: [
            .output("unet", .unet, doc: "The denoising UNet with the checkpoint's noise schedule."),
            .output("vae", .vae, doc: "The autoencoder (image ↔ latent)."),
            .output("clip", .clip, doc: "The text encoders with their tokenizer (two for SDXL)."),
        ])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let path = try inputs.path("path")
        let config = inputs.has("config") ? try inputs.path("config").path : nil
        let recipe = CheckpointRecipe(path: path.path, config: config)
        let model = try recipe.load()
        let sizes = ComponentSizes(path)
        return [
            "unet": .object(UNetPayload(unet: model.unet, schedule: model.schedule, estimatedBytes: sizes.unet, recipe: recipe),
                            type: .unet),
            "vae": .object(VAEPayload(vae: model.vae, estimatedBytes: sizes.vae), type: .vae),
            "clip": .object(try CLIPPayload(model, recipe: recipe, estimatedBytes: sizes.textEncoder), type: .clip),
        ]
    }
}

extension CLIPPayload {
    /// The text encoders of `model` with their tokenizer.
    convenience init(_ model: StableDiffusionModel, recipe: CheckpointRecipe, estimatedBytes: Int) throws {
        self.init(encoder: try model.promptEncoder(), estimatedBytes: estimatedBytes, recipe: recipe)
    }
}

/// Bytes each component's weights take, from the files (float32 in memory:
/// fp16 files count double). A single file is split 80/10/10.
struct ComponentSizes {
    var unet = 0, vae = 0, textEncoder = 0

    init(_ url: URL) {
        let manager = FileManager.default
        var isFolder: ObjCBool = false
        guard manager.fileExists(atPath: url.path, isDirectory: &isFolder) else { return }
        func bytes(_ folder: URL) -> Int {
            guard let items = try? manager.contentsOfDirectory(at: folder, includingPropertiesForKeys: [.fileSizeKey])
            else { return 0 }
            return items.filter { $0.pathExtension == "safetensors" }.reduce(0) { total, file in
                let size = (try? file.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0
                return total + (file.lastPathComponent.contains(".fp16.") ? 2 * size : size)
            }
        }
        if isFolder.boolValue {
            unet = bytes(url.appendingPathComponent("unet"))
            vae = bytes(url.appendingPathComponent("vae"))
            textEncoder = bytes(url.appendingPathComponent("text_encoder")) + bytes(url.appendingPathComponent("text_encoder_2"))
        } else {
            let total = ((try? manager.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0) * 2
            unet = total * 8 / 10
            vae = total / 10
            textEncoder = total / 10
        }
    }
}

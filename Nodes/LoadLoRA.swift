import Diffusion
import Foundation
import Workflow

/// Merges a LoRA into the UNet and the text encoder.
struct LoadLoRA: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "LoadLoRA", category: "loaders",
        doc: """
            Applies a LoRA file (kohya/webui `lora_unet_…` / `lora_te_…` keys, or diffusers/peft `unet.… lora_A/B` \
            keys) to the UNet and the text encoders (SDXL: `lora_te1_`/`lora_te2_`, `text_encoder_2.`): W + scale·(α/r)·up·down for every module it names. The \
            checkpoint is loaded again with the LoRA merged as the weights are read (models are never changed in \
            place, so the LoRA-free model stays cached beside it); chain LoadLoRA nodes to stack LoRAs. Adapters \
            already attached to `unet` carry over. A LoRA for another architecture fails; with `strict` (the \
            default) so does one with entries that match no weight of the model. Its file is fingerprinted into \
            the cache key.
            """,
        inputs: [
            .connection("unet", .unet, doc: "The UNet (LoadCheckpoint.unet or another LoadLoRA's)."),
            .connection("clip", .clip, doc: "The text encoder (LoadCheckpoint.clip or another LoadLoRA's)."),
            .file("path", doc: "The LoRA .safetensors file."),
            .parameter("scale", .float, default: .float(1.0), min: -10, max: 10, doc: "LoRA strength for the UNet."),
            .parameter("clip_scale", .float, optional: true, min: -10, max: 10,
                       doc: "LoRA strength for the text encoder (default: `scale`)."),
            .parameter("strict", .bool, default: .bool(true),
                       doc: "Fail when an entry of the file matches no weight of the model (false: skip such entries)."),
        ],
        outputs: [
            .output("unet", .unet, doc: "The UNet with the LoRA merged."),
            .output("clip", .clip, doc: "The text encoder with the LoRA merged."),
        ])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let unet = try inputs.object("unet", as: UNetPayload.self)
        let clip = try inputs.object("clip", as: CLIPPayload.self)
        let path = try inputs.path("path").path
        let scale = Float(try inputs.float("scale"))
        let clipScale = inputs.has("clip_scale") ? Float(try inputs.float("clip_scale")) : scale
        guard var unetRecipe = unet.recipe, var clipRecipe = clip.recipe else {
            throw NodeError("the UNet or text encoder did not come from LoadCheckpoint, so it cannot be reloaded with a LoRA")
        }
        guard unetRecipe.path == clipRecipe.path, unetRecipe.config == clipRecipe.config else {
            throw NodeError("the UNet comes from \(unetRecipe.path) but the text encoder from \(clipRecipe.path)")
        }
        unetRecipe.loras.append(.init(path: path, scale: scale))
        clipRecipe.loras.append(.init(path: path, scale: clipScale))

        // One load when both recipes agree (the usual case), else one per component.
        let unetModel = try load(unetRecipe, strict: try inputs.bool("strict"))
        let clipModel = clipRecipe == unetRecipe ? unetModel : try load(clipRecipe, strict: try inputs.bool("strict"))
        let newUNet = UNetPayload(unet: unetModel.unet, schedule: unet.schedule, estimatedBytes: estimatedBytes(unet),
                                  recipe: unetRecipe, adapters: unet.adapters)
        let newCLIP = try CLIPPayload(clipModel, recipe: clipRecipe, estimatedBytes: clip.estimatedBytes)
        return ["unet": .object(newUNet, type: .unet), "clip": .object(newCLIP, type: .clip)]
    }

    private func load(_ recipe: CheckpointRecipe, strict: Bool) throws -> StableDiffusionModel {
        let model = try recipe.load()
        if strict, !model.loraReport.unknown.isEmpty {
            let unknown = model.loraReport.unknown
            throw NodeError("\(unknown.count) LoRA entr\(unknown.count == 1 ? "y matches" : "ies match") no weight of \(recipe.path): "
                            + unknown.prefix(5).joined(separator: "; ") + (unknown.count > 5 ? "; …" : "")
                            + " (set strict: false to skip them)")
        }
        return model
    }

    /// The UNet's own bytes: a payload derived by an Apply* node counts only its additions.
    private func estimatedBytes(_ unet: UNetPayload) -> Int {
        ComponentSizes(URL(fileURLWithPath: unet.recipe?.path ?? "")).unet
    }
}

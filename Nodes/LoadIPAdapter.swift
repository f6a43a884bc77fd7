import Diffusion
import Foundation
import SafeTensors
import Workflow

/// Loads an IP-Adapter and the CLIP image encoder it was trained with.
struct LoadIPAdapter: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "LoadIPAdapter", category: "loaders",
        doc: """
            Loads an IP-Adapter (image prompt adapter, SD 1.x base variant): its single .safetensors file \
            (image_proj.* and ip_adapter.N.to_k_ip / to_v_ip, e.g. h94/IP-Adapter ip-adapter_sd15.safetensors) and \
            the CLIP vision encoder it was trained with (a transformers CLIPVisionModelWithProjection folder, \
            e.g. models/image_encoder). An encoder whose embedding size the adapter does not expect fails here. \
            ApplyIPAdapter binds it to a UNet with a reference image; both paths are fingerprinted into the cache key.
            """,
        inputs: [
            .file("path", doc: "The IP-Adapter .safetensors file."),
            .file("image_encoder", doc: "The CLIP image encoder folder (config.json + model.safetensors)."),
        ],
        outputs: [.output("ip_adapter", .ipAdapter, doc: "The adapter and its image encoder; connect it to ApplyIPAdapter.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let path = try inputs.path("path"), encoderFolder = try inputs.path("image_encoder")
        let encoder = try CLIPVisionModel.load(folder: encoderFolder.path)
        let file = try SafeTensorsFile(path: path.path)
        guard let projection = file.names.contains("image_proj.proj.weight") ? try file.info("image_proj.proj.weight").shape : nil,
              projection.count == 2 else {
            throw NodeError("\(path.path) has no image_proj.proj.weight [tokens·width, embedding]: not an IP-Adapter (SD 1.x base variant)")
        }
        guard projection[1] == encoder.config.projectionDim else {
            throw NodeError("IP-Adapter \(path.path) (expects image embeddings of \(projection[1])) does not fit the image encoder "
                            + "\(encoderFolder.path) (projects to \(encoder.config.projectionDim)): wrong vision encoder")
        }
        let bytes = weightBytes(path) + weightBytes(encoderFolder)
        return ["ip_adapter": .object(IPAdapterPayload(path: path.path, encoder: encoder, estimatedBytes: bytes), type: .ipAdapter)]
    }
}

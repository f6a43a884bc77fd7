import Diffusion
import Workflow

/// Loads a T2I-Adapter.
struct LoadT2IAdapter: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "LoadT2IAdapter", category: "loaders",
        doc: """
            Loads a T2I-Adapter: a diffusers T2IAdapter folder (config.json + \
            diffusion_pytorch_model.safetensors; full or light adapter, e.g. TencentARC/t2iadapter_sketch_sd15v2). \
            ApplyT2IAdapter attaches it to a UNet; its files are fingerprinted into the cache key.
            """,
        inputs: [.file("path", doc: "A diffusers T2I-Adapter folder.")],
        outputs: [.output("t2i_adapter", .t2iAdapter, doc: "The adapter; connect it to ApplyT2IAdapter.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let path = try inputs.path("path")
        let model = try T2IAdapter.load(path: path.path)
        return ["t2i_adapter": .object(T2IAdapterPayload(model: model, estimatedBytes: weightBytes(path)), type: .t2iAdapter)]
    }
}

import Diffusion
import Foundation
import Workflow

/// Loads a ControlNet.
struct LoadControlNet: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "LoadControlNet", category: "loaders",
        doc: """
            Loads a ControlNet: a diffusers ControlNetModel folder (config.json + \
            diffusion_pytorch_model.safetensors, e.g. lllyasviel/control_v11p_sd15_scribble) or an original-layout \
            single .safetensors file (control_model.* keys), read with the SD 1.x preset unless `config` names a \
            folder whose config.json describes it. ApplyControlNet attaches it to a UNet; its files are \
            fingerprinted into the cache key.
            """,
        inputs: [
            .file("path", doc: "A diffusers ControlNet folder or a single-file .safetensors ControlNet."),
            .file("config", optional: true,
                  doc: "A folder whose config.json describes a single-file ControlNet (optional; default SD 1.x)."),
        ],
        outputs: [.output("control_net", .controlNet, doc: "The ControlNet; connect it to ApplyControlNet.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let path = try inputs.path("path")
        var config: ControlNetConfig?
        if inputs.has("config") {
            let file = try inputs.path("config").appendingPathComponent("config.json")
            config = try ControlNetConfig(JSONConfig(path: file.path))
        }
        let model = try ControlNetModel.load(path: path.path, config: config)
        return ["control_net": .object(ControlNetPayload(model: model, estimatedBytes: weightBytes(path)), type: .controlNet)]
    }
}

/// Bytes the safetensors weights at `url` (a file, or the files in a
/// folder) take in memory as float32: fp16 files count double.
func weightBytes(_ url: URL) -> Int {
    let manager = FileManager.default
    func size(_ file: URL) -> Int {
        let bytes = (try? manager.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0
        return file.lastPathComponent.contains(".fp16.") ? 2 * bytes : bytes
    }
    var isFolder: ObjCBool = false
    guard manager.fileExists(atPath: url.path, isDirectory: &isFolder) else { return 0 }
    guard isFolder.boolValue else { return size(url) }
    let files = (try? manager.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)) ?? []
    return files.filter { $0.pathExtension == "safetensors" }.reduce(0) { $0 + size($1) }
}

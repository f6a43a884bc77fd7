import Diffusion
import Foundation
import Imaging
import Nodes
import Tensors
import Workflow
import XCTest

/// Paths and a tiny model shared by the node tests.
enum Fixture {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let templates = repository.appendingPathComponent("Workflows")

    static func template(_ name: String) -> URL { templates.appendingPathComponent("\(name).yaml") }

    /// A fresh temporary folder.
    static func temporaryFolder(_ label: String = "nodes") -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("pilot-\(label)-\(UUID().uuidString)", isDirectory: true)
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// `version: 1` and the nodes most tiny-model test workflows start with:
    /// `model` (the tiny checkpoint) and `text` (the prompt's conditioning).
    static func workflowHead(prompt: String = "a ball") -> String {
        """
        version: 1
        nodes:
          model:   {type: LoadCheckpoint, params: {path: "\(tinyModel)"}}
          text:    {type: TextEncode, inputs: {clip: model.clip}, params: {prompt: \(prompt)}}
        """
    }

    /// Nodes `picture`, `hole` (Examples/source.png and mask.png) and
    /// `source` (the picture encoded by `model.vae`), for inpainting workflows.
    static var exampleSourceNodes: String {
        let examples = repository.appendingPathComponent("Examples").path
        return """
              picture: {type: LoadImage, params: {path: "\(examples)/source.png"}}
              hole:    {type: LoadMask, params: {path: "\(examples)/mask.png"}}
              source:  {type: VAEEncode, inputs: {vae: model.vae, image: picture.image}}
            """
    }

    /// Runs workflow text (written to a temporary folder) and returns its
    /// `latent` output.
    static func runLatent(_ text: String, preview: PreviewRequest? = nil,
                          onEvent: (@Sendable (ExecutionEvent) -> Void)? = nil) throws -> Tensor {
        let folder = temporaryFolder("workflow")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("w.yaml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        let runner = WorkflowRunner()
        let result = try runner.run(runner.validate(file), file: file, outputDirectory: folder, preview: preview,
                                    onEvent: onEvent ?? { _ in })
        guard let latent = result.outputs["latent"] else { throw NodeError("the workflow has no output 'latent'") }
        return try latent.asObject(LatentPayload.self).latent
    }

    /// A tiny random-weight model, made once per test process.
    static let tinyModel: String = {
        let folder = temporaryFolder("tiny").appendingPathComponent("tiny")
        return try! TinyModel.create(at: folder.path)
    }()

    /// A tiny random-weight SDXL-style model with its adapters, made once per test process.
    static let tinySDXL: String = {
        let folder = temporaryFolder("tiny-sdxl").appendingPathComponent("tiny-sdxl")
        return try! TinyModel.create(at: folder.path, family: .sdxl)
    }()

    /// A tiny random-weight inpainting model (9-channel UNet), made once per test process.
    static let tinyInpaint: String = {
        let folder = temporaryFolder("tiny-inpaint").appendingPathComponent("tiny-inpaint")
        return try! TinyModel.create(at: folder.path, family: .sd15Inpaint)
    }()

    /// The tiny model's adapters (`TinyModel.create` writes them beside it),
    /// by the template input names the adapter templates use.
    static let tinyAdapters: [String: String] = [
        "controlnet": "controlnet", "adapter": "t2i-adapter", "ip_adapter": "ip-adapter.safetensors",
        "image_encoder": "image_encoder", "lora": "lora.safetensors",
    ].mapValues { URL(fileURLWithPath: tinyModel).appendingPathComponent($0).path }

    /// Small, fast settings for each template on the tiny model.
    static func quickSettings(_ template: String) -> [String: String] {
        let sdxl = template.hasPrefix("sdxl-")
        let model = sdxl ? tinySDXL : template == "sd-inpaint-baseline" ? tinyInpaint : tinyModel
        var settings = ["checkpoint": model]
        switch template {
        case "txt2img", "sdxl-txt2img": settings.merge(["steps": "3", "width": "64", "height": "64"]) { $1 }
        case "blended-baseline", "sd-inpaint-baseline": settings.merge(["steps": "3"]) { $1 }
        case "refine": settings.merge(["steps": "4", "strength": "0.5"]) { $1 }
        case _ where template.hasSuffix("-crop"):
            settings.merge(["steps": "4", "interval": "2", "inner_steps": "1", "crop_size": "64"]) { $1 }
        default: settings.merge(["steps": "4", "interval": "2", "inner_steps": "1"]) { $1 }  // the PILOT templates
        }
        let inputs = (try? WorkflowRunner().validate(Fixture.template(template)).graph.inputs.keys).map(Set.init) ?? []
        let adapters = tinyAdapters.mapValues { $0.replacingOccurrences(of: tinyModel, with: model) }
        settings.merge(adapters.filter { inputs.contains($0.key) }) { $1 }
        return settings
    }
}

extension ExecutionResult {
    func cacheHit(_ id: String, file: StaticString = #filePath, line: UInt = #line) -> Bool? {
        node(id)?.cacheHit
    }
}

import Foundation
import Imaging
import SafeTensors
import Tensors
import Workflow

extension NodeRegistry {
    /// Every node type of this program.
    public static let standard: NodeRegistry = {
        var registry = NodeRegistry()
        registry.register(LoadCheckpoint.self)
        registry.register(LoadImage.self)
        registry.register(LoadMask.self)
        registry.register(SaveImage.self)
        registry.register(LoadLatent.self)
        registry.register(SaveLatent.self)
        registry.register(TextEncode.self)
        registry.register(VAEEncode.self)
        registry.register(VAEDecode.self)
        registry.register(Sample.self)
        registry.register(PILOTOptimize.self)
        registry.register(Blend.self)
        registry.register(CompositeMasked.self)
        registry.register(GrowMask.self)
        registry.register(FeatherMask.self)
        registry.register(InvertMask.self)
        registry.register(MaskFromColor.self)
        registry.register(ThresholdMask.self)
        registry.register(CombineMasks.self)
        registry.register(CropToMask.self)
        registry.register(Stitch.self)
        registry.register(CropLike.self)
        registry.register(InpaintConditioning.self)
        registry.register(PadImage.self)
        registry.register(ResizeImage.self)
        registry.register(LoadControlNet.self)
        registry.register(ApplyControlNet.self)
        registry.register(LoadT2IAdapter.self)
        registry.register(ApplyT2IAdapter.self)
        registry.register(LoadIPAdapter.self)
        registry.register(ApplyIPAdapter.self)
        registry.register(LoadLoRA.self)
        registry.register(CannyEdges.self)
        registry.register(Scribble.self)
        return registry
    }()
}

extension NodeProvider {
    /// This program's nodes, file loaders and version, for the runner and the daemon.
    public static let standard = NodeProvider(registry: .standard, programVersion: NodeLibrary.programVersion,
                                              objectLoader: { NodeLibrary.objectLoader(base: $0) })
}

extension WorkflowRunner {
    /// A runner over this program's nodes.
    public convenience init(executor: Executor = Executor(), templates: (any TemplateSource)? = nil) {
        self.init(nodes: .standard, executor: executor, templates: templates)
    }
}

/// What the node library offers the CLI and the daemon besides the nodes.
public enum NodeLibrary {
    /// Recorded in saved images (`pilot:version`).
    public static let programVersion = "0.1.0"

    /// Loads object template inputs given as files (`--input image=cat.png`):
    /// Image and Mask from PNG, Latent from safetensors (key `latent`).
    /// Relative paths resolve against `base`.
    public static func objectLoader(base: URL) -> ObjectLoader {
        { type, text in
            let path = text.hasPrefix("/") ? text : base.appendingPathComponent(text).path
            switch type {
            case .image: return .object(try ImageFile.read(path: path), type: .image)
            case .mask: return .object(try Mask(from: PNG.read(path: path)), type: .mask)
            case .latent:
                return .object(try LatentPayload.read(path: path), type: .latent)
            default:
                throw NodeError("\(type.spelling) cannot be loaded from a file; connect it from a node instead")
            }
        }
    }
}

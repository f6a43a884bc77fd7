/// The type of a port, a parameter or a template input.
///
/// Object types (``image`` … ``lora``) travel only along edges; scalar types
/// (``int`` … ``enumeration(name:cases:)``) may also be written as literals.
/// Each type has one spelling, used in YAML (`type: Image`), in messages and in
/// the catalog.
public enum PortType: Hashable, Sendable {
    case image, mask, latent, conditioning
    case unet, vae, clip
    case controlNet, controlHint, ipAdapter, imageEmbeds, samplerState, t2iAdapter, lora
    /// Where a crop came from (CropToMask), for pasting it back (Stitch).
    case stitch
    case int, float, string, bool, path
    /// A string restricted to `cases` (a sampler's scheduler, say); `name` is
    /// how messages and the catalog call it.
    case enumeration(name: String, cases: [String])

    /// Every type that has a fixed spelling, in catalog order.
    public static let named: [PortType] = [
        .image, .mask, .latent, .conditioning, .unet, .vae, .clip,
        .controlNet, .controlHint, .ipAdapter, .imageEmbeds, .samplerState, .t2iAdapter, .lora, .stitch,
        .int, .float, .string, .bool, .path,
    ]

    /// How YAML, messages and the catalog write this type.
    public var spelling: String {
        switch self {
        case .image: "Image"
        case .mask: "Mask"
        case .latent: "Latent"
        case .conditioning: "Conditioning"
        case .unet: "UNet"
        case .vae: "VAE"
        case .clip: "CLIP"
        case .controlNet: "ControlNet"
        case .controlHint: "ControlHint"
        case .ipAdapter: "IPAdapter"
        case .imageEmbeds: "ImageEmbeds"
        case .samplerState: "SamplerState"
        case .t2iAdapter: "T2IAdapter"
        case .lora: "LoRA"
        case .stitch: "Stitch"
        case .int: "Int"
        case .float: "Float"
        case .string: "String"
        case .bool: "Bool"
        case .path: "Path"
        case let .enumeration(name, _): name
        }
    }

    /// The type a YAML `type:` spelling names, or nil. Enumerations are
    /// spelled `Enum` in template inputs, with their cases under `choices`.
    public init?(spelling: String) {
        if spelling == "Model" {  // the issue's alias for a diffusion model
            self = .unet
            return
        }
        guard let type = PortType.named.first(where: { $0.spelling == spelling }) else { return nil }
        self = type
    }

    /// True for types a literal can be written for.
    public var isScalar: Bool {
        switch self {
        case .int, .float, .string, .bool, .path, .enumeration: true
        default: false
        }
    }

    /// The spelling with an enumeration's cases, for messages: `Scheduler (ddim|euler)`.
    public var detailedSpelling: String {
        if case let .enumeration(name, cases) = self {
            return "\(name) (\(cases.joined(separator: "|")))"
        }
        return spelling
    }

    /// Whether a value of type `found` may feed a port of this type: equal
    /// types, an Int where a Float is expected, a String where a Path is
    /// expected, and a String or enumeration whose cases are all allowed here
    /// where an enumeration is expected (the literal itself is checked
    /// against the cases separately).
    public func accepts(_ found: PortType) -> Bool {
        if self == found { return true }
        switch (self, found) {
        case (.float, .int), (.path, .string): return true
        case (.enumeration, .string): return true
        case let (.enumeration(_, expected), .enumeration(_, given)):
            return given.allSatisfy(expected.contains)
        case (.string, .enumeration), (.string, .path): return true
        default: return false
        }
    }
}

import Foundation
import SafeTensors
import Tensors

/// Which model component a LoRA entry targets.
public enum LoRATarget: String, Sendable, Hashable {
    case unet, textEncoder = "text_encoder"
    /// SDXL's second (OpenCLIP ViT-bigG) text encoder.
    case textEncoder2 = "text_encoder_2"
}

/// A low-rank adaptation file: kohya/webui (`lora_unet_…lora_down.weight`,
/// `.lora_up.weight`, `.alpha`) or diffusers/peft (`unet.….lora_A.weight`,
/// `.lora_B.weight`, and the older `.lora.down/up.weight`). Module names are
/// diffusers' (kohya spells them with `_` for `.`; they are matched against
/// the model's own weight names).
public struct LoRA {
    public struct Entry {
        public let target: LoRATarget
        /// The module's name as written in the file (kohya: with underscores).
        public let module: String
        public let up: Tensor
        public let down: Tensor
        public let alpha: Float?
        public var rank: Int { down.dim(0) }
    }

    public let source: String
    public let entries: [Entry]
    /// Keys that are neither LoRA factors nor alphas of a known target.
    public let unrecognisedKeys: [String]

    public static func load(path: String) throws -> LoRA {
        let file = try SafeTensorsFile(path: path)
        var ups: [String: Tensor] = [:], downs: [String: Tensor] = [:], alphas: [String: Float] = [:]
        var unrecognised: [String] = []
        for key in file.names {
            if let base = strip(key, [".lora_down.weight", ".lora_A.weight", ".lora.down.weight"]) {
                downs[base] = try Tensor(file, key)
            } else if let base = strip(key, [".lora_up.weight", ".lora_B.weight", ".lora.up.weight"]) {
                ups[base] = try Tensor(file, key)
            } else if let base = strip(key, [".alpha"]) {
                alphas[base] = try file.floats(key).first
            } else {
                unrecognised.append(key)
            }
        }
        var entries: [Entry] = []
        for (base, down) in downs.sorted(by: { $0.key < $1.key }) {
            guard let up = ups.removeValue(forKey: base) else {
                throw ModelLoadError.missingTensor(key: "\(base) up/lora_B factor", source: file.source)
            }
            guard let (target, module) = targetAndModule(base) else {
                unrecognised.append(base)
                continue
            }
            guard up.dim(1) == down.dim(0) else {
                throw ModelLoadError.shapeMismatch(key: base, source: file.source, expected: [up.dim(0), down.dim(0)], found: up.shape)
            }
            entries.append(Entry(target: target, module: module, up: up, down: down, alpha: alphas[base]))
        }
        unrecognised += ups.keys.sorted().map { "\($0) (up factor without down)" }
        return LoRA(source: file.source, entries: entries, unrecognisedKeys: unrecognised)
    }

    static func strip(_ key: String, _ suffixes: [String]) -> String? {
        for s in suffixes where key.hasSuffix(s) { return String(key.dropLast(s.count)) }
        return nil
    }

    static func targetAndModule(_ base: String) -> (LoRATarget, String)? {
        let prefixes: [(String, LoRATarget)] = [
            ("lora_unet_", .unet), ("lora_te_", .textEncoder), ("lora_te1_", .textEncoder), ("lora_te2_", .textEncoder2),
            ("unet.", .unet), ("text_encoder.", .textEncoder), ("text_encoder_2.", .textEncoder2),
        ]
        for (p, t) in prefixes where base.hasPrefix(p) { return (t, String(base.dropFirst(p.count))) }
        return nil
    }

    /// The weight additions `scale·(α/r)·up·down` for the modules of `target`
    /// among `weights` (diffusers names with shapes), plus the entries that
    /// matched no weight.
    func deltas(for target: LoRATarget, scale: Float, weights: [String: [Int]],
                model: String = "the model") throws -> ([String: Tensor], [String]) {
        // Index the model's modules both by dotted and by kohya (underscored) name.
        var byName: [String: String] = [:]
        for name in weights.keys where name.hasSuffix(".weight") {
            let module = String(name.dropLast(".weight".count))
            byName[module] = name
            byName[module.replacingOccurrences(of: ".", with: "_")] = name
        }
        // kohya's SDXL LoRAs name UNet modules by the original (SGM/LDM) blocks.
        let layersPerBlock = Set(weights.keys.compactMap { name -> Substring? in
            let p = "down_blocks.0.resnets."
            return name.hasPrefix(p) ? name.dropFirst(p.count).prefix { $0 != "." } : nil
        }).count
        var out: [String: Tensor] = [:]
        var unmatched: [String] = []
        for e in entries where e.target == target {
            let module = target == .unet ? Self.diffusersModule(ldm: e.module, layersPerBlock: layersPerBlock) ?? e.module : e.module
            guard let weight = byName[module], let shape = weights[weight] else {
                unmatched.append("\(e.target.rawValue): \(e.module)")
                continue
            }
            let r = e.rank
            let up = e.up.reshaped([e.up.dim(0), r])
            let down = e.down.reshaped([r, e.down.count / r])
            guard up.dim(0) * down.dim(1) == shape.reduce(1, *) else {
                throw AdapterMismatchError(adapter: "LoRA \(source) module \(e.module) (up·down \([up.dim(0), down.dim(1)]))",
                                           model: "\(model) weight \(weight) \(shape)", reason: "shapes differ (another architecture?)")
            }
            let factor = scale * (e.alpha ?? Float(r)) / Float(r)
            let delta = (matmul(up, down) * factor).reshaped(shape)
            out[weight] = out[weight].map { $0 + delta } ?? delta
        }
        return (out, unmatched)
    }
}

extension LoRA {
    /// The diffusers module (underscored, as kohya writes it) of a kohya
    /// module named by the original UNet layout (`input_blocks_4_1_…`,
    /// `middle_block_1_…`, `output_blocks_2_2_conv`, `label_emb_0_0`), which
    /// kohya's SDXL LoRAs use; nil when `name` is not in that layout.
    /// Attention internals are named alike in both layouts; resnet internals
    /// and samplers are renamed.
    static func diffusersModule(ldm name: String, layersPerBlock l: Int) -> String? {
        let fixed = ["time_embed_0": "time_embedding_linear_1", "time_embed_2": "time_embedding_linear_2",
                     "label_emb_0_0": "add_embedding_linear_1", "label_emb_0_2": "add_embedding_linear_2",
                     "input_blocks_0_0": "conv_in", "out_0": "conv_norm_out", "out_2": "conv_out"]
        if let d = fixed[name] { return d }
        let resnet = ["in_layers_0": "norm1", "in_layers_2": "conv1", "emb_layers_1": "time_emb_proj",
                      "out_layers_0": "norm2", "out_layers_3": "conv2", "skip_connection": "conv_shortcut"]
        /// `prefix_<a>_<b>_<rest>` → (a, b, rest).
        func indices(_ prefix: String) -> (Int, Int, String)? {
            guard name.hasPrefix(prefix) else { return nil }
            let parts = name.dropFirst(prefix.count).split(separator: "_", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, let a = Int(parts[0]), let b = Int(parts[1]) else { return nil }
            return (a, b, parts.count > 2 ? String(parts[2]) : "")
        }
        func inner(_ block: String, _ rest: String, isResnet: Bool) -> String? {
            guard isResnet else { return rest.isEmpty ? nil : "\(block)_\(rest)" }
            guard let d = resnet[rest] else { return nil }
            return "\(block)_\(d)"
        }
        guard l > 0 else { return nil }
        if let (k, sub, rest) = indices("input_blocks_"), k >= 1 {
            let level = (k - 1) / (l + 1), j = (k - 1) % (l + 1)
            if j == l { return sub == 0 && rest == "op" ? "down_blocks_\(level)_downsamplers_0_conv" : nil }
            return inner(sub == 0 ? "down_blocks_\(level)_resnets_\(j)" : "down_blocks_\(level)_attentions_\(j)", rest,
                         isResnet: sub == 0)
        }
        if name.hasPrefix("middle_block_"), let sub = Int(name.dropFirst("middle_block_".count).prefix { $0 != "_" }) {
            let rest = String(name.dropFirst("middle_block_\(sub)_".count))
            switch sub {
            case 0, 2: return inner("mid_block_resnets_\(sub / 2)", rest, isResnet: true)
            case 1: return inner("mid_block_attentions_0", rest, isResnet: false)
            default: return nil
            }
        }
        if let (k, sub, rest) = indices("output_blocks_") {
            let level = k / (l + 1), j = k % (l + 1)
            if sub == 0 { return inner("up_blocks_\(level)_resnets_\(j)", rest, isResnet: true) }
            if rest == "conv" { return "up_blocks_\(level)_upsamplers_0_conv" }   // after the attention, or alone
            return sub == 1 ? inner("up_blocks_\(level)_attentions_\(j)", rest, isResnet: false) : nil
        }
        return nil
    }
}

/// What applying LoRAs did: how many modules changed, and what matched nothing.
public struct LoRAReport: Sendable, Equatable {
    public var appliedModules = 0
    /// File entries that matched no weight of the model, and unrecognised keys.
    public var unknown: [String] = []

    public init() {}

    /// A report that starts with the files' unrecognised keys and their
    /// entries for components the model lacks (an SDXL second-encoder entry
    /// given to an SD 1.5 model).
    init(_ loras: [(LoRA, Float)], components: Set<LoRATarget>) {
        for (lora, _) in loras {
            unknown += lora.unrecognisedKeys.map { "\(lora.source): \($0)" }
            unknown += lora.entries.filter { !components.contains($0.target) }
                .map { "\(lora.source): \($0.target.rawValue): \($0.module) (the model has no \($0.target.rawValue))" }
        }
    }
}

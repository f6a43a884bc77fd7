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
        var out: [String: Tensor] = [:]
        var unmatched: [String] = []
        for e in entries where e.target == target {
            guard let weight = byName[e.module], let shape = weights[weight] else {
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

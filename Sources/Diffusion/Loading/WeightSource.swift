import Foundation
import SafeTensors
import Tensors

/// The device and element type model weights are uploaded to as they load:
/// one GPU copy of every weight, kept as long as the model is (the model
/// cache holds it). The process-wide `current` placement is what `pilot
/// run|serve --device/--precision` sets; sources made later use it.
public struct WeightPlacement: Sendable, Equatable, CustomStringConvertible {
    public var device: Device
    public var elementType: ElementType
    /// On the host: keep the linear and convolution weights of 16-bit
    /// (F16/BF16) files in the memory-mapped file and widen a layer's weight
    /// to Float32 each time it runs, so a model takes half the memory (SDXL's
    /// UNet: 5.1 instead of 10.3 GB) for a few per cent more time. Results
    /// are bit-identical. `PILOT_COMPACT_WEIGHTS=1` or `--compact-weights`.
    public var compactHost: Bool

    public init(device: Device = .cpu, elementType: ElementType = .float32, compactHost: Bool = false) {
        self.device = device
        self.elementType = device == .cpu ? .float32 : elementType
        self.compactHost = device == .cpu && compactHost
    }

    public static let host = WeightPlacement(
        compactHost: ProcessInfo.processInfo.environment["PILOT_COMPACT_WEIGHTS"] == "1")

    private static let lock = NSLock()
    nonisolated(unsafe) private static var value = WeightPlacement.host

    /// The placement new weight sources take.
    public static var current: WeightPlacement {
        get { lock.lock(); defer { lock.unlock() }; return value }
        set { lock.lock(); value = newValue; lock.unlock() }
    }

    /// `t` where this placement says (itself on the host).
    public func place(_ t: Tensor) -> Tensor { device == .cpu ? t : t.to(device, as: elementType) }

    public var description: String {
        device == .cpu ? (compactHost ? "cpu (compact 16-bit weights)" : "cpu") : "\(device) \(elementType)"
    }
}

/// Named weights for one model component, in diffusers naming.
///
/// Backed by one or more safetensors files. For single-file (LDM)
/// checkpoints a rename table maps each diffusers name to a key of the file
/// plus an optional transform (a row slice of a fused qkv matrix). Every read
/// is recorded so a loader can report tensors the model never used.
public final class WeightSource {
    /// Where a diffusers-named weight lives.
    public struct Location: Sendable {
        public var file: Int
        public var key: String
        /// Rows `range` of the stored tensor (fused qkv projections).
        public var rows: Range<Int>?
        /// The stored matrix is the transpose (OpenCLIP's `text_projection`,
        /// applied as `x @ P`, is a Linear weight `Pᵀ`).
        public var transposed: Bool

        public init(file: Int = 0, key: String, rows: Range<Int>? = nil, transposed: Bool = false) {
            self.file = file
            self.key = key
            self.rows = rows
            self.transposed = transposed
        }
    }

    public let files: [SafeTensorsFile]
    public let description: String
    private let locations: [String: Location]
    /// When set, every requested weight is invented (seeded, scaled by fan-in)
    /// and recorded: how `pilot models create-tiny` builds a random model
    /// whose names and shapes are exactly what the model code asks for.
    private var generator: SplitMix64?
    public private(set) var generated: [(String, Tensor)] = []
    private var used = Set<String>()
    /// Additions applied as weights are read (merged LoRAs), by diffusers name.
    public var deltas: [String: Tensor] = [:]
    /// Where the weights go once read (merged and checked on the host):
    /// the process default (`WeightPlacement.current`) when the source was made.
    public var placement: WeightPlacement = .current

    /// Weights named exactly as in the files (diffusers folders).
    public convenience init(files: [SafeTensorsFile]) {
        var loc: [String: Location] = [:]
        for (i, f) in files.enumerated() {
            for name in f.names { loc[name] = Location(file: i, key: name) }
        }
        self.init(files: files, locations: loc)
    }

    /// Weights located through a rename table (single-file checkpoints).
    public init(files: [SafeTensorsFile], locations: [String: Location]) {
        self.files = files
        self.locations = locations
        description = files.map(\.source).joined(separator: ", ")
    }

    /// A CLIP text encoder's weights from a diffusers folder. transformers
    /// 5 saves `CLIPTextModel` without the `text_model.` prefix every earlier
    /// version (and every published SD folder) has; such a file is read
    /// through a rename table, so the model and LoRA keys see one naming.
    public static func clipText(_ file: SafeTensorsFile) -> WeightSource {
        let names = Set(file.names)
        guard !names.contains("text_model.embeddings.token_embedding.weight"),
              names.contains("embeddings.token_embedding.weight") else { return WeightSource(files: [file]) }
        var locations: [String: Location] = [:]
        for name in names { locations["text_model." + name] = Location(file: 0, key: name) }
        return WeightSource(files: [file], locations: locations)
    }

    /// A source that invents every weight it is asked for (see `generated`).
    public init(randomSeed: UInt64) {
        files = []
        locations = [:]
        description = "<random weights, seed \(randomSeed)>"
        generator = SplitMix64(seed: randomSeed)
    }

    public var names: [String] { locations.keys.sorted() }

    public func contains(_ name: String) -> Bool { locations[name] != nil }

    /// The stored shape of `name` (after any row slice), if present.
    public func shape(_ name: String) throws -> [Int]? {
        guard let loc = locations[name] else { return nil }
        var s = try files[loc.file].info(loc.key).shape
        if let rows = loc.rows { s[0] = rows.count }
        if loc.transposed, s.count == 2 { s.reverse() }
        return s
    }

    /// Loads `name` as Float32 and checks its shape. A stored shape that
    /// differs only by trailing 1s (1×1 conv vs linear weights) is reshaped.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        if var g = generator {
            // Norm scales near 1, biases and embeddings small, matrices ~ 1/√fan-in.
            let n = shape.reduce(1, *)
            let fanIn = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
            let isNormScale = shape.count == 1 && (name.contains("norm") || name.hasSuffix("ln_1.weight"))
            let scale: Float = shape.count == 1 ? 0.05 : 1 / Float(fanIn).squareRoot()
            let values = g.fixtureValues(n, scale: scale, offset: isNormScale ? 1 : 0)
            generator = g
            let t = Tensor(shape: shape, values: values)
            generated.append((name, t))
            used.insert(name)
            return placement.place(t)
        }
        guard let loc = locations[name] else {
            throw ModelLoadError.missingTensor(key: name, source: description)
        }
        let file = files[loc.file]
        var t = try Tensor(file, loc.key)
        if let rows = loc.rows {
            guard t.rank >= 1, rows.upperBound <= t.shape[0] else {
                throw ModelLoadError.shapeMismatch(key: loc.key, source: file.source, expected: [rows.upperBound], found: t.shape)
            }
            t = t.sliced(axis: 0, rows)
        }
        if loc.transposed {
            guard t.rank == 2 else {
                throw ModelLoadError.shapeMismatch(key: loc.key, source: file.source, expected: shape.reversed(), found: t.shape)
            }
            t = t.transposed()
        }
        if t.shape != shape {
            func squeezed(_ s: [Int]) -> [Int] {
                var s = s
                while s.count > 1, s.last == 1 { s.removeLast() }
                return s
            }
            guard squeezed(t.shape) == squeezed(shape) else {
                throw ModelLoadError.shapeMismatch(key: name == loc.key ? name : "\(name) (stored as \(loc.key))",
                                                   source: file.source, expected: shape, found: t.shape)
            }
            t = t.reshaped(shape)
        }
        if let d = deltas[name] {
            guard d.count == t.count else {
                throw ModelLoadError.shapeMismatch(key: "\(name) (LoRA delta)", source: description, expected: shape, found: d.shape)
            }
            t = t + d.reshaped(shape)
        }
        used.insert(name)
        return placement.place(t)
    }

    /// A linear or convolution weight: in compact host placement, a 16-bit
    /// stored tensor read as it is (no row slice, transpose or LoRA delta)
    /// stays in the file and is widened when its layer runs; otherwise the
    /// widened tensor, as `tensor(_:shape:)` gives it.
    public func layerWeight(_ name: String, shape: [Int]) throws -> LayerWeight {
        guard placement.compactHost, generator == nil, deltas[name] == nil, let loc = locations[name],
              loc.rows == nil, !loc.transposed else {
            return LayerWeight(try tensor(name, shape: shape))
        }
        let file = files[loc.file]
        let info = try file.info(loc.key)
        guard info.dtype == .F16 || info.dtype == .BF16, file.isMapped else { return LayerWeight(try tensor(name, shape: shape)) }
        func squeezed(_ s: [Int]) -> [Int] {
            var s = s
            while s.count > 1, s.last == 1 { s.removeLast() }
            return s
        }
        guard info.shape == shape || squeezed(info.shape) == squeezed(shape) else {
            throw ModelLoadError.shapeMismatch(key: name == loc.key ? name : "\(name) (stored as \(loc.key))",
                                               source: file.source, expected: shape, found: info.shape)
        }
        used.insert(name)
        return LayerWeight(compact: file, key: loc.key, shape: shape)
    }

    /// Every weight's stored shape, by diffusers name.
    public func shapes() throws -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for name in names { out[name] = try shape(name) }
        return out
    }

    /// Merges `loras` (each with its scale) into the weights of `target` as
    /// they are read, recording what applied and what matched nothing.
    func merge(_ loras: [(LoRA, Float)], target: LoRATarget, report: inout LoRAReport) throws {
        guard !loras.isEmpty else { return }
        let shapes = try self.shapes()
        for (lora, scale) in loras {
            let (d, unmatched) = try lora.deltas(for: target, scale: scale, weights: shapes, model: description)
            let entries = lora.entries.filter { $0.target == target }.count
            if entries > 0, d.isEmpty {
                throw AdapterMismatchError(adapter: "LoRA \(lora.source) (\(entries) \(target.rawValue) modules, e.g. \(unmatched.first ?? ""))",
                                           model: description, reason: "none of its modules exists in this model (another architecture?)")
            }
            for (k, v) in d { deltas[k] = deltas[k].map { $0 + v } ?? v }
            report.appliedModules += d.count
            report.unknown += unmatched.map { "\(lora.source): \($0)" }
        }
    }

    /// The stored keys of file `file` that reads went to (through the rename
    /// table, so a single-file checkpoint can tell which of its keys no
    /// component used).
    public func usedKeys(file: Int = 0) -> Set<String> {
        Set(used.compactMap { name in locations[name].flatMap { $0.file == file ? $0.key : nil } })
    }

    /// Names that were never read, excluding those matching `ignoring`.
    public func unused(ignoring: (String) -> Bool = { _ in false }) -> [String] {
        names.filter { !used.contains($0) && !ignoring($0) }
    }
}

/// A view of a `WeightSource` scoped by a name prefix, mirroring diffusers'
/// module paths: `w["down_blocks"][1]["attentions"][0]`.
public struct WeightLoader {
    public let source: WeightSource
    public let prefix: String

    public init(_ source: WeightSource, prefix: String = "") {
        self.source = source
        self.prefix = prefix
    }

    public subscript(_ name: String) -> WeightLoader {
        WeightLoader(source, prefix: prefix.isEmpty ? name : "\(prefix).\(name)")
    }

    public subscript(_ index: Int) -> WeightLoader { self["\(index)"] }

    public func path(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix).\(name)" }

    public func tensor(_ name: String, _ shape: [Int]) throws -> Tensor {
        try source.tensor(path(name), shape: shape)
    }

    /// A linear or convolution weight (compact in compact host placement).
    public func layerWeight(_ name: String, _ shape: [Int]) throws -> LayerWeight {
        try source.layerWeight(path(name), shape: shape)
    }

    public func contains(_ name: String) -> Bool { source.contains(path(name)) }
}

import Diffusion
import Foundation
import Imaging
import Nodes
import Tensors
import Workflow

/// `pilot-bench gpu …`: the CUDA backend's checks, run by scripts/gpu-check.sh
/// on a GPU machine.
///
/// - `parity`: every backend op on random inputs, forward and gradient
///   (through the tape), CUDA against the CPU in each precision;
/// - `e2e`: templates on the tiny model, CUDA fp32 against the CPU;
/// - `unet`: one UNet forward, batch 2 at 64×64 (SD 1.5 size), timed;
/// - `pilot`: the paper's text configuration (512×512, 100 steps, τ 10, K 10), timed.
enum GPUBench {
    static let usage = """
        usage: pilot-bench gpu parity [--json FILE] [--precision LIST]
               pilot-bench gpu e2e [--json FILE]
               pilot-bench gpu parity|e2e --emulate     (the harness on a host-memory device, no GPU)
               pilot-bench gpu unet --model DIR [--precision fp16] [--reps N] [--json]
               pilot-bench gpu pilot --model DIR [--precision fp16] [--steps 100] [--interval 10] [--inner 10] [--size 512] [--json]
        """

    static func main(_ arguments: [String]) throws {
        guard let command = arguments.first else { print(usage); return }
        var options: [String: String] = [:]
        var rest = Array(arguments.dropFirst())
        while let flag = rest.first {
            rest.removeFirst()
            guard flag.hasPrefix("--") else { throw BenchError.usage("unexpected argument \(flag)\n\(usage)") }
            if (flag == "--json" || flag == "--emulate") && (rest.first.map { $0.hasPrefix("--") } ?? true) {
                options[String(flag.dropFirst(2))] = "-"
            } else {
                guard let v = rest.first else { throw BenchError.usage("\(flag) needs a value") }
                options[String(flag.dropFirst(2))] = v
                rest.removeFirst()
            }
        }
        if options["emulate"] != nil, command == "parity" || command == "e2e" {
            // The harness itself, on a device emulated in host memory (no GPU): fp32 only.
            let device = Device.cuda(99)
            Backends.register(EmulatedDeviceBackend(device), for: device)
            let record = command == "parity" ? try GPUParity.run(device: device, tf32: { _ in }, precisions: [.fp32])
                                             : try GPUEndToEnd.run(device: device, tf32: { _ in })
            print(String(decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self))
            if let ok = record["ok"] as? Bool, !ok { exit(1) }
            return
        }
        let backend = try CUDARuntime.backend(ordinal: Int(options["device"] ?? "0") ?? 0)
        log("gpu: \(backend.info.name), sm_\(backend.info.computeCapability), cuBLAS \(backend.cublasVersion), driver \(CUDARuntime.probe().driverVersion ?? "?")")
        let tf32: (Bool) -> Void = { backend.allowTF32 = $0 }
        let record: [String: Any]
        switch command {
        case "parity": record = try GPUParity.run(device: backend.device, tf32: tf32, precisions: (options["precision"] ?? "fp32,tf32,fp16,bf16").split(separator: ",").map { try ComputePrecision(parsing: String($0)) })
        case "e2e": record = try GPUEndToEnd.run(device: backend.device, tf32: tf32)
        case "unet": record = try unet(backend, model: try required(options, "model"), precision: try ComputePrecision(parsing: options["precision"] ?? "fp16"),
                                       reps: Int(options["reps"] ?? "10") ?? 10)
        case "pilot": record = try pilot(backend, model: try required(options, "model"), precision: try ComputePrecision(parsing: options["precision"] ?? "fp16"),
                                         steps: Int(options["steps"] ?? "100") ?? 100, interval: Int(options["interval"] ?? "10") ?? 10,
                                         inner: Int(options["inner"] ?? "10") ?? 10, size: Int(options["size"] ?? "512") ?? 512)
        default: throw BenchError.usage("unknown gpu command \(command)\n\(usage)")
        }
        var full = record
        full["device"] = backend.info.name
        full["implementation"] = "pilot"
        let data = try JSONSerialization.data(withJSONObject: full, options: [.sortedKeys])
        let text = String(decoding: data, as: UTF8.self)
        if let path = options["json"], path != "-" {
            try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }
        print(text)
        if let ok = full["ok"] as? Bool, !ok { exit(1) }
    }

    static func required(_ options: [String: String], _ key: String) throws -> String {
        guard let v = options[key] else { throw BenchError.usage("--\(key) is required\n\(usage)") }
        return v
    }

    /// Loads the diffusers folder at `path` onto the GPU in `precision`.
    static func loadModel(_ path: String, _ backend: CUDABackend, _ precision: ComputePrecision) throws -> StableDiffusionModel {
        backend.allowTF32 = precision == .tf32
        let saved = WeightPlacement.current
        WeightPlacement.current = WeightPlacement(device: backend.device, elementType: precision.elementType)
        defer { WeightPlacement.current = saved }
        return try StableDiffusionModel.load(path: path)
    }

    static func unet(_ backend: CUDABackend, model path: String, precision: ComputePrecision, reps: Int) throws -> [String: Any] {
        let model = try loadModel(path, backend, precision)
        let type = precision.elementType
        let x = ModelCases.normal([2, 4, 64, 64], seed: 1).to(backend.device, as: type)
        let context = ModelCases.normal([2, 77, 768], seed: 2).to(backend.device, as: type)
        func call() throws {
            _ = try model.unet(x, timesteps: [500, 500], conditioning: UNetConditioning(context: context))
            backend.synchronize()
        }
        for _ in 0..<3 { try call() }
        backend.blocks.resetPeak()
        var samples: [Double] = []
        for _ in 0..<reps {
            let start = Stopwatch.now()
            try call()
            samples.append(Stopwatch.now() - start)
        }
        let m = median(samples)
        log(String(format: "unet batch 2 64x64 %@: median %.2f ms over %d", precision.rawValue, m * 1e3, reps))
        return ["case": "unet", "precision": precision.rawValue, "seconds": m, "samples": samples,
                "peak_device_bytes": backend.blocks.statistics.peakReserved]
    }

    static func pilot(_ backend: CUDABackend, model path: String, precision: ComputePrecision,
                      steps: Int, interval: Int, inner: Int, size: Int) throws -> [String: Any] {
        let model = try loadModel(path, backend, precision)
        let type = precision.elementType
        let side = size / 8
        var rng = SplitMix64(seed: 8)
        let image = Tensor.uniform([1, 3, size, size], using: &rng).to(backend.device, as: type)
        let noise = ModelCases.normal([1, 4, side, side], seed: 9).to(backend.device, as: type)
        let masks = PILOTCases.masks(side: side)
        var p = PILOTCases.runParameters
        p.steps = steps
        p.interval = interval
        p.innerSteps = inner
        // Warm-up: one gradient pass through the UNet (kernels compiled and loaded, cuBLAS heuristics).
        do {
            let tape = Tape()
            let xw = tape.watch(noise)
            let context = model.textEncoder(ids: [PILOTCases.promptIDs])
            let eps = try model.unet(xw, timesteps: [500], conditioning: UNetConditioning(context: context))
            _ = try tape.gradient(of: eps.sum(), wrt: [xw])
            backend.synchronize()
        }
        backend.blocks.resetPeak()
        var phases: [String: Double] = [:]
        let start = Stopwatch.now()
        var lap = start
        func mark(_ name: String) {
            backend.synchronize()
            let now = Stopwatch.now()
            phases[name] = now - lap
            lap = now
        }
        let embeddings = model.textEncoder(ids: [PILOTCases.negativeIDs, PILOTCases.promptIDs]).chunked(2, axis: 0)
        let source = try model.vae.encodeImage(image)
        mark("encode")
        var gradient = 0.0, guided = 0.0, previous = Stopwatch.now()
        let sampler = PILOTSampler(unet: model.unet, schedule: model.schedule, parameters: p)
        let latent = try sampler.run(
            noise: noise, source: source, masks: masks, positive: embeddings[1], negative: embeddings[0],
            wordTokens: PILOTCases.wordTokens, blendNoise: { _ in Tensor.zeros(noise.shape) },
            progress: { event in
                let now = Stopwatch.now()
                if event.inner != nil { gradient += now - previous } else { guided += now - previous }
                previous = now
                return true
            })
        mark("sampler")
        let decoded = try model.vae.decodeToImage(scaledLatent: latent)
        _ = decoded.scalars
        mark("decode")
        let total = Stopwatch.now() - start
        log(String(format: "pilot %dx%d, %d steps, tau %d, K %d, %@: %.2f s (gradient passes %.2f s, guided steps %.2f s)",
                   size, size, steps, interval, inner, precision.rawValue, total, gradient, guided))
        return ["case": "pilot", "precision": precision.rawValue, "seconds": total, "phases": phases,
                "gradient_seconds": gradient, "guided_seconds": guided, "gradient_passes": sampler.records.count,
                "peak_device_bytes": backend.blocks.statistics.peakReserved,
                "config": ["size": size, "steps": steps, "interval": interval, "inner": inner]]
    }
}

/// Op-by-op parity of the CUDA backend with the CPU.
enum GPUParity {
    struct Case {
        let name: String
        /// Input shapes and how to fill them.
        let inputs: [([Int], Fill)]
        let body: ([Tensor]) -> Tensor
        /// Whether the op is a product (TF32 applies).
        var product = false
        /// Whether gradients flow (max and ops of integer ids do not).
        var differentiable = true
    }

    enum Fill { case normal, positive, mask }

    static func cases() -> [Case] {
        var out: [Case] = []
        func add(_ name: String, _ inputs: [([Int], Fill)], product: Bool = false, differentiable: Bool = true,
                 _ body: @escaping ([Tensor]) -> Tensor) {
            out.append(Case(name: name, inputs: inputs, body: body, product: product, differentiable: differentiable))
        }
        let s = [2, 3, 17, 9]
        add("add", [(s, .normal), (s, .normal)]) { $0[0] + $0[1] }
        add("sub_broadcast", [(s, .normal), ([3, 1, 9], .normal)]) { $0[0] - $0[1] }
        add("mul_broadcast", [(s, .normal), ([1, 3, 1, 1], .normal)]) { $0[0] * $0[1] }
        add("div", [(s, .normal), (s, .positive)]) { $0[0] / $0[1] }
        let unaries: [(String, UnaryOp, Fill)] = [
            ("neg", .neg, .normal), ("exp", .exp, .normal), ("log", .log, .positive), ("sqrt", .sqrt, .positive),
            ("rsqrt", .rsqrt, .positive), ("square", .square, .normal), ("abs", .abs, .normal), ("relu", .relu, .normal),
            ("sigmoid", .sigmoid, .normal), ("tanh", .tanh, .normal), ("silu", .silu, .normal), ("gelu", .gelu, .normal),
            ("gelu_tanh", .geluTanh, .normal), ("quick_gelu", .quickGelu, .normal), ("scale", .scale(0.37), .normal),
            ("shift", .shift(1.5), .normal), ("pow", .pow(2.5), .positive), ("clamp", .clamp(-0.5, 0.7), .normal),
        ]
        for (name, op, fill) in unaries {
            add(name, [([4, 33, 7], fill)]) { x in
                switch op {
                case .neg: return -x[0]
                case .exp: return x[0].exp()
                case .log: return x[0].log()
                case .sqrt: return x[0].sqrt()
                case .rsqrt: return x[0].rsqrt()
                case .square: return x[0].squared()
                case .abs: return x[0].abs()
                case .relu: return x[0].relu()
                case .sigmoid: return x[0].sigmoid()
                case .tanh: return x[0].tanh()
                case .silu: return x[0].silu()
                case .gelu: return x[0].gelu()
                case .geluTanh: return x[0].gelu(approximateTanh: true)
                case .quickGelu: return x[0].quickGelu()
                case .scale(let c): return x[0] * c
                case .shift(let c): return x[0] + c
                case .pow(let c): return x[0].pow(c)
                case .clamp(let lo, let hi): return x[0].clamped(lo, hi)
                }
            }
        }
        add("geglu", [([2, 7, 32], .normal)]) { $0[0].geglu() }
        add("sum_axis1", [(s, .normal)]) { $0[0].sum(axes: [1]) }
        add("sum_axes023_keep", [([2, 40, 24, 20], .normal)]) { $0[0].sum(axes: [0, 2, 3], keepDims: true) }
        add("sum_all", [([5, 300, 70], .normal)]) { $0[0].sum() }
        add("mean_last", [(s, .normal)]) { $0[0].mean(axes: [-1]) }
        add("max_axis", [(s, .normal)], differentiable: false) { $0[0].max(alongAxis: 2) }
        add("permute", [(s, .normal)]) { $0[0].permuted([0, 2, 3, 1]) }
        add("slice", [(s, .normal)]) { $0[0].sliced(axis: 2, 3..<11) }
        add("concat", [(s, .normal), ([2, 3, 5, 9], .normal)]) { concat([$0[0], $0[1]], axis: 2) }
        add("broadcast", [([3, 1, 9], .normal)]) { $0[0].broadcast(to: [2, 3, 17, 9]) }
        add("padded", [([2, 3, 7, 5], .normal)]) { $0[0].padded(left: 1, right: 2, top: 0, bottom: 3) }
        add("upsample", [([2, 3, 5, 6], .normal)]) { upsampleNearest($0[0], factor: 2) }
        add("matmul_batched", [([3, 17, 33], .normal), ([3, 33, 9], .normal)], product: true) { matmul($0[0], $0[1]) }
        add("matmul_tA_tB", [([3, 33, 17], .normal), ([3, 9, 33], .normal)], product: true) {
            matmul($0[0], $0[1], transposeA: true, transposeB: true)
        }
        add("matmul_shared_rhs", [([2, 4, 17, 33], .normal), ([33, 9], .normal)], product: true) { matmul($0[0], $0[1]) }
        add("matmul_partial_broadcast", [([2, 1, 17, 33], .normal), ([1, 4, 33, 9], .normal)], product: true) { matmul($0[0], $0[1]) }
        add("linear", [([2, 7, 33], .normal), ([19, 33], .normal), ([19], .normal)], product: true) {
            linear($0[0], weight: $0[1], bias: $0[2])
        }
        add("conv3x3_pad1", [([2, 8, 13, 11], .normal), ([12, 8, 3, 3], .normal), ([12], .normal)], product: true) {
            conv2d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 1)
        }
        add("conv3x3_stride2", [([2, 8, 13, 11], .normal), ([12, 8, 3, 3], .normal), ([12], .normal)], product: true) {
            conv2d($0[0], weight: $0[1], bias: $0[2], stride: 2, padding: 1)
        }
        add("conv1x1", [([2, 16, 9, 7], .normal), ([24, 16, 1, 1], .normal), ([24], .normal)], product: true) {
            conv2d($0[0], weight: $0[1], bias: $0[2])
        }
        add("conv3x3_groups2", [([2, 8, 9, 7], .normal), ([6, 4, 3, 3], .normal)], product: true) {
            conv2d($0[0], weight: $0[1], bias: nil, stride: 1, padding: 1, groups: 2)
        }
        add("conv3x3_unet_size", [([2, 64, 32, 32], .normal), ([64, 64, 3, 3], .normal), ([64], .normal)], product: true) {
            conv2d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 1)
        }
        add("group_norm", [([2, 16, 9, 7], .normal), ([16], .normal), ([16], .normal)]) {
            groupNorm($0[0], groups: 4, weight: $0[1], bias: $0[2], eps: 1e-5)
        }
        add("group_norm_plain", [([2, 16, 9, 7], .normal)]) { groupNorm($0[0], groups: 8) }
        add("layer_norm", [([2, 9, 48], .normal), ([48], .normal), ([48], .normal)]) {
            layerNorm($0[0], weight: $0[1], bias: $0[2], eps: 1e-5)
        }
        add("softmax", [([3, 5, 77], .normal)]) { softmax($0[0]) }
        add("attention_self", [([2, 64, 32], .normal), ([2, 64, 32], .normal), ([2, 64, 32], .normal)], product: true) {
            attention(q: $0[0], k: $0[1], v: $0[2], heads: 4)
        }
        add("attention_cross_mask", [([2, 64, 32], .normal), ([2, 77, 32], .normal), ([2, 77, 32], .normal), ([64, 77], .mask)], product: true) {
            attention(q: $0[0], k: $0[1], v: $0[2], heads: 4, mask: $0[3].detached)
        }
        add("attention_batched_mask", [([2, 48, 32], .normal), ([2, 77, 32], .normal), ([2, 77, 32], .normal), ([2, 48, 77], .mask)], product: true) {
            attention(q: $0[0], k: $0[1], v: $0[2], heads: 2, mask: $0[3].detached)
        }
        add("attention_causal", [([2, 77, 32], .normal), ([2, 77, 32], .normal), ([2, 77, 32], .normal)], product: true) {
            attention(q: $0[0], k: $0[1], v: $0[2], heads: 4, causal: true)
        }
        add("attention_probabilities", [([2, 64, 32], .normal), ([2, 77, 32], .normal)], product: true) {
            attentionProbabilities(q: $0[0], k: $0[1], heads: 4)
        }
        add("embedding", [([50, 16], .normal)]) { embedding($0[0], ids: [3, 7, 7, 49, 0, 12], shape: [2, 3]) }
        return out
    }

    /// ‖a − b‖∞ / ‖b‖∞.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var diff: Float = 0, scale: Float = 0
        for (x, y) in zip(a, b) {
            if !x.isFinite || !y.isFinite { return x == y ? 0 : .infinity }
            diff = Swift.max(diff, Swift.abs(x - y))
            scale = Swift.max(scale, Swift.abs(y))
        }
        return Double(diff / Swift.max(scale, 1e-6))
    }

    static func tolerance(_ p: ComputePrecision) -> Double {
        switch p {
        case .fp32: return 1e-4
        case .tf32: return 1e-3
        case .fp16, .bf16: return 2e-2
        }
    }

    static func run(device: Device, tf32: (Bool) -> Void, precisions: [ComputePrecision]) throws -> [String: Any] {
        var rows: [[String: Any]] = []
        var failures = 0
        for precision in precisions {
            tf32(precision == .tf32)
            let type = precision.elementType
            for (index, c) in cases().enumerated() {
                if precision == .tf32 && !c.product { continue }
                var rng = SplitMix64(seed: UInt64(1000 + index))
                var inputs: [Tensor] = c.inputs.map { shape, fill in
                    switch fill {
                    case .normal: return Tensor.randn(shape, using: &rng)
                    case .positive: return Tensor.uniform(shape, low: 0.5, high: 2, using: &rng)
                    case .mask: return Tensor.uniform(shape, low: 0, high: 1, using: &rng)
                    }
                }
                // Both sides start from the same values: those the device type can hold.
                inputs = inputs.enumerated().map { i, x in
                    c.inputs[i].1 == .mask ? x : x.to(device, as: type).to(.cpu)
                }
                let cpuOut = evaluate(c, inputs: inputs, rng: &rng, seedBase: index)
                let gpuInputs = inputs.enumerated().map { i, x in
                    c.inputs[i].1 == .mask ? x.to(device, as: .float32) : x.to(device, as: type)
                }
                var rng2 = SplitMix64(seed: UInt64(1000 + index))
                let gpuOut = evaluate(c, inputs: gpuInputs, rng: &rng2, seedBase: index, expectDevice: device)
                let tol = tolerance(precision)
                var errors: [String: Double] = ["forward": relativeError(gpuOut[0].scalars, cpuOut[0].scalars)]
                for i in 1..<cpuOut.count { errors["grad\(i - 1)"] = relativeError(gpuOut[i].scalars, cpuOut[i].scalars) }
                let worst = errors.values.max() ?? 0
                let ok = worst <= tol
                if !ok { failures += 1 }
                let detail = errors.sorted { $0.key < $1.key }.map { String(format: "%@ %.1e", $0.key, $0.value) }.joined(separator: ", ")
                log("\(ok ? "ok  " : "FAIL") \(precision.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)) \(c.name.padding(toLength: 26, withPad: " ", startingAt: 0)) \(detail)")
                rows.append(["op": c.name, "precision": precision.rawValue, "errors": errors, "tolerance": tol, "ok": ok])
            }
        }
        log("parity: \(rows.count - failures) passed, \(failures) failed")
        return ["case": "parity", "ok": failures == 0, "passed": rows.count - failures, "failed": failures, "rows": rows]
    }

    /// The op's output, then the gradient of Σ(y ⊙ r) for each differentiable input (mask inputs excluded).
    static func evaluate(_ c: Case, inputs: [Tensor], rng: inout SplitMix64, seedBase: Int, expectDevice: Device = .cpu) -> [Tensor] {
        let tape = Tape()
        let watched = inputs.enumerated().map { i, x in c.inputs[i].1 == .mask || !c.differentiable ? x : tape.watch(x) }
        let y = c.body(watched)
        precondition(y.device == expectDevice, "\(c.name): the result is on \(y.device), expected \(expectDevice)")
        guard c.differentiable else { return [y.to(.cpu)] }
        var r = SplitMix64(seed: UInt64(77 + seedBase))
        let weights = Tensor.randn(y.shape, using: &r)
        let loss = (y * weights.to(y.device, as: y.elementType)).sum()
        let targets = watched.enumerated().filter { c.inputs[$0.offset].1 != .mask }.map(\.element)
        let grads = (try? tape.gradient(of: loss, wrt: targets)) ?? []
        return [y.to(.cpu)] + grads.map { $0.to(.cpu) }
    }
}

/// Templates on the tiny model, run on the CPU and on CUDA (fp32), images compared.
enum GPUEndToEnd {
    static func run(device: Device, tf32: (Bool) -> Void) throws -> [String: Any] {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("pilot-gpu-e2e-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let tiny = try TinyModel.create(at: root.appendingPathComponent("tiny").path)
        let templates = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("Workflows")
        let adapters: [String: String] = [
            "controlnet": "controlnet", "adapter": "t2i-adapter", "ip_adapter": "ip-adapter.safetensors",
            "image_encoder": "image_encoder", "lora": "lora.safetensors",
        ].mapValues { URL(fileURLWithPath: tiny).appendingPathComponent($0).path }
        var rows: [[String: Any]] = []
        var failures = 0
        for name in ["txt2img", "text-inpaint", "ipadapter-controlnet-inpaint"] {
            let url = templates.appendingPathComponent("\(name).yaml")
            var settings = ["checkpoint": tiny]
            if name == "txt2img" {
                settings.merge(["steps": "4", "width": "64", "height": "64"]) { $1 }
            } else {
                settings.merge(["steps": "6", "interval": "2", "inner_steps": "2"]) { $1 }
            }
            let runner = WorkflowRunner()
            let workflow = try runner.validate(url)
            let inputs = Set(workflow.graph.inputs.keys)
            settings.merge(adapters.filter { inputs.contains($0.key) }) { $1 }
            var images: [[Float]] = [], pngs: [[Float]] = []
            var seconds: [Double] = []
            for placement in [WeightPlacement.host, WeightPlacement(device: device, elementType: .float32)] {
                WeightPlacement.current = placement
                tf32(false)
                let out = root.appendingPathComponent("\(name)-\(placement.device)")
                let start = Stopwatch.now()
                let result = try WorkflowRunner().run(WorkflowRunner().validate(url), file: url, set: settings, outputDirectory: out)
                seconds.append(Stopwatch.now() - start)
                // The workflow's output image before 8-bit quantisation, and the PNG it saved.
                guard case let .object(payload, _)? = result.outputs["image"], let image = payload as? Image else {
                    throw BenchError.usage("\(name): the workflow's output 'image' is not an image")
                }
                images.append(image.planes)
                pngs.append(try PNG.read(path: out.appendingPathComponent("\(name).png").path).image.planes)
            }
            WeightPlacement.current = .host
            func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
                zip(a, b).reduce(0) { Swift.max($0, Swift.abs($1.0 - $1.1)) }
            }
            let imageDiff = maxDifference(images[0], images[1]), pngDiff = maxDifference(pngs[0], pngs[1])
            // Decoded images in [0, 1] within 1e-3 of the CPU's (PNG: at most one 8-bit level).
            let ok = imageDiff <= 1e-3 && pngDiff <= 1.0 / 255 + 1e-6 && images[0].count == images[1].count
            if !ok { failures += 1 }
            log(String(format: "%@ %@: max difference %.2e (image), %.1f levels (PNG), cpu %.2f s, cuda %.2f s",
                       ok ? "ok  " : "FAIL", name, imageDiff, pngDiff * 255, seconds[0], seconds[1]))
            rows.append(["template": name, "max_image_difference": imageDiff, "max_pixel_difference": pngDiff,
                         "cpu_seconds": seconds[0], "cuda_seconds": seconds[1], "ok": ok])
        }
        return ["case": "e2e", "ok": failures == 0, "failed": failures, "rows": rows]
    }
}

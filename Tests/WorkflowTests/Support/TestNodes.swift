import Foundation
import Workflow

/// Small pure nodes that exercise the engine. Each records its run in a
/// shared ``RunLog``.
enum TestNodes {
    static func registry(log: RunLog = RunLog()) -> NodeRegistry {
        var registry = NodeRegistry()
        registry.register(Constant.self) { Constant(log: log) }
        registry.register(Text.self) { Text(log: log) }
        registry.register(Add.self) { Add(log: log) }
        registry.register(Concat.self) { Concat(log: log) }
        registry.register(Fail.self) { Fail(log: log) }
        registry.register(ReadFile.self) { ReadFile(log: log) }
        registry.register(MakeBlob.self) { MakeBlob(log: log) }
        registry.register(Steps.self) { Steps(log: log) }
        registry.register(MakeImage.self) { MakeImage(log: log) }
        registry.register(MakeMask.self) { MakeMask(log: log) }
        registry.register(Paint.self) { Paint(log: log) }
        registry.register(SaveText.self) { SaveText(log: log) }
        registry.register(Liar.self) { Liar(log: log) }
        return registry
    }
}

struct Constant: Node {
    static let nodeDescription = NodeDescription(
        type: "Constant", category: "test", doc: "Outputs an integer.",
        inputs: [.parameter("value", .int, default: .int(0), doc: "The integer.")],
        outputs: [.output("value", .int, doc: "The integer.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        return ["value": .int(try inputs.int("value"))]
    }
}

struct Text: Node {
    static let nodeDescription = NodeDescription(
        type: "Text", category: "test", doc: "Outputs a string.",
        inputs: [.parameter("text", .string, doc: "The string.")],
        outputs: [.output("text", .string, doc: "The string.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        return ["text": .string(try inputs.string("text"))]
    }
}

struct Add: Node {
    static let nodeDescription = NodeDescription(
        type: "Add", category: "test", doc: "Adds two integers.",
        inputs: [.connection("a", .int, doc: "First term."),
                 .connection("b", .int, optional: true, doc: "Second term (0 when absent).")],
        outputs: [.output("sum", .int, doc: "a + b.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        let b = inputs.has("b") ? try inputs.int("b") : 0
        return ["sum": .int(try inputs.int("a") + b)]
    }
}

struct Concat: Node {
    static let nodeDescription = NodeDescription(
        type: "Concat", category: "test", doc: "Joins two strings.",
        inputs: [.connection("a", .string, doc: "First."),
                 .connection("b", .string, doc: "Second."),
                 .parameter("separator", .string, default: .string(""), doc: "Between them.")],
        outputs: [.output("text", .string, doc: "a + separator + b.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        return ["text": .string(try inputs.string("a") + inputs.string("separator") + inputs.string("b"))]
    }
}

struct Fail: Node {
    static let nodeDescription = NodeDescription(
        type: "Fail", category: "test", doc: "Always throws.",
        inputs: [.connection("input", .int, optional: true, doc: "Ignored."),
                 .parameter("message", .string, default: .string("boom"), doc: "What to throw.")],
        outputs: [.output("value", .int, doc: "Never produced.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        throw TestFailure(message: try inputs.string("message"))
    }
}

struct ReadFile: Node {
    static let nodeDescription = NodeDescription(
        type: "ReadFile", category: "test", doc: "Reads a UTF-8 text file.",
        inputs: [.file("path", doc: "The file.")],
        outputs: [.output("text", .string, doc: "Its content.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        return ["text": .string(try String(contentsOf: try inputs.path("path"), encoding: .utf8))]
    }
}

struct MakeBlob: Node {
    static let nodeDescription = NodeDescription(
        type: "MakeBlob", category: "test", doc: "Outputs an object of a given size.",
        inputs: [.parameter("bytes", .int, min: 0, doc: "Its size."),
                 .parameter("tag", .string, default: .string(""), doc: "Tells blobs apart.")],
        outputs: [.output("blob", .latent, doc: "The object.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        return ["blob": .object(Blob(bytes: try inputs.int("bytes"), tag: try inputs.string("tag")), type: .latent)]
    }
}

struct Steps: Node {
    static let nodeDescription = NodeDescription(
        type: "Steps", category: "test", doc: "Counts steps, reporting progress and checking cancellation.",
        inputs: [.connection("input", .int, optional: true, doc: "Passed through."),
                 .parameter("steps", .int, default: .int(3), min: 1, max: 100, doc: "How many.")],
        outputs: [.output("value", .int, doc: "The input (0 when absent).")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        let steps = try inputs.int("steps")
        for step in 1...steps {
            try context.checkCancelled()
            context.report(step: step, total: steps, extra: ["loss": 1.0 / Double(step)])
        }
        return ["value": .int(inputs.has("input") ? try inputs.int("input") : 0)]
    }
}

struct MakeImage: Node {
    static let nodeDescription = NodeDescription(
        type: "MakeImage", category: "test", doc: "Outputs a blank picture.",
        inputs: [.parameter("width", .int, default: .int(8), min: 1, max: 4096, doc: "Width."),
                 .parameter("height", .int, default: .int(8), min: 1, max: 4096, doc: "Height.")],
        outputs: [.output("image", .image, doc: "The picture.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        return ["image": .object(Picture(width: try inputs.int("width"), height: try inputs.int("height")), type: .image)]
    }
}

struct MakeMask: Node {
    static let nodeDescription = NodeDescription(
        type: "MakeMask", category: "test", doc: "Outputs a mask.",
        outputs: [.output("mask", .mask, doc: "The mask.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        return ["mask": .object(Picture(width: 1, height: 1), type: .mask)]
    }
}

struct Paint: Node {
    static let nodeDescription = NodeDescription(
        type: "Paint", category: "test", doc: "Pretends to paint a picture under a mask.",
        inputs: [.connection("image", .image, doc: "The picture."),
                 .connection("mask", .mask, optional: true, doc: "Where."),
                 .parameter("mode", .enumeration(name: "PaintMode", cases: ["fill", "blur"]), default: .string("fill"),
                            doc: "How."),
                 .parameter("strength", .float, default: .float(0.5), min: 0, max: 1, doc: "How much."),
                 .parameter("label", .string, default: .string("a"), choices: ["a", "b"], doc: "A tag."),
                 .parameter("flip", .bool, default: .bool(false), doc: "Mirror it.")],
        outputs: [.output("image", .image, doc: "The painted picture."),
                  .output("summary", .string, doc: "What was done.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        let picture = try inputs.object("image", as: Picture.self)
        let summary = "\(try inputs.string("mode")) \(try inputs.float("strength")) \(try inputs.string("label")) "
            + "\(try inputs.bool("flip")) mask=\(inputs.has("mask"))"
        return ["image": .object(picture, type: .image), "summary": .string(summary)]
    }
}

struct SaveText: Node {
    static let nodeDescription = NodeDescription(
        type: "SaveText", category: "test", doc: "Writes text to NAME.txt in the output directory.",
        inputs: [.connection("text", .string, doc: "What to write."),
                 .parameter("name", .string, doc: "File name without extension.")],
        isOutput: true)
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        let url = try context.outputFile(named: try inputs.string("name"), extension: "txt")
        try Data(try inputs.string("text").utf8).write(to: url)
        return [:]
    }
}

/// Declares an Int output but returns a String: the executor must catch it.
struct Liar: Node {
    static let nodeDescription = NodeDescription(
        type: "Liar", category: "test", doc: "Breaks its declaration.",
        outputs: [.output("value", .int, doc: "Declared Int.")])
    let log: RunLog

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        log.record(context.nodeID)
        return ["value": .string("not a number")]
    }
}

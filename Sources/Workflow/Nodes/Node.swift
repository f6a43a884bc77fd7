/// A node type: a static declaration and a `run` that turns inputs into
/// outputs.
///
/// ```swift
/// struct TextEncode: Node {
///     static let nodeDescription = NodeDescription(
///         type: "TextEncode", version: 1, category: "conditioning",
///         doc: "Encodes a prompt with the CLIP text encoder.",
///         inputs: [.connection("clip", .clip, doc: "The text encoder."),
///                  .parameter("prompt", .string, doc: "What to draw."),
///                  .parameter("negative", .string, default: .string(""), doc: "What to avoid.")],
///         outputs: [.output("conditioning", .conditioning, doc: "Prompt embeddings.")])
///
///     func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
///         let clip = try inputs.object("clip", as: CLIPTextModel.self)
///         let prompt = try inputs.string("prompt")
///         ...
///         return ["conditioning": .object(embeddings, type: .conditioning)]
///     }
/// }
/// ```
///
/// A node gets every declared input that was given or has a default, already
/// checked against its type, range and choices; it must return every declared
/// output with the declared type. It should be a pure function of its inputs
/// (and of the files its `readsFile` parameters name): the executor caches
/// its outputs under a key made of exactly those. Long loops report progress
/// and call `try context.checkCancelled()` between steps.
public protocol Node {
    static var nodeDescription: NodeDescription { get }
    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value]
}

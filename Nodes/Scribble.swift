import Imaging
import Workflow

/// A user's sketch made into a scribble hint.
struct Scribble: Node, DefaultConstructible {
    static let strokesType = PortType.enumeration(name: "Strokes", cases: Imaging.Scribble.Strokes.allCases.map(\.rawValue))

    static let nodeDescription = NodeDescription(
        type: "Scribble", category: "preprocessors",
        doc: """
            Turns a sketch into the hint scribble ControlNets and sketch T2I-Adapters expect: strokes white on \
            black (RGB). Dark strokes on light paper are pixels whose darkest channel is below `threshold` (as \
            ControlNet's scribble demo, 0.5 = 127/255); light strokes on a dark ground, the brightest channel above \
            it; `strokes: auto` decides from the mean brightness. `thickness` widens strokes by a disc of that \
            radius in pixels.
            """,
        inputs: [
            .connection("image", .image, doc: "The sketch."),
            .parameter("threshold", .float, default: .float(0.5), min: 0, max: 1, doc: "Brightness separating strokes from the ground."),
            .parameter("strokes", strokesType, default: .string("auto"),
                       doc: "dark (pen on paper), light (already a hint) or auto (from the mean brightness)."),
            .parameter("thickness", .int, default: .int(0), min: 0, max: 64, doc: "Dilation radius in pixels (0 = as drawn)."),
        ],
        outputs: [.output("image", .image, doc: "The scribble, white on black; connect it to a `hint`.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let image = try inputs.image("image")
        guard let strokes = Imaging.Scribble.Strokes(rawValue: try inputs.string("strokes")) else {
            throw NodeError("unknown strokes value")
        }
        let hint = Imaging.Scribble.hint(image, threshold: Float(try inputs.float("threshold")), strokes: strokes,
                                         thickness: try inputs.int("thickness"))
        return ["image": .object(Image(grey: hint), type: .image)]
    }
}

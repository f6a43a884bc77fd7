import Imaging
import Workflow

/// Canny edges of an image, as a ControlNet / T2I-Adapter hint.
struct CannyEdges: Node, DefaultConstructible {
    static let nodeDescription = NodeDescription(
        type: "CannyEdges", category: "preprocessors",
        doc: """
            Finds edges with the Canny detector and returns them as a control hint (white edges on black, RGB), \
            for canny ControlNets and T2I-Adapters. A Gaussian blur of `blur` pixels comes first; then the 3×3 \
            Sobel gradient of the strongest channel, non-maximum suppression and hysteresis between `low` and \
            `high`, exactly as OpenCV's cv2.Canny (which ControlNet's annotator calls with 100 and 200, on \
            0–255 samples; `blur: 0` gives cv2.Canny's edges pixel for pixel).
            """,
        inputs: [
            .connection("image", .image, doc: "The picture whose edges guide the generation."),
            .parameter("low", .float, default: .float(Double(Imaging.CannyEdges.defaultLow)), min: 0, max: 4096,
                       doc: "Weak-edge threshold on the gradient magnitude (0–255 samples)."),
            .parameter("high", .float, default: .float(Double(Imaging.CannyEdges.defaultHigh)), min: 0, max: 4096,
                       doc: "Strong-edge threshold: edges start above it and continue above `low`."),
            .parameter("blur", .float, default: .float(1.0), min: 0, max: 20,
                       doc: "Standard deviation in pixels of the Gaussian blur applied first (0 = none, as cv2.Canny)."),
            .parameter("l2_gradient", .bool, default: .bool(false), doc: "Euclidean gradient magnitude instead of |gx| + |gy|."),
        ],
        outputs: [.output("image", .image, doc: "The edges, white on black; connect it to a `hint`.")])

    func run(_ inputs: NodeInputs, _ context: NodeContext) throws -> [String: Value] {
        let image = try inputs.image("image")
        let low = Float(try inputs.float("low")), high = Float(try inputs.float("high"))
        guard low <= high else { throw NodeError("low (\(low)) is above high (\(high))") }
        let edges = Imaging.CannyEdges.detect(image, low: low, high: high, sigma: Float(try inputs.float("blur")),
                                              l2Gradient: try inputs.bool("l2_gradient"))
        return ["image": .object(Image(grey: edges), type: .image)]
    }
}

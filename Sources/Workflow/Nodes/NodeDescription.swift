/// What a node type declares about itself: the validator, the executor, the
/// catalog (`pilot nodes`, `docs/nodes.md`) and the YAML all read this.
public struct NodeDescription: Sendable {
    /// The name YAML uses: `type: TextEncode`.
    public var type: String
    /// Raised when a node's behaviour or ports change; part of every cache
    /// key and recorded in saved workflows.
    public var version: Int
    /// Groups nodes in the catalog: "loaders", "conditioning", "sampling", ….
    public var category: String
    /// One paragraph for the catalog.
    public var doc: String
    public var inputs: [PortSpec]
    public var outputs: [PortSpec]
    /// A sink (SaveImage, SaveLatent): runs whenever the workflow runs, even
    /// when no `outputs:` entry names it, and is never served from the cache.
    public var isOutput: Bool
    /// False for nodes whose result may differ between runs with the same
    /// inputs; they always run.
    public var isCacheable: Bool

    public init(type: String, version: Int = 1, category: String, doc: String,
                inputs: [PortSpec] = [], outputs: [PortSpec] = [],
                isOutput: Bool = false, isCacheable: Bool = true) {
        self.type = type
        self.version = version
        self.category = category
        self.doc = doc
        self.inputs = inputs
        self.outputs = outputs
        self.isOutput = isOutput
        self.isCacheable = isCacheable
    }

    public func input(named name: String) -> PortSpec? {
        inputs.first { $0.name == name }
    }

    public func output(named name: String) -> PortSpec? {
        outputs.first { $0.name == name }
    }

    /// Mistakes in the declaration itself (duplicate names, a default of the
    /// wrong type or out of range). The registry refuses a type with any.
    public var declarationProblems: [String] {
        var problems: [String] = []
        if !Identifier.isValid(type) { problems.append("type name '\(type)' is not an identifier") }
        for (label, ports) in [("input", inputs), ("output", outputs)] {
            var seen = Set<String>()
            for port in ports {
                if !seen.insert(port.name).inserted { problems.append("duplicate \(label) '\(port.name)'") }
                if !Identifier.isValid(port.name) { problems.append("\(label) name '\(port.name)' is not an identifier") }
            }
        }
        for port in inputs {
            if port.kind == .parameter, !port.type.isScalar {
                problems.append("parameter '\(port.name)' has object type \(port.type.spelling); make it a connection")
            }
            if port.readsFile, port.type != .path {
                problems.append("'\(port.name)' reads a file but is not a Path")
            }
            if let value = port.defaultValue, let problem = LiteralCheck.problem(with: value, for: port) {
                problems.append("default of '\(port.name)': \(problem.text)")
            }
        }
        return problems
    }
}

/// Names of nodes, ports, parameters and outputs: a letter or `_`, then
/// letters, digits, `_` or `-`.
enum Identifier {
    /// A node id: identifiers joined by `/` (an expanded template node's
    /// nodes are `node/inner`, and a recorded run keeps those ids).
    static func isValidNodeID(_ text: String) -> Bool {
        text.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { isValid(String($0)) }
    }

    static func isValid(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, first == "_" || first.properties.isAlphabetic && first.isASCII
        else { return false }
        return text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-") }
    }
}

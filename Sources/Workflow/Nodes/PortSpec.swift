/// One declared input or output of a node type.
///
/// Inputs are of two kinds. A *connection* is fed by an edge from another
/// node's output (`inputs: {clip: model.clip}`) or by a template input
/// (`inputs: {image: $image}`). A *parameter* is a literal or a template input
/// (`params: {steps: 50}` or `params: {steps: $steps}`). Outputs are always
/// connections.
public struct PortSpec: Sendable {
    public enum Kind: String, Sendable {
        case connection, parameter
    }

    /// Whether an input must be given.
    public enum Requirement: Sendable {
        /// Must be given; validation fails without it.
        case required
        /// May be left out; the node sees no value (`inputs.has(name)` is false).
        case optional
        /// May be left out; the node sees this value.
        case defaultValue(Value)
    }

    public var name: String
    public var type: PortType
    public var kind: Kind
    public var requirement: Requirement
    /// Inclusive bounds for Int and Float values. For a String, `maximum`
    /// bounds its length in UTF-8 bytes (a prompt's, say).
    public var minimum: Double?
    public var maximum: Double?
    /// Allowed values for a String parameter (enumerations carry their cases
    /// in their type instead).
    public var choices: [String]?
    /// One sentence for the catalog.
    public var doc: String
    /// A Path parameter naming a file or folder the node reads: the executor
    /// fingerprints it into the cache key (see `docs/workflow-format.md`) and
    /// refuses it when it lies outside the allowed read directories.
    public var readsFile: Bool

    public init(name: String, type: PortType, kind: Kind, requirement: Requirement = .required,
                minimum: Double? = nil, maximum: Double? = nil, choices: [String]? = nil,
                doc: String, readsFile: Bool = false) {
        self.name = name
        self.type = type
        self.kind = kind
        self.requirement = requirement
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        self.doc = doc
        self.readsFile = readsFile
    }

    /// An input fed by an edge or a template input.
    public static func connection(_ name: String, _ type: PortType, optional: Bool = false,
                                  doc: String) -> PortSpec {
        PortSpec(name: name, type: type, kind: .connection,
                 requirement: optional ? .optional : .required, doc: doc)
    }

    /// An input given as a literal or a template input. `default` makes it
    /// optional with that value; `optional` makes it optional without one.
    public static func parameter(_ name: String, _ type: PortType, default value: Value? = nil,
                                 optional: Bool = false, min: Double? = nil, max: Double? = nil,
                                 choices: [String]? = nil, doc: String) -> PortSpec {
        let requirement: Requirement = value.map { .defaultValue($0) } ?? (optional ? .optional : .required)
        return PortSpec(name: name, type: type, kind: .parameter, requirement: requirement,
                        minimum: min, maximum: max, choices: choices, doc: doc)
    }

    /// A Path parameter naming a file or folder the node reads.
    public static func file(_ name: String, optional: Bool = false, doc: String) -> PortSpec {
        PortSpec(name: name, type: .path, kind: .parameter,
                 requirement: optional ? .optional : .required, doc: doc, readsFile: true)
    }

    /// An output.
    public static func output(_ name: String, _ type: PortType, doc: String) -> PortSpec {
        PortSpec(name: name, type: type, kind: .connection, doc: doc)
    }

    public var isRequired: Bool {
        if case .required = requirement { return true }
        return false
    }

    public var defaultValue: Value? {
        if case let .defaultValue(value) = requirement { return value }
        return nil
    }
}

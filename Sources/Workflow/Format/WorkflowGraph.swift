/// A workflow as written: template inputs, nodes with their bindings, named
/// outputs. Parsed from YAML or JSON by ``WorkflowParser``, checked by
/// ``Validator``, written back by ``canonicalJSON`` and ``yaml``.
///
/// Source locations ride along for messages; they take no part in the
/// canonical form.
public struct WorkflowGraph: Sendable {
    /// The only format version this program reads and writes.
    public static let formatVersion = 1

    /// The file the graph came from, as messages name it.
    public var file: String
    public var version: Int
    public var name: String
    public var description: String
    /// Template parameters by name.
    public var inputs: [String: TemplateInput]
    /// Nodes by id.
    public var nodes: [String: NodeEntry]
    /// Named results: which node output each one is.
    public var outputs: [String: OutputEntry]

    public init(file: String = "<workflow>", version: Int = WorkflowGraph.formatVersion, name: String = "",
                description: String = "", inputs: [String: TemplateInput] = [:],
                nodes: [String: NodeEntry] = [:], outputs: [String: OutputEntry] = [:]) {
        self.file = file
        self.version = version
        self.name = name
        self.description = description
        self.inputs = inputs
        self.nodes = nodes
        self.outputs = outputs
    }
}

/// A line and column in the source, both from 1; 0:0 when unknown (a graph
/// built in code).
public struct SourceLocation: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static let unknown = SourceLocation(line: 0, column: 0)

    public static func < (lhs: SourceLocation, rhs: SourceLocation) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }

    public var description: String { "\(line):\(column)" }
}

/// A typed template parameter (`inputs:` at the top of a workflow).
public struct TemplateInput: Sendable {
    public var name: String
    public var type: PortType
    public var defaultValue: Literal?
    public var minimum: Double?
    public var maximum: Double?
    public var choices: [Literal]?
    public var description: String
    /// Where the name is written.
    public var location: SourceLocation = .unknown
    /// Where the default is written (for messages about it).
    public var defaultLocation: SourceLocation = .unknown
    /// The declaration could not be read (already reported); checks against
    /// its type are skipped.
    var isUnreadable = false

    public init(name: String, type: PortType, defaultValue: Literal? = nil, minimum: Double? = nil,
                maximum: Double? = nil, choices: [Literal]? = nil, description: String = "") {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        self.description = description
    }
}

/// One node: its type and what each of its ports is given.
public struct NodeEntry: Sendable {
    public var id: String
    public var type: String
    /// The node type's version the workflow was written for, when recorded.
    public var version: Int?
    /// Connections: edges and template inputs, by port name.
    public var inputs: [String: Binding]
    /// Parameters: literals and template inputs, by port name.
    public var params: [String: Binding]
    /// Where the id is written.
    public var location: SourceLocation = .unknown
    /// Where the type name is written.
    public var typeLocation: SourceLocation = .unknown
    /// Ports (and "type") whose YAML could not be read; already reported,
    /// so validation stays quiet about them.
    var unreadable: Set<String> = []

    public init(id: String, type: String, version: Int? = nil,
                inputs: [String: Binding] = [:], params: [String: Binding] = [:]) {
        self.id = id
        self.type = type
        self.version = version
        self.inputs = inputs
        self.params = params
    }
}

/// What one port is given.
public struct Binding: Sendable {
    public enum Source: Hashable, Sendable {
        /// Another node's output: `model.clip`.
        case edge(PortReference)
        /// A template input: `$prompt`.
        case parameter(String)
        /// A value written in place: `50`, `"a cat"`.
        case literal(Literal)
    }

    public var source: Source
    /// Where the value is written.
    public var location: SourceLocation = .unknown
    /// Where the port name is written.
    public var keyLocation: SourceLocation = .unknown

    public init(_ source: Source) {
        self.source = source
    }
}

/// `node.port`.
public struct PortReference: Hashable, Sendable, CustomStringConvertible {
    public var node: String
    public var port: String

    public init(node: String, port: String) {
        self.node = node
        self.port = port
    }

    /// Reads `node.port`; nil unless both halves are identifiers.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, Identifier.isValidNodeID(String(parts[0])), Identifier.isValid(String(parts[1]))
        else { return nil }
        self.init(node: String(parts[0]), port: String(parts[1]))
    }

    public var description: String { "\(node).\(port)" }
}

/// A named result of the workflow.
public struct OutputEntry: Sendable {
    public var name: String
    public var reference: PortReference
    public var location: SourceLocation = .unknown

    public init(name: String, reference: PortReference) {
        self.name = name
        self.reference = reference
    }
}

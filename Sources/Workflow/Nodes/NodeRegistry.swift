/// The node types a program knows, by name. The validator, the executor and
/// the catalog all read the same registry, so what `pilot nodes` prints is
/// what a workflow is checked against.
public struct NodeRegistry: Sendable {
    /// One registered type: its declaration and how to make an instance.
    public struct Entry: Sendable {
        public let description: NodeDescription
        let make: @Sendable () -> any Node
    }

    private var entries: [String: Entry] = [:]

    public init() {}

    /// Registers `type` with a factory (for nodes that hold shared state,
    /// a model cache say). A declaration with problems, or a second type of
    /// the same name, is a programming error and stops the program.
    public mutating func register<N: Node>(_ type: N.Type, make: @escaping @Sendable () -> N) {
        let description = N.nodeDescription
        let problems = description.declarationProblems
        precondition(problems.isEmpty, "node type \(description.type): \(problems.joined(separator: "; "))")
        precondition(entries[description.type] == nil, "node type \(description.type) registered twice")
        entries[description.type] = Entry(description: description, make: make)
    }

    /// Registers a type that can be made with `init()`.
    public mutating func register<N: Node & DefaultConstructible>(_ type: N.Type) {
        register(type) { N() }
    }

    /// The declaration of the type called `name`.
    public func description(of name: String) -> NodeDescription? {
        entries[name]?.description
    }

    /// A fresh instance of the type called `name`.
    public func makeNode(_ name: String) -> (any Node)? {
        entries[name]?.make()
    }

    /// Every declaration, sorted by type name.
    public var descriptions: [NodeDescription] {
        entries.values.map(\.description).sorted { $0.type < $1.type }
    }

    /// Every type name, sorted.
    public var typeNames: [String] {
        entries.keys.sorted()
    }
}

/// A node type with an `init()` the registry can call.
public protocol DefaultConstructible: SendableMetatype {
    init()
}

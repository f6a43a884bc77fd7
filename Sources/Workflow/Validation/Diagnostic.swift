/// One problem found in a workflow before it runs.
///
/// Rendered as `FILE:LINE:COL: error: SUBJECT: MESSAGE`, where SUBJECT is
/// `node 'x' port 'y'`, `node 'x'`, `template input 'n'` or `output 'o'`
/// (left out, with its colon, for problems of the file as a whole), and a
/// MESSAGE about a value reads `expected T, found U`.
public struct Diagnostic: Error, Sendable, Equatable, CustomStringConvertible {
    /// The error classes; `docs/workflow-format.md` lists each with an example.
    public enum Code: String, Sendable, CaseIterable {
        case unreadableFile, yamlSyntax, invalidStructure, duplicateKey, duplicateNodeID, unsupportedVersion
        case invalidName, unknownNodeType, nodeVersionMismatch, unknownPort, wrongPortKind
        case unknownNode, malformedReference, typeMismatch, missingInput
        case wrongLiteralType, outOfRange, notInChoices
        case unboundParameter, unusedParameter, invalidTemplateInput
        case cycle, danglingOutput, nothingToRun
        /// The text breaks a limit checked before parsing (nesting depth, size).
        case limitExceeded
        /// A template node names a template that cannot be found (or a
        /// version it does not have).
        case unknownTemplate
    }

    public var code: Code
    public var file: String
    public var location: SourceLocation
    public var node: String?
    public var port: String?
    public var templateInput: String?
    public var output: String?
    public var message: String
    /// What was expected and what was found, when the problem is a value.
    public var expected: String?
    public var found: String?
    /// For a problem inside a template node: where it lies in each template
    /// on the way down, outermost first. The fields above then name the
    /// template node in this file (and the port, when the problem is a value
    /// given there).
    public var trace: [TemplateFrame] = []

    public init(_ code: Code, file: String, at location: SourceLocation, node: String? = nil,
                port: String? = nil, templateInput: String? = nil, output: String? = nil,
                message: String, expected: String? = nil, found: String? = nil) {
        self.code = code
        self.file = file
        self.location = location
        self.node = node
        self.port = port
        self.templateInput = templateInput
        self.output = output
        self.message = message
        self.expected = expected
        self.found = found
    }

    /// `node 'x' port 'y'`, `template input 'n'`, `output 'o'`, or nil.
    public var subject: String? {
        Self.subject(node: node, port: port, templateInput: templateInput, output: output)
    }

    static func subject(node: String?, port: String?, templateInput: String?, output: String?) -> String? {
        var parts: [String] = []
        if let node { parts.append("node '\(node)'") }
        if let port { parts.append("port '\(port)'") }
        if let templateInput { parts.append("template input '\(templateInput)'") }
        if let output { parts.append("output '\(output)'") }
        return parts.isEmpty ? nil : parts.joined(separator: " ")
    }

    /// `FILE:L:C: error: SUBJECT: [in template 'T' version V (FILE:L:C): SUBJECT: …] MESSAGE`.
    public var description: String {
        "\(file):\(location.line):\(location.column): error: " + (subject.map { "\($0): " } ?? "")
            + trace.map { "\($0): " }.joined() + message
    }

    /// The same, for the wire.
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "code": .string(code.rawValue), "file": .string(file),
            "line": .int(location.line), "column": .int(location.column),
            "message": .string(message), "text": .string(description),
        ]
        for (key, value) in [("node", node), ("port", port), ("templateInput", templateInput),
                             ("output", output), ("expected", expected), ("found", found)] {
            if let value { object[key] = .string(value) }
        }
        if !trace.isEmpty { object["trace"] = .array(trace.map(\.json)) }
        return .object(object)
    }

    /// This problem, found inside the template that node `entry` of `file`
    /// stands for, as a problem of that node: the node's location here, the
    /// template's location in the trace.
    func nested(in template: TemplateText, at entry: NodeEntry, file: String, port: String? = nil,
                location: SourceLocation? = nil) -> Diagnostic {
        var outer = Diagnostic(code, file: file, at: location ?? entry.typeLocation, node: entry.id, port: port,
                               message: message, expected: expected, found: found)
        let frame = TemplateFrame(template: template.name, version: template.version, file: self.file,
                                  location: self.location, node: node, port: self.port,
                                  templateInput: templateInput, output: output)
        outer.trace = [frame] + trace
        return outer
    }
}

/// Where, inside one template, a problem of a template node lies.
public struct TemplateFrame: Sendable, Equatable, CustomStringConvertible {
    public var template: String
    /// The saved version; nil for a file template.
    public var version: Int?
    /// The template's file as messages name it.
    public var file: String
    public var location: SourceLocation
    public var node: String?
    public var port: String?
    public var templateInput: String?
    public var output: String?

    public init(template: String, version: Int?, file: String, location: SourceLocation, node: String? = nil,
                port: String? = nil, templateInput: String? = nil, output: String? = nil) {
        self.template = template
        self.version = version
        self.file = file
        self.location = location
        self.node = node
        self.port = port
        self.templateInput = templateInput
        self.output = output
    }

    /// `in template 'T' version 2 (FILE:L:C) node 'x' port 'y'`
    public var description: String {
        "in template '\(template)'" + (version.map { " version \($0)" } ?? "") + " (\(file):\(location))"
            + (Diagnostic.subject(node: node, port: port, templateInput: templateInput, output: output).map { " \($0)" } ?? "")
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "template": .string(template), "file": .string(file),
            "line": .int(location.line), "column": .int(location.column),
        ]
        if let version { object["version"] = .int(version) }
        for (key, value) in [("node", node), ("port", port), ("templateInput", templateInput), ("output", output)] {
            if let value { object[key] = .string(value) }
        }
        return .object(object)
    }
}

/// Validation found problems; they are all here, in source order.
public struct ValidationFailure: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics
    }

    /// One diagnostic a line.
    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

extension Array where Element == Diagnostic {
    /// In source order; ties by message so the order never depends on
    /// dictionary iteration.
    func sortedBySource() -> [Diagnostic] {
        sorted { ($0.location, $0.message) < ($1.location, $1.message) }
    }
}

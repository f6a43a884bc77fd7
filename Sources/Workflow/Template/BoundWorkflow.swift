import Foundation

/// A validated workflow with a value for every template input: what the
/// executor runs.
public struct BoundWorkflow: Sendable {
    public let workflow: ValidatedWorkflow
    /// Each template input's value, converted to its declared type.
    public let parameters: [String: Value]
    /// What each parameter contributes to cache keys.
    let parameterKeys: [String: String]

    public var graph: WorkflowGraph { workflow.graph }
}

extension ValidatedWorkflow {
    /// Binds template inputs: text is converted to each input's type, values
    /// are checked against it, defaults fill the rest, and every value is
    /// checked against the input's range and choices and against each port
    /// that uses it. Throws every problem at once.
    public func bind(_ parameters: [String: ParameterValue] = [:],
                     loader: ObjectLoader? = nil) throws(BindingFailure) -> BoundWorkflow {
        var binder = ParameterBinder(workflow: self, loader: loader)
        return try binder.bind(parameters)
    }

    /// Binds text values (`--set name=value`).
    public func bind(text: [String: String], loader: ObjectLoader? = nil) throws(BindingFailure) -> BoundWorkflow {
        try bind(text.mapValues(ParameterValue.text), loader: loader)
    }

    /// Binds typed values.
    public func bind(values: [String: Value]) throws(BindingFailure) -> BoundWorkflow {
        try bind(values.mapValues(ParameterValue.value))
    }
}

/// One binding pass.
struct ParameterBinder {
    let workflow: ValidatedWorkflow
    let loader: ObjectLoader?
    var problems: [BindingFailure.Problem] = []

    init(workflow: ValidatedWorkflow, loader: ObjectLoader?) {
        self.workflow = workflow
        self.loader = loader
    }

    mutating func bind(_ given: [String: ParameterValue]) throws(BindingFailure) -> BoundWorkflow {
        let inputs = workflow.graph.inputs
        for name in given.keys.sorted() where inputs[name] == nil {
            let known = inputs.keys.sorted()
            problem(name, "no such template input" + Suggestion.didYouMean(name, among: known)
                    + " (template inputs: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        var values: [String: Value] = [:], keys: [String: String] = [:]
        for name in inputs.keys.sorted() {
            let input = inputs[name]!
            guard let value = value(for: input, given: given[name]) else { continue }
            guard checked(value, for: input) else { continue }
            values[name] = value
            keys[name] = Self.cacheKey(of: value)
        }
        guard problems.isEmpty else { throw BindingFailure(problems: problems) }
        return BoundWorkflow(workflow: workflow, parameters: values, parameterKeys: keys)
    }

    private mutating func problem(_ name: String, _ message: String, expected: String? = nil, found: String? = nil) {
        problems.append(.init(parameter: name, message: message, expected: expected, found: found))
    }

    /// The given value converted to the input's type, or its default.
    private mutating func value(for input: TemplateInput, given: ParameterValue?) -> Value? {
        let name = input.name, type = input.type
        switch given {
        case nil:
            if let value = input.defaultValue { return LiteralCheck.convert(value.value, to: type) }
            let how = type.isScalar ? "--set \(name)=VALUE" : "--input \(name)=FILE"
            problem(name, "missing: expected \(type.detailedSpelling), found nothing (no default; give it with \(how))",
                    expected: type.detailedSpelling, found: "nothing")
            return nil
        case let .value(value)?:
            if let converted = LiteralCheck.convert(value, to: type) { return converted }
            problem(name, "expected \(type.detailedSpelling), found \(value.summary)",
                    expected: type.detailedSpelling, found: value.summary)
            return nil
        case let .text(text)?:
            if let value = Self.convert(text, to: type) { return value }
            if !type.isScalar, let loader {
                do {
                    let value = try loader(type, text)
                    if value.type == type { return value }
                    problem(name, "expected \(type.spelling), found \(value.summary) (loaded from \(quoted(text)))",
                            expected: type.spelling, found: value.summary)
                } catch {
                    problem(name, "cannot load \(type.spelling) from \(quoted(text)): \(error)")
                }
                return nil
            }
            let found = "String \(quoted(text))"
            problem(name, "expected \(type.detailedSpelling), found \(found)", expected: type.detailedSpelling, found: found)
            return nil
        }
    }

    /// The value within the input's own bounds and choices and those of
    /// every port that uses it.
    private mutating func checked(_ value: Value, for input: TemplateInput) -> Bool {
        guard input.type.isScalar else { return true }
        if let issue = LiteralCheck.problem(with: value, type: input.type, minimum: input.minimum,
                                            maximum: input.maximum, choices: input.choices) {
            problem(input.name, issue.text, expected: issue.expected, found: issue.found)
            return false
        }
        for (id, entry) in workflow.graph.nodes.sorted(by: { $0.key < $1.key }) {
            for (port, binding) in (entry.inputs.merging(entry.params) { first, _ in first }).sorted(by: { $0.key < $1.key }) {
                guard case .parameter(input.name) = binding.source,
                      let spec = workflow.description(ofNode: id)?.input(named: port),
                      let issue = LiteralCheck.problem(with: value, for: spec) else { continue }
                problem(input.name, issue.text + " (for node '\(id)' port '\(port)')",
                        expected: issue.expected, found: issue.found)
                return false
            }
        }
        return true
    }

    /// Command-line text as a scalar of `type`; nil when it does not read as one.
    static func convert(_ text: String, to type: PortType) -> Value? {
        switch type {
        case .int:
            return Int(text.trimmingCharacters(in: .whitespaces)).map(Value.int)
        case .float:
            guard let number = Double(text.trimmingCharacters(in: .whitespaces)), number.isFinite else { return nil }
            return .float(number)
        case .bool:
            switch text.lowercased() {
            case "true", "yes", "1", "on": return .bool(true)
            case "false", "no", "0", "off": return .bool(false)
            default: return nil
            }
        case .string, .path, .enumeration:
            return .string(text)
        default:
            return nil
        }
    }

    /// Scalars key by value; objects by their content fingerprint when they
    /// have one, else by a fresh id (never a false hit).
    static func cacheKey(of value: Value) -> String {
        if let literal = Literal(value) { return literal.json.compact }
        if case let .object(payload, type) = value, let print = payload as? any ContentFingerprinting {
            return "\(type.spelling):\(print.contentFingerprint)"
        }
        return "object:" + UUID().uuidString
    }
}

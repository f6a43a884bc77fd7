/// Checks a scalar value against a declared type, range and choices: one rule
/// for literals in YAML, template-input defaults and values bound at run time.
enum LiteralCheck {
    struct Problem: Equatable {
        enum Kind { case type, range, choices }
        var kind: Kind
        var expected: String
        var found: String
        var text: String { "expected \(expected), found \(found)" }

        /// The diagnostic code for this kind of problem.
        var code: Diagnostic.Code {
            switch kind {
            case .type: .wrongLiteralType
            case .range: .outOfRange
            case .choices: .notInChoices
            }
        }
    }

    /// The first thing wrong with `value` for `port`, or nil.
    static func problem(with value: Value, for port: PortSpec) -> Problem? {
        problem(with: value, type: port.type, minimum: port.minimum, maximum: port.maximum,
                choices: port.choices?.map(Literal.string))
    }

    static func problem(with value: Value, type: PortType, minimum: Double?, maximum: Double?,
                        choices: [Literal]?) -> Problem? {
        guard let converted = convert(value, to: type) else {
            return Problem(kind: .type, expected: type.detailedSpelling, found: value.summary)
        }
        if case let .enumeration(_, cases) = type, let text = try? converted.asString(), !cases.contains(text) {
            return Problem(kind: .choices, expected: "one of \(cases.map(quoted).joined(separator: ", "))", found: value.summary)
        }
        if let number = try? converted.asDouble(), type == .int || type == .float {
            let outside = (minimum.map { number < $0 } ?? false) || (maximum.map { number > $0 } ?? false)
            if outside {
                return Problem(kind: .range, expected: "\(type.spelling) \(rangeText(minimum, maximum))", found: value.summary)
            }
        }
        if type == .string, let maximum, let text = try? converted.asString(), Double(text.utf8.count) > maximum {
            return Problem(kind: .range, expected: "a string of at most \(number(maximum)) bytes",
                           found: "\(text.utf8.count) bytes")
        }
        if let choices, let literal = Literal(converted), !choices.contains(literal) {
            let list = choices.map(\.json.compact)
            return Problem(kind: .choices, expected: "one of \(list.joined(separator: ", "))", found: value.summary)
        }
        return nil
    }

    /// `value` as a port of `type` receives it (an Int widened to Float), or
    /// nil when the types do not fit.
    static func convert(_ value: Value, to type: PortType) -> Value? {
        switch (type, value) {
        case (.int, .int), (.float, .float), (.string, .string), (.bool, .bool),
             (.path, .string), (.enumeration, .string):
            return value
        case let (.float, .int(number)):
            return .float(Double(number))
        case let (_, .object(_, found)):
            return type == found ? value : nil
        default:
            return nil
        }
    }

    static func rangeText(_ minimum: Double?, _ maximum: Double?, type: PortType? = nil) -> String {
        if type == .string, let maximum { return "at most \(number(maximum)) bytes" }
        return switch (minimum, maximum) {
        case let (low?, high?): "in \(number(low))...\(number(high))"
        case let (low?, nil): "at least \(number(low))"
        case let (nil, high?): "at most \(number(high))"
        case (nil, nil): ""
        }
    }

    /// 3 rather than 3.0 for whole bounds.
    static func number(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}

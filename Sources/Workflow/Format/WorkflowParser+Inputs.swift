import Yams

extension GraphReader {
    /// `inputs:` at the top: template parameters by name.
    mutating func readTemplateInputs(_ value: YAMLNode) -> [String: TemplateInput] {
        guard let inputs = mapping(value, what: "inputs") else { return [:] }
        var result: [String: TemplateInput] = [:]
        for (name, keyLocation, body) in entries(of: inputs) {
            guard Identifier.isValid(name) else {
                error(.invalidName, at: keyLocation, templateInput: name,
                      "not a valid name (letters, digits, '_' and '-', not starting with a digit)")
                continue
            }
            var input = readTemplateInput(name, body, at: keyLocation)
            input.location = keyLocation
            result[name] = input
        }
        return result
    }

    private mutating func readTemplateInput(_ name: String, _ body: YAMLNode, at location: SourceLocation) -> TemplateInput {
        var input = TemplateInput(name: name, type: .string)
        guard let fields = mapping(body, what: "a template input", templateInput: name) else {
            input.isUnreadable = true
            return input
        }
        var typeName: String?, typeLocation = location
        for (key, keyLocation, value) in entries(of: fields) {
            switch key {
            case "type":
                typeName = text(value, what: "the type", templateInput: name)
                typeLocation = value.location
            case "default":
                input.defaultValue = literal(value, what: "the default", templateInput: name)
                input.defaultLocation = value.location
            case "min":
                input.minimum = number(value, what: "min", templateInput: name)
            case "max":
                input.maximum = number(value, what: "max", templateInput: name)
            case "choices":
                input.choices = choices(value, templateInput: name)
            case "description":
                input.description = text(value, what: "the description", templateInput: name) ?? ""
            default:
                error(.invalidStructure, at: keyLocation, templateInput: name,
                      "unknown key '\(key)' (a template input has type, default, min, max, choices, description)")
            }
        }
        guard let typeName else {
            error(.invalidTemplateInput, at: location, templateInput: name, "missing 'type:'")
            input.isUnreadable = true
            return input
        }
        if typeName == "Enum" {
            let cases = (input.choices ?? []).compactMap { literal -> String? in
                if case let .string(text) = literal { return text }
                return nil
            }
            if cases.isEmpty || cases.count != input.choices?.count {
                error(.invalidTemplateInput, at: typeLocation, templateInput: name,
                      "type Enum needs 'choices:', a list of strings")
                input.isUnreadable = true
            }
            input.type = .enumeration(name: "Enum", cases: cases)
        } else if let type = PortType(spelling: typeName) {
            input.type = type
        } else {
            let known = PortType.named.map(\.spelling) + ["Enum"]
            error(.invalidTemplateInput, at: typeLocation, templateInput: name,
                  "unknown type '\(typeName)'" + Suggestion.didYouMean(typeName, among: known),
                  expected: "a type", found: typeName)
            input.isUnreadable = true
        }
        return input
    }

    /// A scalar literal, or a reported problem.
    mutating func literal(_ value: YAMLNode, what: String, node: String? = nil, port: String? = nil,
                          templateInput: String? = nil) -> Literal? {
        guard let scalar = value.scalar else {
            error(.wrongLiteralType, at: value.location, node: node, port: port, templateInput: templateInput,
                  "expected a single value, found \(value.kindDescription)",
                  expected: "a single value", found: value.kindDescription)
            return nil
        }
        switch YAMLScalar.resolve(scalar) {
        case let .literal(literal):
            return literal
        case .null:
            error(.wrongLiteralType, at: value.location, node: node, port: port, templateInput: templateInput,
                  "expected \(what), found nothing", expected: "a value", found: "nothing")
        case let .nonFinite(text):
            error(.wrongLiteralType, at: value.location, node: node, port: port, templateInput: templateInput,
                  "expected a finite number, found \(text)", expected: "a finite number", found: text)
        }
        return nil
    }

    private mutating func number(_ value: YAMLNode, what: String, templateInput: String) -> Double? {
        guard let literal = literal(value, what: what, templateInput: templateInput) else { return nil }
        if let number = literal.number { return number }
        error(.invalidTemplateInput, at: value.location, templateInput: templateInput,
              "\(what): expected a number, found \(literal.value.summary)",
              expected: "a number", found: literal.value.summary)
        return nil
    }

    private mutating func choices(_ value: YAMLNode, templateInput: String) -> [Literal]? {
        guard case let .sequence(items) = value else {
            error(.invalidTemplateInput, at: value.location, templateInput: templateInput,
                  "choices: expected a list, found \(value.kindDescription)")
            return nil
        }
        return items.compactMap { literal($0, what: "a choice", templateInput: templateInput) }
    }
}

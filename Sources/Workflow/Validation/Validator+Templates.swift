extension GraphCheck {
    /// Each template input's own declaration: a default of its type and in
    /// its range, bounds only on numbers, no default for objects.
    mutating func checkTemplateInputs() {
        for name in graph.inputs.keys.sorted() {
            let input = graph.inputs[name]!
            guard !input.isUnreadable else { continue }
            let numeric = input.type == .int || input.type == .float
            if !numeric, input.minimum != nil || input.maximum != nil {
                report(.invalidTemplateInput, at: input.location, templateInput: name,
                       "min/max apply to Int and Float, not \(input.type.spelling)")
            }
            if let low = input.minimum, let high = input.maximum, low > high {
                report(.invalidTemplateInput, at: input.location, templateInput: name,
                       "min \(LiteralCheck.number(low)) is greater than max \(LiteralCheck.number(high))")
            }
            if let choices = input.choices {
                switch input.type {
                case .enumeration:
                    break  // the choices are its cases
                case .int, .float, .string, .path:
                    for choice in choices {
                        if let problem = LiteralCheck.problem(with: choice.value, type: input.type, minimum: nil,
                                                              maximum: nil, choices: nil) {
                            report(problem.code, at: input.location, templateInput: name, "choice: " + problem.text,
                                   expected: problem.expected, found: problem.found)
                        }
                    }
                default:
                    report(.invalidTemplateInput, at: input.location, templateInput: name,
                           "choices apply to Int, Float, String and Path, not \(input.type.spelling)")
                }
            }
            guard let value = input.defaultValue else { continue }
            if !input.type.isScalar {
                report(.invalidTemplateInput, at: input.defaultLocation, templateInput: name,
                       "an input of type \(input.type.spelling) takes no default; it is given when the workflow runs")
            } else if let problem = LiteralCheck.problem(with: value.value, type: input.type, minimum: input.minimum,
                                                         maximum: input.maximum, choices: input.choices) {
                report(problem.code, at: input.defaultLocation, templateInput: name, "default: " + problem.text,
                       expected: problem.expected, found: problem.found)
            }
        }
    }

    /// A declared template input no node uses is almost always a typo on
    /// one side or the other.
    mutating func checkUnusedParameters() {
        for name in graph.inputs.keys.sorted() where !usedParameters.contains(name) {
            report(.unusedParameter, at: graph.inputs[name]!.location, templateInput: name,
                   "declared but no node uses '$\(name)'")
        }
    }
}

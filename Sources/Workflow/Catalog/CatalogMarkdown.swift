import Foundation

/// The node catalog as Markdown (`docs/nodes.md`): one section per
/// category, one table of inputs and one of outputs per node.
extension NodeRegistry {
    public var catalogMarkdown: String {
        var lines = [
            "# Node catalog", "",
            "Generated from the node declarations (`pilot nodes --markdown`); do not edit by hand.",
            "Workflow format: [workflow-format.md](workflow-format.md).", "",
        ]
        let categories = Dictionary(grouping: descriptions, by: \.category)
        for category in categories.keys.sorted() {
            lines += ["## \(category)", ""]
            for description in categories[category]!.sorted(by: { $0.type < $1.type }) {
                lines += description.markdown
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension NodeDescription {
    var markdown: [String] {
        var lines = ["### \(type)", "", "Version \(version)." + (isOutput ? " Output node: always runs." : "")
                         + (isCacheable ? "" : " Not cached."), "", doc, ""]
        if !inputs.isEmpty {
            lines += ["| input | kind | type | default | allowed | description |", "|---|---|---|---|---|---|"]
            for port in inputs {
                let requirement: String
                switch port.requirement {
                case .required: requirement = "required"
                case .optional: requirement = "optional"
                case let .defaultValue(value): requirement = Literal(value).map { "`\($0.json.compact)`" } ?? "—"
                }
                var allowed: [String] = []
                if port.minimum != nil || port.maximum != nil {
                    allowed.append(LiteralCheck.rangeText(port.minimum, port.maximum))
                }
                if case let .enumeration(_, cases) = port.type { allowed.append(cases.map { "`\($0)`" }.joined(separator: ", ")) }
                if let choices = port.choices { allowed.append(choices.map { "`\($0)`" }.joined(separator: ", ")) }
                if port.readsFile { allowed.append("file or folder, fingerprinted") }
                lines.append(row([
                    "`\(port.name)`", port.kind == .connection ? "input" : "param", port.type.spelling,
                    requirement, allowed.joined(separator: "; "), port.doc,
                ]))
            }
            lines.append("")
        }
        if !outputs.isEmpty {
            lines += ["| output | type | description |", "|---|---|---|"]
            lines += outputs.map { row(["`\($0.name)`", $0.type.spelling, $0.doc]) }
            lines.append("")
        }
        return lines
    }

    private func row(_ cells: [String]) -> String {
        "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |"
    }
}

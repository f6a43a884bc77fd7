import Foundation
import Nodes
import Workflow

// Input: workflow text (YAML or JSON), optionally followed by a line
// `#--set` and `name=value` lines, bound as `pilot run --set` would.
// Parse, validate against the real node catalog, bind; every failure must
// be a diagnostic, never a crash, a hang or a leak.

let validator = Validator(registry: NodeRegistry.standard)
private let separator = "\n#--set\n"


/// One input; libFuzzer calls it through `runFuzzer` (main.swift).
func fuzzWorkflow(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    var text = input
    var settings: [String: String] = [:]
    if let range = input.range(of: separator) {
        text = String(input[..<range.lowerBound])
        for line in input[range.upperBound...].split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { settings[String(parts[0])] = String(parts[1]) }
        }
    }
    let (graph, diagnostics) = validator.validate(text, file: "fuzz.yaml")
    for diagnostic in diagnostics { _ = diagnostic.description }
    guard diagnostics.isEmpty, let validated = try? ValidatedWorkflow(graph, registry: NodeRegistry.standard) else { return 0 }
    do {
        let bound = try validated.bind(text: settings)
        _ = bound.parameters.count
    } catch {
        _ = "\(error)"
    }
    return 0
}

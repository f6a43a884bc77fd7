import Daemon
import Foundation
import Workflow

// Input: any bytes, given to the strict JSON parser that reads outside
// bytes (safetensors headers, and message headers and contents once the
// signature checks out) and to the wire's conversion of its numbers. It must
// refuse or parse; a parsed value must print in its canonical form and parse
// back to exactly itself, as a signed reply built from it would. (With
// Foundation's parser it did not: 2^64 − 1 read as −1, and float literals
// with exponents came back a few units in the last place off.)

/// One input; libFuzzer calls it through `runFuzzer` (main.swift).
func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let buffer = UnsafeBufferPointer(start: data, count: size)
    guard let value = try? Workflow.JSONValue(parsing: Data(buffer)) else { return 0 }
    let text = value.compact
    guard let again = try? Workflow.JSONValue(parsing: Data(text.utf8)) else {
        fatalError("the canonical form of a parsed value does not parse: \(text.prefix(200))")
    }
    if again != value { fatalError("the canonical form parses to a different value: \(text.prefix(200))") }
    return 0
}

import Diffusion
import Foundation
import XCTest

/// One prompt with the 77 ids transformers produced for SD1 and SD2.
struct ReferenceCase {
    let prompt: String
    let sd1: [Int32]
    let sd2: [Int32]
}

/// Checks every case against `tokenizer` for both paddings and fails once,
/// listing the first mismatches with the expected and the actual ids.
func assertMatchesReference(_ cases: [ReferenceCase], tokenizer: CLIPTokenizer, source: String,
                            file: StaticString = #filePath, line: UInt = #line) {
    var failures: [String] = []
    for reference in cases {
        for (name, padding, expected) in [("SD1", PromptPadding.sd1, reference.sd1), ("SD2", .sd2, reference.sd2)] {
            let actual = tokenizer.tokenize(reference.prompt, length: expected.count, padding: padding).ids
            if actual != expected {
                failures.append("""
                    \(name) \(String(reflecting: reference.prompt).prefix(120))
                      expected \(expected)
                      actual   \(actual)
                    """)
            }
        }
    }
    XCTAssertTrue(failures.isEmpty, """
        \(source): expected all \(cases.count * 2) rows (\(cases.count) prompts × SD1, SD2) to equal transformers' ids; \
        \(failures.count) differ:
        \(failures.prefix(8).joined(separator: "\n"))
        """, file: file, line: line)
}

/// Reads a JSON file of reference cases, as `[String: Any]` documents.
func loadJSON(_ url: URL) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(contentsOf: url))
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Converts a JSON array of numbers to ids.
func ids(_ value: Any?, _ context: @autoclosure () -> String) throws -> [Int32] {
    guard let numbers = value as? [NSNumber] else { throw FixtureError("\(context()): expected an array of ids") }
    return numbers.map { Int32(truncating: $0) }
}

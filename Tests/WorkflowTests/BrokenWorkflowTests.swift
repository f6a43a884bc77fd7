import Workflow
import XCTest

/// Each file in Broken/ is a small invalid workflow; each test states the
/// exact diagnostics (line:column and message) the validator must print for
/// it, all of them, in source order.
final class BrokenWorkflowTests: XCTestCase {
    /// Expected diagnostics by file, without the leading `FILE:`.
    static let expected: [String: [String]] = [
        "01-yaml-unclosed-flow.yaml": [
            "3:8: error: YAML syntax error: flow mapping '{' opened at 3:8 is never closed (did not find expected ',' or '}' at 4:1)",
        ],
        "02-yaml-bad-indent.yaml": [
            "5:4: error: YAML syntax error: did not find expected key (while parsing a block mapping started at 3:3)",
        ],
        "03-yaml-tab-indent.yaml": [
            "4:1: error: YAML syntax error: found character that cannot start any token (while scanning for the next token started at 4:1)",
        ],
        "04-yaml-unclosed-quote.yaml": [
            "3:41: error: YAML syntax error: quoted string opened at 3:41 is never closed (found unexpected end of stream at 6:1)",
        ],
        "05-not-a-mapping.yaml": [
            "1:1: error: expected the workflow as a mapping, found a sequence",
        ],
        "06-unknown-top-key.yaml": [
            "4:1: error: unknown key 'outptus' (a workflow has version, name, description, inputs, nodes, outputs)",
        ],
        "07-missing-version.yaml": [
            "1:1: error: missing 'version: 1'",
        ],
        "08-wrong-version.yaml": [
            "1:10: error: expected version 1, found 2; this program reads format version 1 only",
        ],
        "09-version-not-int.yaml": [
            "1:10: error: expected version 1, found String \"one\"",
        ],
        "10-unknown-node-type.yaml": [
            "3:15: error: node 'one': unknown node type 'Constnt'; did you mean 'Constant'?",
        ],
        "11-unknown-node-type-no-suggestion.yaml": [
            "4:11: error: node 'one': unknown node type 'Frobnicate'",
        ],
        "12-unknown-input-port.yaml": [
            "8:7: error: node 'sum' port 'c': Add has no such input (inputs: a, b; params: none)",
        ],
        "13-unknown-param.yaml": [
            "6:7: error: node 'one' port 'vlaue': Constant has no such parameter; did you mean 'value'? (inputs: none; params: value)",
        ],
        "14-param-under-inputs.yaml": [
            "7:14: error: node 'count' port 'steps': a parameter of Steps: give it under params:, as a value or '$name'",
        ],
        "15-connection-under-params.yaml": [
            "5:14: error: node 'sum' port 'a': a connection of Add: give it under inputs:, as 'node.port' or '$name'",
        ],
        "16-edge-type-mismatch.yaml": [
            "6:17: error: node 'sum' port 'a': expected Int, found String (from 'word.text')",
        ],
        "17-edge-object-mismatch.yaml": [
            "8:14: error: node 'paint' port 'image': expected Image, found Mask (from 'mask.mask')",
            "9:13: error: node 'paint' port 'mask': expected Mask, found Image (from 'image.image')",
        ],
        "18-param-type-mismatch.yaml": [
            "7:21: error: node 'one' port 'value': expected Int, found String (template input '$amount')",
        ],
        "19-missing-required-input.yaml": [
            "4:3: error: node 'sum' port 'a': missing required input: expected Int, found nothing",
        ],
        "20-missing-required-param.yaml": [
            "3:3: error: node 'word' port 'text': missing required parameter: expected String, found nothing",
            "4:3: error: node 'save' port 'name': missing required parameter: expected String, found nothing",
        ],
        "21-out-of-range-max.yaml": [
            "6:14: error: node 'count' port 'steps': expected Int in 1...100, found Int 1000",
        ],
        "22-out-of-range-min.yaml": [
            "3:44: error: node 'image' port 'width': expected Int in 1...4096, found Int 0",
            "7:24: error: node 'paint' port 'strength': expected Float in 0...1, found Float -0.5",
        ],
        "23-not-in-choices-enum.yaml": [
            "7:20: error: node 'paint' port 'mode': expected one of \"fill\", \"blur\", found String \"sharpen\"",
        ],
        "24-not-in-choices-string.yaml": [
            "8:14: error: node 'paint' port 'label': expected one of \"a\", \"b\", found String \"c\"",
        ],
        "25-wrong-literal-type.yaml": [
            "3:41: error: node 'one' port 'value': expected Int, found String \"3\"",
            "4:40: error: node 'count' port 'steps': expected Int, found Float 2.5",
            "9:20: error: node 'paint' port 'flip': expected Bool, found String \"yes\"",
            "9:35: error: node 'paint' port 'strength': expected Float, found String \"high\"",
        ],
        "26-wrong-literal-null-or-list.yaml": [
            "6:13: error: node 'one' port 'value': expected a value, found nothing",
            "10:13: error: node 'word' port 'text': expected a single value, found a sequence",
        ],
        "27-unbound-parameter.yaml": [
            "3:3: error: template input 'steps': declared but no node uses '$steps'",
            "7:21: error: node 'count' port 'steps': no template input 'stesp'; did you mean 'steps'? (template inputs: steps)",
        ],
        "28-unused-template-input.yaml": [
            "3:3: error: template input 'seed': declared but no node uses '$seed'",
        ],
        "29-cycle-two-nodes.yaml": [
            "3:3: error: node 'first': cycle: first → second → first",
        ],
        "30-cycle-self.yaml": [
            "3:3: error: node 'loop': cycle: loop → loop",
        ],
        "31-cycle-three.yaml": [
            "4:3: error: node 'a': cycle: a → b → c → a",
        ],
        "32-dangling-output-node.yaml": [
            "5:11: error: output 'result': no node 'oen' (in 'oen.value'); did you mean 'one'?",
        ],
        "33-dangling-output-port.yaml": [
            "5:11: error: output 'result': node 'one' (Constant) has no output 'values'; did you mean 'value'? (outputs: value)",
            "6:10: error: output 'other': node 'one' (Constant) has no output 'sum' (outputs: value)",
        ],
        "34-duplicate-node-id.yaml": [
            "5:3: error: node 'one': duplicate node id (first defined at 3:3)",
        ],
        "35-duplicate-keys.yaml": [
            "7:7: error: node 'one': duplicate key 'value' (first at 6:7)",
            "12:5: error: node 'sum': duplicate key 'inputs' (first at 10:5)",
            "15:1: error: duplicate key 'outputs' (first at 13:1)",
        ],
        "36-unknown-node-reference.yaml": [
            "6:17: error: node 'sum' port 'a': no node 'oen' (in 'oen.value'); did you mean 'one'?",
            "6:31: error: node 'sum' port 'b': no node 'zzz' (in 'zzz.value')",
        ],
        "37-unknown-output-port-reference.yaml": [
            "6:17: error: node 'sum' port 'a': node 'one' (Constant) has no output 'vale'; did you mean 'value'? (outputs: value)",
        ],
        "38-malformed-reference.yaml": [
            "7:10: error: node 'sum' port 'a': expected 'node.port' or '$param', found String \"one\"",
            "8:10: error: node 'sum' port 'b': expected 'node.port' or '$param', found Int 5",
            "10:11: error: output 'result': expected 'node.port', found String \"sum\"",
        ],
        "39-template-input-bad-type.yaml": [
            "3:19: error: template input 'picture': unknown type 'Imagee'; did you mean 'Image'?",
            "4:16: error: template input 'mode': type Enum needs 'choices:', a list of strings",
        ],
        "40-template-default-out-of-range.yaml": [
            "3:31: error: template input 'steps': default: expected Int in 1...50, found Int 0",
            "4:34: error: template input 'label': default: expected one of \"x\", \"y\", found String \"z\"",
            "6:40: error: node 'count' port 'steps': expected Int in 1...100, found Int 0 (from template input '$steps')",
        ],
        "41-template-default-port-range.yaml": [
            "6:40: error: node 'count' port 'steps': expected Int in 1...100, found Int 500 (from template input '$steps')",
            "8:69: error: node 'paint' port 'mode': expected PaintMode (fill|blur), found Enum (fill|smudge) (template input '$mode')",
        ],
        "42-nothing-to-run.yaml": [
            "1:1: error: nothing to run: no 'outputs:' and no output node (such as SaveImage)",
        ],
        "43-node-not-mapping.yaml": [
            "3:8: error: node 'one': expected a node as a mapping, found String \"Constant\"",
            "4:8: error: node 'two': expected a node as a mapping, found a sequence",
        ],
        "44-missing-node-type.yaml": [
            "3:3: error: node 'one': missing 'type:'",
        ],
        "45-invalid-names.yaml": [
            "3:3: error: template input 'my input': not a valid name (letters, digits, '_' and '-', not starting with a digit)",
            "5:3: error: node '1st': not a valid node id (letters, digits, '_' and '-', not starting with a digit; '/' joins such names)",
            "8:3: error: output 'the result': not a valid name (letters, digits, '_' and '-', not starting with a digit)",
        ],
        "46-node-version-mismatch.yaml": [
            "3:15: error: node 'one': written for Constant version 2, this program has version 1; remove 'version:' to accept it",
        ],
        "47-template-object-default.yaml": [
            "3:35: error: template input 'picture': an input of type Image takes no default; it is given when the workflow runs",
            "4:3: error: template input 'size': min/max apply to Int and Float, not String",
        ],
        "48-dollar-bad-name.yaml": [
            "3:37: error: node 'word' port 'text': expected '$name' with a valid name (write '$$' for a literal '$'), found \"$1x\"",
        ],
        "49-non-finite.yaml": [
            "4:73: error: node 'paint' port 'strength': expected a finite number, found .inf",
        ],
        "56-unknown-template.yaml": [
            "4:17: error: node 'small': no template 'resise'; did you mean 'resize'? (templates: resize)",
        ],
        "50-many-problems.yaml": [
            "4:3: error: template input 'prompt': declared but no node uses '$prompt'",
            "5:3: error: template input 'unused': declared but no node uses '$unused'",
            "7:37: error: node 'word' port 'text': no template input 'promt'; did you mean 'prompt'? (template inputs: prompt, unused)",
            "8:32: error: node 'sum' port 'a': expected Int, found String (from 'word.text')",
            "9:3: error: node 'paint' port 'image': missing required input: expected Image, found nothing",
            "9:43: error: node 'paint' port 'strength': expected Float in 0...1, found Int 2",
            "10:19: error: node 'mystery': unknown node type 'Mystery'",
            "11:3: error: node 'word': duplicate node id (first defined at 7:3)",
            "13:11: error: output 'result': node 'sum' (Add) has no output 'total' (outputs: sum)",
        ],
        "51-json-wire-format.json": [
            "7:44: error: node 'sum' port 'a': expected Int, found String (from 'word.text')",
            "8:52: error: node 'count' port 'steps': expected Int, found String \"3\"",
        ],
        "53-nested-flow-too-deep.yaml": [
            "3:101: error: nesting deeper than 64 levels (level 65 starts here); workflows nest at most 64 levels (PILOT_WORKFLOW_MAX_DEPTH)",
        ],
        "54-nested-sequence-too-deep.yaml": [
            "7:127: error: nesting deeper than 64 levels (level 65 starts here); workflows nest at most 64 levels (PILOT_WORKFLOW_MAX_DEPTH)",
        ],
        "55-nested-json-too-deep.json": [
            "1:133: error: nesting deeper than 64 levels (level 65 starts here); workflows nest at most 64 levels (PILOT_WORKFLOW_MAX_DEPTH)",
        ],
        "52-yaml-undefined-alias.yaml": [
            "3:41: error: YAML syntax error: found undefined alias",
        ],
    ]

    /// YAML syntax: unclosed flow mapping, bad indentation, a tab, an unclosed quote, an undefined alias.
    func testYAMLSyntaxErrors() throws {
        try assertDiagnostics("01-yaml-unclosed-flow.yaml")
        try assertDiagnostics("02-yaml-bad-indent.yaml")
        try assertDiagnostics("03-yaml-tab-indent.yaml")
        try assertDiagnostics("04-yaml-unclosed-quote.yaml")
        try assertDiagnostics("52-yaml-undefined-alias.yaml")
    }

    /// The file's shape: not a mapping, unknown keys, nodes that are not mappings or lack a type, invalid names.
    func testStructureErrors() throws {
        try assertDiagnostics("05-not-a-mapping.yaml")
        try assertDiagnostics("06-unknown-top-key.yaml")
        try assertDiagnostics("43-node-not-mapping.yaml")
        try assertDiagnostics("44-missing-node-type.yaml")
        try assertDiagnostics("45-invalid-names.yaml")
    }

    /// Format and node versions.
    func testVersionErrors() throws {
        try assertDiagnostics("07-missing-version.yaml")
        try assertDiagnostics("08-wrong-version.yaml")
        try assertDiagnostics("09-version-not-int.yaml")
        try assertDiagnostics("46-node-version-mismatch.yaml")
    }

    /// Unknown node types, with and without a suggestion.
    func testUnknownNodeTypes() throws {
        try assertDiagnostics("10-unknown-node-type.yaml")
        try assertDiagnostics("11-unknown-node-type-no-suggestion.yaml")
    }

    /// Unknown inputs and params; connections and parameters in the wrong section.
    func testUnknownPortsAndWrongKinds() throws {
        try assertDiagnostics("12-unknown-input-port.yaml")
        try assertDiagnostics("13-unknown-param.yaml")
        try assertDiagnostics("14-param-under-inputs.yaml")
        try assertDiagnostics("15-connection-under-params.yaml")
    }

    /// Edges between ports of different types, also in the JSON wire format.
    func testEdgeTypeMismatches() throws {
        try assertDiagnostics("16-edge-type-mismatch.yaml")
        try assertDiagnostics("17-edge-object-mismatch.yaml")
        try assertDiagnostics("51-json-wire-format.json")
    }

    /// Required connections and parameters left out.
    func testMissingRequiredInputs() throws {
        try assertDiagnostics("19-missing-required-input.yaml")
        try assertDiagnostics("20-missing-required-param.yaml")
    }

    /// Literals out of range, not among the choices, of the wrong type, null, a list, infinite.
    func testLiteralValues() throws {
        try assertDiagnostics("21-out-of-range-max.yaml")
        try assertDiagnostics("22-out-of-range-min.yaml")
        try assertDiagnostics("23-not-in-choices-enum.yaml")
        try assertDiagnostics("24-not-in-choices-string.yaml")
        try assertDiagnostics("25-wrong-literal-type.yaml")
        try assertDiagnostics("26-wrong-literal-null-or-list.yaml")
        try assertDiagnostics("49-non-finite.yaml")
    }

    /// Template parameters: unbound, unused, wrongly typed, bad declarations and defaults.
    func testTemplateInputs() throws {
        try assertDiagnostics("18-param-type-mismatch.yaml")
        try assertDiagnostics("27-unbound-parameter.yaml")
        try assertDiagnostics("28-unused-template-input.yaml")
        try assertDiagnostics("39-template-input-bad-type.yaml")
        try assertDiagnostics("40-template-default-out-of-range.yaml")
        try assertDiagnostics("41-template-default-port-range.yaml")
        try assertDiagnostics("47-template-object-default.yaml")
        try assertDiagnostics("48-dollar-bad-name.yaml")
    }

    /// Cycles name their nodes in edge order.
    func testCycles() throws {
        try assertDiagnostics("29-cycle-two-nodes.yaml")
        try assertDiagnostics("30-cycle-self.yaml")
        try assertDiagnostics("31-cycle-three.yaml")
    }

    /// Edges and outputs naming missing nodes or ports, or malformed.
    func testReferences() throws {
        try assertDiagnostics("32-dangling-output-node.yaml")
        try assertDiagnostics("33-dangling-output-port.yaml")
        try assertDiagnostics("36-unknown-node-reference.yaml")
        try assertDiagnostics("37-unknown-output-port-reference.yaml")
        try assertDiagnostics("38-malformed-reference.yaml")
    }

    /// Duplicate node ids and duplicate keys, which YAML libraries drop silently.
    func testDuplicates() throws {
        try assertDiagnostics("34-duplicate-node-id.yaml")
        try assertDiagnostics("35-duplicate-keys.yaml")
    }

    /// A workflow without outputs or output nodes.
    func testNothingToRun() throws {
        try assertDiagnostics("42-nothing-to-run.yaml")
    }

    /// Several problems of different classes in one file, all reported in source order.
    /// Nesting past the limit is refused from the raw text, before the
    /// (recursive) YAML parser runs: flow brackets, compact sequences, JSON.
    func testNestingBeyondTheLimitIsRefusedBeforeParsing() throws {
        try assertDiagnostics("53-nested-flow-too-deep.yaml")
        try assertDiagnostics("54-nested-sequence-too-deep.yaml")
        try assertDiagnostics("55-nested-json-too-deep.json")
    }

    /// 50,000 levels, the size that overflowed the parser's stack: a clear
    /// error, at once, in every shape of nesting.
    func testFiftyThousandLevelsOfNestingGiveAnErrorNotACrash() {
        let n = 50_000
        let shapes = [
            "version: 1\nnodes:\n  a: {type: Constant, params: {value: " + String(repeating: "[", count: n) + "]}}\n",
            "version: 1\nnodes:\n  a:\n    params:\n      value:\n        " + String(repeating: "- ", count: n) + "1\n",
            "{\"version\": 1, \"nodes\": " + String(repeating: "{\"a\": ", count: n) + "1" + String(repeating: "}", count: n) + "}",
            "version: 1\nnodes: " + String(repeating: "{a: ", count: n) + "1\n",
        ]
        for text in shapes {
            let diagnostics = Validator(registry: TestNodes.registry()).validate(text, file: "deep.yaml").diagnostics
            XCTAssertEqual(diagnostics.map(\.code), [.limitExceeded], "expected one limit error for \(text.prefix(40))…")
            XCTAssertTrue(diagnostics.first?.message.contains("nesting deeper than 64 levels") ?? false,
                          "the error must name the depth limit: \(diagnostics)")
        }
    }

    func testNodeCountStringLengthTemplateInputsAndAliasExpansionAreBounded() {
        func codes(_ text: String) -> [Diagnostic] {
            Validator(registry: TestNodes.registry()).validate(text, file: "big.yaml").diagnostics
        }
        let manyNodes = "version: 1\nnodes:\n" + (0..<1001).map { "  n\($0): {type: Constant, params: {value: 1}}\n" }.joined()
        XCTAssertEqual(codes(manyNodes).first?.message, "1001 nodes, over the limit of 1000")
        let manyInputs = "version: 1\ninputs:\n" + (0..<257).map { "  i\($0): {type: Int}\n" }.joined() + "nodes: {}\n"
        XCTAssertEqual(codes(manyInputs).first?.message, "257 template inputs, over the limit of 256")
        let longPrompt = "version: 1\nnodes:\n  t: {type: Constant, params: {value: \"" + String(repeating: "a", count: 70_000) + "\"}}\n"
        let long = codes(longPrompt)
        XCTAssertEqual(long.first?.message, "a string of 70000 bytes, over the limit of 65536")
        XCTAssertEqual(long.first?.location.line, 3)
        // Ten levels of aliases, each used ten times: 10^10 values if expanded.
        var laughs = "version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1..<10 { laughs += "a\(i): &a\(i) [" + [String](repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        laughs += "nodes: {}\n"
        let start = Date()
        XCTAssertEqual(codes(laughs).first?.code, .limitExceeded)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "alias expansion must be cut short")
    }

    func testTheLimitsCountRealNestingNotBracketsInTextOrBlockScalars() {
        let text = """
            version: 1
            description: "brackets [[[[ in a quoted string ]]]] and 'quotes' # not a comment"
            nodes:
              one:
                type: Constant
                params:
                  value: |
                    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
              # a comment with [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
            outputs:
              result: one.value
            """
        XCTAssertNil(WorkflowLimits().violation(in: text), "text inside quotes, block scalars and comments is not nesting")
        XCTAssertNil(WorkflowLimits(maxDepth: 4).violation(in: "a: {b: [c, {d: 1}]}\n"), "depth 4 is within a limit of 4")
        XCTAssertNotNil(WorkflowLimits(maxDepth: 3).violation(in: "a: {b: [c, {d: 1}]}\n"), "depth 4 breaks a limit of 3")
        let big = WorkflowLimits(maxDepth: 64, maxBytes: 100).violation(in: String(repeating: "#", count: 101))
        XCTAssertEqual(big?.message.hasPrefix("workflow text is 101 bytes, over the limit of 100"), true)
    }

    func testManyProblemsReportedAtOnce() throws {
        try assertDiagnostics("50-many-problems.yaml")
    }

    func testAnUnknownTemplateIsNamedWithASuggestion() throws {
        try assertDiagnostics("56-unknown-template.yaml")
    }

    /// Every file in Broken/ is checked by one of the tests above, and every
    /// error class has at least one broken workflow.
    func testEveryBrokenFileIsCheckedAndEveryClassCovered() throws {
        XCTAssertEqual(Fixtures.brokenFiles, Self.expected.keys.sorted())
        XCTAssertGreaterThanOrEqual(Fixtures.brokenFiles.count, 25)
        var codes = Set<Diagnostic.Code>()
        for name in Fixtures.brokenFiles {
            let text = try String(contentsOf: Fixtures.brokenFolder.appendingPathComponent(name), encoding: .utf8)
            codes.formUnion(Validator(registry: TestNodes.registry(), templates: Fixtures.templates)
                .validate(text, file: name).diagnostics.map(\.code))
        }
        // An unreadable file is a reading error, tested in ValidationAPITests.
        XCTAssertEqual(Set(Diagnostic.Code.allCases).subtracting(codes), [.unreadableFile])
    }

    private func assertDiagnostics(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let found = try Fixtures.diagnostics(ofBroken: name)
        let expected = (Self.expected[name] ?? []).map { "\(name):" + $0 }
        XCTAssertFalse(expected.isEmpty, "\(name): no expectations", file: file, line: line)
        XCTAssertEqual(found, expected, "\(name)", file: file, line: line)
    }
}

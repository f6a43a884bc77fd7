import Foundation
import Workflow
import XCTest

/// The YAML and JSON forms read to the same graph, and the canonical form
/// and its SHA-256 do not depend on layout.
final class FormatTests: XCTestCase {
    static let full = """
        # A workflow using every part of the format.
        version: 1
        name: everything
        description: |
          Two lines
          of description.
        inputs:
          count: {type: Int, default: 3, min: 1, max: 100, description: How many steps.}
          strength: {type: Float, default: 0.25}
          mode: {type: Enum, choices: [fill, blur], default: blur}
          label: {type: String, choices: [a, b], default: b}
          picture: {type: Image}
        nodes:
          steps: {type: Steps, params: {steps: $count}}
          paint:
            type: Paint
            inputs: {image: $picture}
            params: {mode: $mode, strength: $strength, label: $label, flip: true}
          money: {type: Text, params: {text: "$$5 \\"quoted\\" ü"}}
          exact: {type: Paint, inputs: {image: paint.image}, params: {strength: 1.0}}
          widened: {type: Paint, inputs: {image: paint.image}, params: {strength: 1}}
        outputs:
          steps: steps.value
          image: exact.image
          money: money.text
          other: widened.summary
        """

    private func parse(_ text: String) -> WorkflowGraph {
        let (graph, problems) = Validator(registry: TestNodes.registry()).validate(text, file: "t.yaml")
        XCTAssertEqual(problems.map(\.description), [])
        return graph
    }

    func testYAMLJSONAndCanonicalFormRoundTrip() {
        let graph = parse(Self.full)
        let canonical = graph.canonicalJSON
        let fromCanonical = parse(canonical)
        let fromPretty = parse(graph.json.pretty)
        let fromYAML = parse(graph.yaml)
        XCTAssertEqual(fromCanonical.canonicalJSON, canonical)
        XCTAssertEqual(fromPretty.canonicalJSON, canonical)
        XCTAssertEqual(fromYAML.canonicalJSON, canonical)
        XCTAssertEqual(fromYAML.yaml, graph.yaml)
        XCTAssertEqual(fromYAML.sha256, graph.sha256)
        XCTAssertEqual(graph.sha256.count, 64)

        XCTAssertEqual(graph.description, "Two lines\nof description.\n")
        XCTAssertEqual(graph.inputs["mode"]?.type, .enumeration(name: "Enum", cases: ["fill", "blur"]))
        XCTAssertEqual(graph.nodes["money"]?.params["text"]?.source, .literal(.string("$5 \"quoted\" ü")))
        XCTAssertEqual(graph.nodes["exact"]?.params["strength"]?.source, .literal(.float(1)))
        XCTAssertEqual(graph.nodes["widened"]?.params["strength"]?.source, .literal(.int(1)))
        XCTAssertTrue(canonical.contains(#""text":"$$5 \"quoted\" ü""#), canonical)
    }

    func testCanonicalFormIgnoresKeyOrderLayoutAndComments() {
        let a = parse("""
            version: 1
            nodes:
              one: {type: Constant, params: {value: 2}}
              sum: {type: Add, inputs: {a: one.value, b: one.value}}
            outputs: {total: sum.sum}
            """)
        let b = parse("""
            outputs:
              total: "sum.sum"   # the result
            nodes:
              sum:
                inputs:
                  b: 'one.value'
                  a: one.value
                type: Add
              one:
                params: {value: 0x2}
                type: Constant
            version: 1
            """)
        XCTAssertEqual(a.canonicalJSON, b.canonicalJSON)
        XCTAssertEqual(a.sha256, b.sha256)
    }

    func testCanonicalTextAndDigestAreExact() {
        let graph = parse("""
            version: 1
            name: tiny
            nodes:
              one: {type: Constant, params: {value: 7}}
            outputs: {result: one.value}
            """)
        let expected = #"{"description":"","inputs":{},"name":"tiny","nodes":{"one":{"params":{"value":7},"type":"Constant"}},"outputs":{"result":"one.value"},"version":1}"#
        XCTAssertEqual(graph.canonicalJSON, expected)
        // sha256 of the text above, computed independently (Python hashlib).
        XCTAssertEqual(graph.sha256, "02fb9d260fd3d1fd7f92ebae3b77f5dc87af30d8e202b9362f7721d67227c9d4")
    }

    func testYAMLLayoutIsOneLinePerEntryTypeFirst() {
        let graph = parse("""
            version: 1
            inputs: {n: {max: 9, type: Int, default: 2}}
            nodes:
              sum: {inputs: {b: one.value, a: one.value}, type: Add}
              one: {params: {value: $n}, type: Constant}
            outputs: {total: sum.sum}
            """)
        XCTAssertEqual(graph.yaml, """
            version: 1
            name: ""
            inputs:
              n: {type: Int, default: 2, max: 9}
            nodes:
              one: {type: Constant, params: {value: $n}}
              sum: {type: Add, inputs: {a: one.value, b: one.value}}
            outputs:
              total: sum.sum

            """)
    }

    func testRecordingNodeVersionsChangesTheDigest() throws {
        let graph = parse("version: 1\nnodes: {one: {type: Constant}}\noutputs: {r: one.value}\n")
        let saved = graph.recordingVersions(from: TestNodes.registry())
        XCTAssertEqual(saved.nodes["one"]?.version, 1)
        XCTAssertTrue(saved.canonicalJSON.contains(#""version":1,"#) || saved.canonicalJSON.contains(#""version":1}"#))
        XCTAssertNotEqual(saved.sha256, graph.sha256)
        XCTAssertEqual(parse(saved.yaml).canonicalJSON, saved.canonicalJSON)
    }

    func testBoundValuesBecomeDefaultsSoTheGraphAloneReruns() throws {
        let graph = parse("version: 1\ninputs: {n: {type: Int, default: 1}}\nnodes: {one: {type: Constant, params: {value: $n}}}\noutputs: {r: one.value}\n")
        let saved = graph.withDefaults(["n": .int(42), "unknown": .int(1)])
        XCTAssertEqual(saved.inputs["n"]?.defaultValue, .int(42))
        XCTAssertNil(saved.inputs["unknown"])
        let runner = try Runner()
        let result = try runner.run(try runner.workflow(saved.yaml))
        XCTAssertEqual(try result.outputs["r"]?.asInt(), 42)
    }

    func testScalarsReadAsYAML12CoreSchema() {
        let graph = parse("""
            version: 1
            nodes:
              a: {type: Text, params: {text: yes}}
              b: {type: Text, params: {text: "5"}}
              c: {type: Text, params: {text: !!str 5}}
              d: {type: Constant, params: {value: 0x10}}
              e: {type: Constant, params: {value: -0o17}}
              f: {type: Paint, inputs: {image: g.image}, params: {strength: 1e-1, flip: True}}
              g: {type: MakeImage, params: {width: +12}}
            outputs: {a: a.text, b: b.text, c: c.text, d: d.value, e: e.value, f: f.image}
            """)
        XCTAssertEqual(graph.nodes["a"]?.params["text"]?.source, .literal(.string("yes")))
        XCTAssertEqual(graph.nodes["b"]?.params["text"]?.source, .literal(.string("5")))
        XCTAssertEqual(graph.nodes["c"]?.params["text"]?.source, .literal(.string("5")))
        XCTAssertEqual(graph.nodes["d"]?.params["value"]?.source, .literal(.int(16)))
        XCTAssertEqual(graph.nodes["e"]?.params["value"]?.source, .literal(.int(-15)))
        XCTAssertEqual(graph.nodes["f"]?.params["strength"]?.source, .literal(.float(0.1)))
        XCTAssertEqual(graph.nodes["f"]?.params["flip"]?.source, .literal(.bool(true)))
        XCTAssertEqual(graph.nodes["g"]?.params["width"]?.source, .literal(.int(12)))
    }

    func testJSONValueRendering() {
        let value = JSONValue.object(["b": .array([.int(1), .float(2), .float(1e-5), .null]), "a": .string("x\n\u{1}\"")])
        XCTAssertEqual(value.compact, #"{"a":"x\n\u0001\"","b":[1,2.0,1e-05,null]}"#)
        XCTAssertEqual(value.pretty, """
            {
              "a": "x\\n\\u0001\\"",
              "b": [
                1,
                2.0,
                1e-05,
                null
              ]
            }

            """)
    }
}

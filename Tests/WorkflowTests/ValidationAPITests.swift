import Foundation
import Workflow
import XCTest

/// The validation entry points: what they throw, how diagnostics read.
final class ValidationAPITests: XCTestCase {
    let registry = TestNodes.registry()

    func testValidWorkflowPasses() throws {
        let workflow = try Fixtures.workflow(FormatTests.full, registry: registry)
        XCTAssertEqual(workflow.graph.nodes.count, 5)
        XCTAssertEqual(workflow.description(ofNode: "paint")?.type, "Paint")
    }

    func testFailureCarriesEveryDiagnosticWithStructuredFields() {
        let text = """
            version: 1
            nodes:
              sum: {type: Add, inputs: {a: word.text}}
              word: {type: Text, params: {text: 5}}
            outputs: {r: sum.sum}
            """
        XCTAssertThrowsError(try ValidatedWorkflow(parsing: text, file: "w.yaml", registry: registry)) { error in
            guard let failure = error as? ValidationFailure else { return XCTFail("\(error)") }
            XCTAssertEqual(failure.description, """
                w.yaml:3:32: error: node 'sum' port 'a': expected Int, found String (from 'word.text')
                w.yaml:4:37: error: node 'word' port 'text': expected String, found Int 5
                """)
            let first = failure.diagnostics[0]
            XCTAssertEqual(first.code, .typeMismatch)
            XCTAssertEqual(first.location, SourceLocation(line: 3, column: 32))
            XCTAssertEqual(first.node, "sum")
            XCTAssertEqual(first.port, "a")
            XCTAssertEqual(first.expected, "Int")
            XCTAssertEqual(first.found, "String")
            XCTAssertEqual(first.json.compact, #"{"code":"typeMismatch","column":32,"expected":"Int","file":"w.yaml","found":"String","line":3,"message":"expected Int, found String (from 'word.text')","node":"sum","port":"a","text":"w.yaml:3:32: error: node 'sum' port 'a': expected Int, found String (from 'word.text')"}"#)
        }
    }

    func testUnreadableFileIsADiagnostic() {
        let url = URL(fileURLWithPath: "/nonexistent/workflow.yaml")
        XCTAssertThrowsError(try ValidatedWorkflow(contentsOf: url, registry: registry)) { error in
            let diagnostics = (error as? ValidationFailure)?.diagnostics ?? []
            XCTAssertEqual(diagnostics.map(\.code), [.unreadableFile])
            XCTAssertTrue(diagnostics.first?.description.hasPrefix("/nonexistent/workflow.yaml:1:1: error: cannot read") == true)
        }
    }

    func testFileIsReadAndNamedAsGiven() throws {
        let folder = try Fixtures.temporaryFolder()
        let url = folder.appendingPathComponent("w.yaml")
        try "version: 1\nnodes: {one: {type: Constant}}\noutputs: {r: one.value}\n".write(to: url, atomically: true, encoding: .utf8)
        let workflow = try ValidatedWorkflow(contentsOf: url, file: "w.yaml", registry: registry)
        XCTAssertEqual(workflow.graph.file, "w.yaml")
    }

    func testEmptyDocument() {
        let problems = Validator(registry: registry).validate("# nothing\n", file: "e.yaml").diagnostics
        XCTAssertEqual(problems.map(\.description),
                       ["e.yaml:1:1: error: empty document: expected a workflow mapping (version, nodes, outputs)"])
    }

    func testRegistryRefusesBrokenDeclarations() {
        let bad = NodeDescription(
            type: "Bad", category: "test", doc: "",
            inputs: [.parameter("x", .int, default: .string("no"), doc: ""),
                     .parameter("x", .int, doc: ""),
                     .parameter("img", .image, doc: ""),
                     .parameter("n", .int, default: .int(5), max: 3, doc: "")])
        XCTAssertEqual(bad.declarationProblems, [
            "duplicate input 'x'",
            "default of 'x': expected Int, found String \"no\"",
            "parameter 'img' has object type Image; make it a connection",
            "default of 'n': expected Int at most 3, found Int 5",
        ])
        XCTAssertEqual(Paint.nodeDescription.declarationProblems, [])
    }
}

import Foundation
import Workflow
import XCTest

/// Order, what runs, timing, outputs, errors and cancellation.
final class ExecutorTests: XCTestCase {
    static let arithmetic = """
        version: 1
        inputs:
          x: {type: Int, default: 1}
        nodes:
          total: {type: Add, inputs: {a: sum.sum, b: ten.value}}
          sum: {type: Add, inputs: {a: one.value, b: x.value}}
          ten: {type: Constant, params: {value: 10}}
          one: {type: Constant, params: {value: 1}}
          x: {type: Constant, params: {value: $x}}
          idle: {type: Constant, params: {value: 99}}
          broken: {type: Fail}
        outputs:
          total: total.sum
        """

    func testRunsOnlyNeededNodesInTopologicalOrderWithTimings() throws {
        let runner = try Runner()
        let result = try runner.run(try runner.workflow(Self.arithmetic), ["x": 5])
        XCTAssertEqual(try result.outputs["total"]?.asInt(), 16)
        // Sources before readers; ties in file order: ten, one, x are ready
        // first, then sum, then total. idle and broken are not needed.
        XCTAssertEqual(result.nodes.map(\.nodeID), ["ten", "one", "x", "sum", "total"])
        XCTAssertEqual(runner.log.runs, ["ten", "one", "x", "sum", "total"])
        XCTAssertTrue(result.nodes.allSatisfy { $0.milliseconds >= 0 && !$0.cacheHit && $0.cacheKey.count == 64 })
        XCTAssertEqual(Set(result.nodes.map(\.nodeType)), ["Add", "Constant"])
        XCTAssertGreaterThanOrEqual(result.milliseconds, result.nodes.map(\.milliseconds).reduce(0, +))
    }

    func testSinkNodesRunWithoutOutputsAndWriteUnderTheOutputDirectory() throws {
        let runner = try Runner()
        let workflow = try runner.workflow("""
            version: 1
            nodes:
              hello: {type: Text, params: {text: hello}}
              save: {type: SaveText, inputs: {text: hello.text}, params: {name: greeting}}
            """)
        let result = try runner.run(workflow)
        XCTAssertEqual(result.ranNodes, ["hello", "save"])
        let written = try String(contentsOf: runner.folder.appendingPathComponent("greeting.txt"), encoding: .utf8)
        XCTAssertEqual(written, "hello")
    }

    func testRunTimeErrorNamesTheNodeAndStopsDownstream() throws {
        let runner = try Runner()
        let workflow = try runner.workflow("""
            version: 1
            nodes:
              one: {type: Constant}
              bad: {type: Fail, inputs: {input: one.value}, params: {message: disk on fire}}
              after: {type: Add, inputs: {a: bad.value}}
            outputs: {r: after.sum}
            """)
        XCTAssertThrowsError(try runner.run(workflow)) { error in
            guard case let .nodeFailed(id, type, underlying)? = error as? ExecutionError else { return XCTFail("\(error)") }
            XCTAssertEqual(id, "bad")
            XCTAssertEqual(type, "Fail")
            XCTAssertEqual("\(underlying)", "disk on fire")
            XCTAssertEqual("\(error)", "node 'bad' (Fail) failed: disk on fire")
        }
        XCTAssertEqual(runner.log.runs, ["one", "bad"])
    }

    func testNodeBreakingItsDeclarationFailsNamingIt() throws {
        let runner = try Runner()
        let workflow = try runner.workflow("version: 1\nnodes: {liar: {type: Liar}}\noutputs: {r: liar.value}\n")
        XCTAssertThrowsError(try runner.run(workflow)) { error in
            XCTAssertEqual("\(error)",
                           "node 'liar' (Liar) failed: returned String \"not a number\" for output 'value', declared Int")
        }
    }

    func testCancellationBetweenNodes() throws {
        let runner = try Runner()
        let workflow = try runner.workflow(Self.arithmetic)
        let token = CancellationToken()
        XCTAssertThrowsError(try runner.run(workflow, cancellation: token, onEvent: { event in
            if case let .nodeFinished(run) = event, run.nodeID == "one" { token.cancel() }
        })) { error in
            guard case let .cancelled(id)? = error as? ExecutionError else { return XCTFail("\(error)") }
            XCTAssertEqual(id, "x")
        }
        XCTAssertEqual(runner.log.runs, ["ten", "one"])
    }

    func testCancellationWithinANodeAndProgressEvents() throws {
        let runner = try Runner()
        let workflow = try runner.workflow("""
            version: 1
            nodes:
              count: {type: Steps, params: {steps: 5}}
            outputs: {r: count.value}
            """)
        let events = EventLog()
        let token = CancellationToken()
        XCTAssertThrowsError(try runner.run(workflow, cancellation: token, onEvent: { event in
            events.append(event)
            if case let .progress(progress) = event, progress.step == 2 { token.cancel() }
        })) { error in
            XCTAssertEqual("\(error)", "cancelled at node 'count'")
        }
        let steps = events.events.compactMap { event -> NodeProgress? in
            if case let .progress(progress) = event { return progress }
            return nil
        }
        XCTAssertEqual(steps.map(\.step), [1, 2])
        XCTAssertEqual(steps.first, NodeProgress(nodeID: "count", nodeType: "Steps", step: 1, total: 5, extra: ["loss": 1]))
        guard case .nodeStarted("count", "Steps")? = events.events.first else { return XCTFail("\(events.events)") }
    }

    func testEventsReportStartsAndFinishes() throws {
        let runner = try Runner()
        let events = EventLog()
        _ = try runner.run(try runner.workflow(Self.arithmetic), onEvent: events.append)
        let finished = events.events.compactMap { event -> String? in
            if case let .nodeFinished(run) = event { return run.nodeID }
            return nil
        }
        let started = events.events.compactMap { event -> String? in
            if case let .nodeStarted(id, _) = event { return id }
            return nil
        }
        XCTAssertEqual(started, ["ten", "one", "x", "sum", "total"])
        XCTAssertEqual(finished, started)
    }

    func testValuesReachNodesConvertedAndDefaulted() throws {
        let runner = try Runner()
        let workflow = try runner.workflow("""
            version: 1
            inputs:
              picture: {type: Image}
            nodes:
              paint: {type: Paint, inputs: {image: $picture}, params: {strength: 1, mode: blur}}
            outputs: {summary: paint.summary, image: paint.image}
            """)
        let picture = Value.object(Picture(width: 5, height: 6), type: .image)
        let result = try runner.run(workflow, ["picture": .value(picture)])
        XCTAssertEqual(try result.outputs["summary"]?.asString(), "blur 1.0 a false mask=false")
        XCTAssertEqual(try result.outputs["image"]?.asObject(Picture.self).width, 5)
    }

    func testReadingOutsideTheAllowedFoldersFailsNamingTheNode() throws {
        let runner = try Runner()
        let workflow = try runner.workflow("""
            version: 1
            nodes:
              secret: {type: ReadFile, params: {path: ../../../etc/passwd}}
            outputs: {text: secret.text}
            """)
        XCTAssertThrowsError(try runner.run(workflow)) { error in
            XCTAssertEqual(error.localizedDescription.isEmpty, false)
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("node 'secret' (ReadFile) failed: path '../../../etc/passwd' is outside the allowed read directories"), text)
        }
        XCTAssertEqual(runner.log.runs, [])
    }

    func testMissingFileFailsNamingTheNodeBeforeAnythingRuns() throws {
        let runner = try Runner()
        let workflow = try runner.workflow("""
            version: 1
            nodes:
              first: {type: Constant}
              read: {type: ReadFile, params: {path: missing.txt}}
            outputs: {a: first.value, text: read.text}
            """)
        XCTAssertThrowsError(try runner.run(workflow)) { error in
            let path = runner.folder.resolvingSymlinksInPath().appendingPathComponent("missing.txt").path
            XCTAssertEqual("\(error)", "node 'read' (ReadFile) failed: no such file or folder: \(path)")
        }
        XCTAssertEqual(runner.log.runs, [])
    }
}

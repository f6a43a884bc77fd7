import Foundation
import Workflow
import XCTest

/// The output cache: what re-runs when something changes, files, eviction.
final class CacheTests: XCTestCase {
    static let twoBranches = """
        version: 1
        inputs:
          x: {type: Int, default: 1}
          label: {type: String, default: hi}
        nodes:
          a: {type: Constant, params: {value: $x}}
          b: {type: Constant, params: {value: 10}}
          sum: {type: Add, inputs: {a: a.value, b: b.value}}
          word: {type: Text, params: {text: $label}}
          bang: {type: Text, params: {text: "!"}}
          joined: {type: Concat, inputs: {a: word.text, b: bang.text}}
        outputs:
          total: sum.sum
          text: joined.text
        """

    func testChangingOneParameterRerunsOnlyWhatDependsOnIt() throws {
        let runner = try Runner()
        let workflow = try runner.workflow(Self.twoBranches)

        let first = try runner.run(workflow)
        XCTAssertEqual(runner.log.runs.sorted(), ["a", "b", "bang", "joined", "sum", "word"])
        XCTAssertEqual(first.ranNodes.count, 6)

        // Same parameters: the outputs come from the cache; upstream is not touched.
        let same = try runner.run(workflow)
        XCTAssertEqual(runner.log.runs, [])
        XCTAssertEqual(same.nodes.map(\.nodeID).sorted(), ["joined", "sum"])
        XCTAssertTrue(same.nodes.allSatisfy(\.cacheHit))
        XCTAssertEqual(try same.outputs["total"]?.asInt(), 11)

        // x changed: a and sum re-run; b is served from the cache; the text branch is untouched.
        let changedX = try runner.run(workflow, ["x": 5])
        XCTAssertEqual(runner.log.runs, ["a", "sum"])
        XCTAssertEqual(changedX.node("b")?.cacheHit, true)
        XCTAssertEqual(changedX.node("joined")?.cacheHit, true)
        XCTAssertNil(changedX.node("word"))
        XCTAssertEqual(try changedX.outputs["total"]?.asInt(), 15)

        // label changed: word and joined re-run, bang is a hit; sum is a hit.
        let changedLabel = try runner.run(workflow, ["x": 5, "label": "yo"])
        XCTAssertEqual(runner.log.runs, ["word", "joined"])
        XCTAssertEqual(changedLabel.node("bang")?.cacheHit, true)
        XCTAssertEqual(changedLabel.node("sum")?.cacheHit, true)
        XCTAssertEqual(try changedLabel.outputs["text"]?.asString(), "yo!")
    }

    func testChangingAReadFilesContentInvalidates() throws {
        let runner = try Runner()
        let file = runner.folder.appendingPathComponent("input.txt")
        try "aaaa".write(to: file, atomically: false, encoding: .utf8)
        let workflow = try runner.workflow("""
            version: 1
            nodes:
              read: {type: ReadFile, params: {path: input.txt}}
              copy: {type: Concat, inputs: {a: read.text, b: read.text}}
            outputs: {text: copy.text}
            """)
        XCTAssertEqual(try runner.run(workflow).outputs["text"].map { try $0.asString() }, "aaaaaaaa")
        _ = try runner.run(workflow)
        XCTAssertEqual(runner.log.runs, [])

        // Same size, same modification time: only the content differs.
        let date = try FileManager.default.attributesOfItem(atPath: file.path)[.modificationDate] as! Date
        try "bbbb".write(to: file, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: file.path)
        let result = try runner.run(workflow)
        XCTAssertEqual(runner.log.runs, ["read", "copy"])
        XCTAssertEqual(try result.outputs["text"]?.asString(), "bbbbbbbb")
    }

    func testLeastRecentlyUsedEntriesAreEvictedUnderTheBudget() throws {
        let runner = try Runner(budgetBytes: 1000)
        let workflow = try runner.workflow("""
            version: 1
            inputs:
              tag: {type: String}
            nodes:
              blob: {type: MakeBlob, params: {bytes: 400, tag: $tag}}
            outputs: {blob: blob.blob}
            """)
        let cache = runner.executor.cache
        _ = try runner.run(workflow, ["tag": "a"])
        _ = try runner.run(workflow, ["tag": "b"])
        XCTAssertEqual(cache.count, 2)
        XCTAssertEqual(cache.totalBytes, 800)

        _ = try runner.run(workflow, ["tag": "a"])  // a is now the most recently used
        XCTAssertEqual(runner.log.runs, [])
        _ = try runner.run(workflow, ["tag": "c"])  // 1200 > 1000: b goes
        XCTAssertEqual(cache.count, 2)
        XCTAssertEqual(cache.evictionCount, 1)

        _ = try runner.run(workflow, ["tag": "a"])
        XCTAssertEqual(runner.log.runs, [], "a was kept")
        _ = try runner.run(workflow, ["tag": "b"])
        XCTAssertEqual(runner.log.runs, ["blob"], "b was evicted")
        XCTAssertEqual(cache.evictionCount, 2, "storing b again evicted c, now the least recent")
        _ = try runner.run(workflow, ["tag": "a"])
        XCTAssertEqual(runner.log.runs, [])
    }

    func testOversizedEntriesAreNotKeptAndLoweringTheBudgetEvicts() throws {
        let cache = OutputCache(budgetBytes: 100)
        cache.store("big", ["x": .object(Blob(bytes: 101, tag: ""), type: .latent)])
        XCTAssertFalse(cache.contains("big"))
        cache.store("one", ["x": .object(Blob(bytes: 60, tag: ""), type: .latent)])
        cache.store("two", ["x": .object(Blob(bytes: 30, tag: ""), type: .latent)])
        XCTAssertEqual(cache.totalBytes, 90)
        cache.budgetBytes = 50
        XCTAssertEqual(cache.count, 1)
        XCTAssertTrue(cache.contains("two"))
        XCTAssertEqual(Value.string("abc").estimatedBytes, 19)
        XCTAssertEqual(Value.object(Picture(width: 1, height: 1), type: .image).estimatedBytes, Value.defaultObjectBytes)
    }

    func testMakingRoomBeforeALoadEvictsLeastRecentlyUsedFirst() {
        let cache = OutputCache(budgetBytes: 100)
        cache.store("old", ["x": .object(Blob(bytes: 40, tag: ""), type: .latent)])
        cache.store("new", ["x": .object(Blob(bytes: 40, tag: ""), type: .latent)])
        cache.makeRoom(for: 30)
        XCTAssertFalse(cache.contains("old"), "expected the least recently used entry evicted to make room for 30 bytes")
        XCTAssertTrue(cache.contains("new"), "expected the newer entry kept (40 + 30 ≤ 100)")
        cache.makeRoom(for: 100)
        XCTAssertEqual(cache.count, 0, "expected everything evicted when the load needs the whole budget")
    }

    func testSinksAlwaysRunWhileTheirInputsComeFromTheCache() throws {
        let runner = try Runner()
        let workflow = try runner.workflow("""
            version: 1
            nodes:
              word: {type: Text, params: {text: hi}}
              save: {type: SaveText, inputs: {text: word.text}, params: {name: out}}
            """)
        _ = try runner.run(workflow)
        let second = try runner.run(workflow)
        XCTAssertEqual(runner.log.runs, ["save"])
        XCTAssertEqual(second.node("word")?.cacheHit, true)
    }

    func testKeysFollowMeaningNotLayout() throws {
        let runner = try Runner()
        let compact = try runner.workflow("""
            version: 1
            inputs: {picture: {type: Image}}
            nodes: {paint: {type: Paint, inputs: {image: $picture}, params: {strength: 1}}}
            outputs: {r: paint.summary}
            """)
        let spread = try runner.workflow("""
            version: 1
            inputs:
              picture: {type: Image}
            nodes:
              paint:
                type: Paint
                params: {strength: 1.0, mode: fill}   # an Int widened to Float; the default spelt out
                inputs: {image: $picture}
            outputs:
              r: paint.summary
            """)
        // Equal pictures (ContentFingerprinting) count as the same input.
        let first = try runner.run(compact, ["picture": .value(.object(Picture(width: 1, height: 2), type: .image))])
        let second = try runner.run(spread, ["picture": .value(.object(Picture(width: 1, height: 2), type: .image))])
        XCTAssertEqual(runner.log.runs, [])
        XCTAssertEqual(second.node("paint")?.cacheKey, first.node("paint")?.cacheKey)
        _ = try runner.run(spread, ["picture": .value(.object(Picture(width: 9, height: 2), type: .image))])
        XCTAssertEqual(runner.log.runs, ["paint"])
    }
}

import Foundation
import Workflow
import XCTest

/// Template parameters: conversion from text, defaults, ranges, choices,
/// the ranges of the ports they feed, and object inputs.
final class BindingTests: XCTestCase {
    let registry = TestNodes.registry()
    static let template = """
        version: 1
        inputs:
          steps: {type: Int, default: 3, min: 1, max: 50}
          strength: {type: Float, default: 0.5}
          flip: {type: Bool, default: false}
          label: {type: String, choices: [a, b], default: a}
          mode: {type: Enum, choices: [fill, blur], default: fill}
          picture: {type: Image}
        nodes:
          count: {type: Steps, params: {steps: $steps}}
          paint:
            type: Paint
            inputs: {image: $picture}
            params: {strength: $strength, flip: $flip, label: $label, mode: $mode}
        outputs: {count: count.value, summary: paint.summary}
        """

    private func workflow() throws -> ValidatedWorkflow {
        try Fixtures.workflow(Self.template, registry: registry)
    }

    private func problems(_ parameters: [String: ParameterValue]) throws -> [String] {
        let workflow = try workflow()
        do {
            _ = try workflow.bind(parameters)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    func testTextIsConvertedAndDefaultsFillTheRest() throws {
        let picture = Value.object(Picture(width: 2, height: 2), type: .image)
        let bound = try workflow().bind(["steps": "7", "strength": "2e-1", "flip": "yes", "picture": .value(picture)])
        XCTAssertEqual(try bound.parameters["steps"]?.asInt(), 7)
        XCTAssertEqual(try bound.parameters["strength"]?.asDouble(), 0.2)
        XCTAssertEqual(try bound.parameters["flip"]?.asBool(), true)
        XCTAssertEqual(try bound.parameters["label"]?.asString(), "a")
        XCTAssertEqual(try bound.parameters["mode"]?.asString(), "fill")
    }

    func testTypedValuesAreWidenedOrRefused() throws {
        let picture = Value.object(Picture(width: 2, height: 2), type: .image)
        let bound = try workflow().bind(values: ["strength": .int(1), "picture": picture])
        XCTAssertEqual(try bound.parameters["strength"]?.asDouble(), 1.0)
        XCTAssertEqual(try problems(["steps": 2.5, "picture": .value(picture)]),
                       ["parameter 'steps': expected Int, found Float 2.5"])
    }

    func testEveryProblemIsReportedNamingTheParameter() throws {
        XCTAssertEqual(try problems(["steps": "0", "strength": "strong", "label": "c", "mode": "smear",
                                     "flip": "maybe", "stpes": "3"]), [
            "parameter 'stpes': no such template input; did you mean 'steps'? (template inputs: flip, label, mode, picture, steps, strength)",
            "parameter 'flip': expected Bool, found String \"maybe\"",
            "parameter 'label': expected one of \"a\", \"b\", found String \"c\"",
            "parameter 'mode': expected one of \"fill\", \"blur\", found String \"smear\"",
            "parameter 'picture': missing: expected Image, found nothing (no default; give it with --input picture=FILE)",
            "parameter 'steps': expected Int in 1...50, found Int 0",
            "parameter 'strength': expected Float, found String \"strong\"",
        ])
    }

    func testPortRangesApplyToBoundValues() throws {
        // The template allows 1...50; the Paint port allows 0...1 for strength.
        let picture = Value.object(Picture(width: 2, height: 2), type: .image)
        XCTAssertEqual(try problems(["strength": "1.5", "picture": .value(picture)]),
                       ["parameter 'strength': expected Float in 0...1, found Float 1.5 (for node 'paint' port 'strength')"])
    }

    func testObjectInputsLoadThroughTheLoader() throws {
        let loader: ObjectLoader = { type, text in
            guard type == .image, text == "cat.png" else { throw TestFailure(message: "no such file") }
            return .object(Picture(width: 3, height: 4), type: .image)
        }
        let bound = try workflow().bind(text: ["picture": "cat.png"], loader: loader)
        XCTAssertEqual(try bound.parameters["picture"]?.asObject(Picture.self).height, 4)
        XCTAssertThrowsError(try workflow().bind(text: ["picture": "dog.png"], loader: loader)) { error in
            XCTAssertEqual("\(error)", "parameter 'picture': cannot load Image from \"dog.png\": no such file")
        }
        XCTAssertThrowsError(try workflow().bind(text: ["picture": "cat.png"])) { error in
            XCTAssertEqual("\(error)", "parameter 'picture': expected Image, found String \"cat.png\"")
        }
    }
}

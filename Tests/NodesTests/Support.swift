import Diffusion
import Foundation
import Imaging
import Nodes
import Workflow
import XCTest

/// Paths and a tiny model shared by the node tests.
enum Fixture {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let templates = repository.appendingPathComponent("Workflows")

    static func template(_ name: String) -> URL { templates.appendingPathComponent("\(name).yaml") }

    /// A fresh temporary folder.
    static func temporaryFolder(_ label: String = "nodes") -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("pilot-\(label)-\(UUID().uuidString)", isDirectory: true)
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A tiny random-weight model, made once per test process.
    static let tinyModel: String = {
        let folder = temporaryFolder("tiny").appendingPathComponent("tiny")
        return try! TinyModel.create(at: folder.path)
    }()

    /// Small, fast settings for each template on the tiny model.
    static func quickSettings(_ template: String) -> [String: String] {
        var settings = ["checkpoint": tinyModel]
        switch template {
        case "txt2img": settings.merge(["steps": "3", "width": "64", "height": "64"]) { $1 }
        case "text-inpaint": settings.merge(["steps": "4", "interval": "2", "inner_steps": "1"]) { $1 }
        case "blended-baseline": settings.merge(["steps": "3"]) { $1 }
        default: break
        }
        return settings
    }
}

extension ExecutionResult {
    func cacheHit(_ id: String, file: StaticString = #filePath, line: UInt = #line) -> Bool? {
        node(id)?.cacheHit
    }
}

import Foundation
import Workflow
import XCTest

/// Where test files live and how tests load workflows.
enum Fixtures {
    static let brokenFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Broken")

    /// The names of every broken workflow file, sorted.
    static var brokenFiles: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: brokenFolder.path)) ?? [])
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".json") }.sorted()
    }

    /// The diagnostics of broken workflow `name`, rendered.
    static func diagnostics(ofBroken name: String, registry: NodeRegistry = TestNodes.registry()) throws -> [String] {
        let text = try String(contentsOf: brokenFolder.appendingPathComponent(name), encoding: .utf8)
        return Validator(registry: registry, templates: templates).validate(text, file: name).diagnostics.map(\.description)
    }

    /// The templates broken workflows' template nodes may find: one, `resize`.
    static let templates = TemplateSnapshot([TemplateText(name: "resize", version: 1, file: "resize.yaml",
                                                          text: "version: 1\nnodes: {}\n")])

    /// A validated workflow from YAML, failing the test with every problem otherwise.
    static func workflow(_ yaml: String, registry: NodeRegistry, file: StaticString = #filePath,
                         line: UInt = #line) throws -> ValidatedWorkflow {
        do {
            return try ValidatedWorkflow(parsing: yaml, file: "test.yaml", registry: registry)
        } catch {
            XCTFail("invalid workflow:\n\(error)", file: file, line: line)
            throw error
        }
    }

    /// A fresh, empty temporary folder.
    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("workflow-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

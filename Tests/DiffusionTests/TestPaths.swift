import Foundation

/// Where the tests find repository files, relative to this source file.
enum TestPaths {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../..").standardized
    static let bundledMergesFile = repository
        .appendingPathComponent("Sources/Diffusion/Resources/bpe_simple_vocab_16e6.txt.gz")
    /// The Stable Diffusion reference fixtures (prompts.json, the SD1 tokenizer files).
    static let sdFixtures = repository.appendingPathComponent("Tests/Fixtures/sd")
    /// Our own tokenizer corner cases (Tests/Reference/make_tokenizer_edge_cases.py).
    static let tokenizerEdgeCases = repository.appendingPathComponent("Tests/Fixtures/tokenizer/edge_cases.json")
}

/// A fresh temporary folder, removed when the test's teardown runs `remove()`.
struct TemporaryFolder {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("pilot-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Writes `contents` to `name` inside the folder and returns its path.
    @discardableResult
    func write(_ name: String, _ contents: Data) throws -> String {
        let file = url.appendingPathComponent(name)
        try contents.write(to: file)
        return file.path
    }

    func path(_ name: String) -> String {
        url.appendingPathComponent(name).path
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

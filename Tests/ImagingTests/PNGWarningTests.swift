import Foundation
import Imaging
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// libpng's warnings are handed back, never printed to stderr.
final class PNGWarningTests: XCTestCase {
    /// Runs `body` with file descriptor 2 pointed at a file; returns what
    /// was written there.
    private func capturingStandardError(_ body: () throws -> Void) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString)").path
        let capture = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        XCTAssertGreaterThanOrEqual(capture, 0, "expected a capture file for stderr")
        let saved = dup(2)
        fflush(nil)
        dup2(capture, 2)
        defer {
            fflush(nil)
            dup2(saved, 2)
            close(saved)
            close(capture)
            unlink(path)
        }
        try body()
        fflush(nil)
        // Read through a FileHandle: String(contentsOfFile:) of an empty file
        // leaks its 4 KiB read buffer in swift-foundation (Swift 6.3.1).
        guard let reader = FileHandle(forReadingAtPath: path) else { return "" }
        defer { try? reader.close() }
        return String(decoding: (try? reader.readToEnd()) ?? Data(), as: UTF8.self)
    }

    func testBenignProblemsAreReportedAsWarningsNotOnStderr() throws {
        var chunks = PNGBytes.chunks(of: try PNG.encode(Image(width: 2, height: 2)))
        // gAMA of 0 is invalid but harmless: libpng warns and ignores it.
        chunks.insert(PNGChunk(type: "gAMA", data: [0, 0, 0, 0]), at: 1)
        var decoded: DecodedPNG?
        let stderrText = try capturingStandardError { decoded = try PNG.decode(PNGBytes.assemble(chunks)) }
        XCTAssertEqual(stderrText, "", "expected libpng to print nothing to stderr")
        XCTAssertFalse(decoded?.warnings.isEmpty ?? true, "expected the invalid gAMA to be reported as a warning")
        XCTAssertEqual(decoded?.width, 2, "expected the image to decode despite the warning")
    }

    func testFailuresPrintNothingToStderr() throws {
        let png = try PNG.encode(Image(width: 8, height: 8))
        let stderrText = try capturingStandardError {
            for cut in [10, 30, png.count - 5] { _ = try? PNG.decode(png.prefix(cut)) }
        }
        XCTAssertEqual(stderrText, "", "expected failing decodes to print nothing to stderr")
    }
}

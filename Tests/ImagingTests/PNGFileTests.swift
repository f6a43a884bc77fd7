import Foundation
import Imaging
import XCTest

final class PNGFileTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("ImagingTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
        folder = nil   // XCTest keeps every test case until the process exits
    }

    func testWrittenImageReadsBackWithTextAndLeavesNoTemporaryFile() throws {
        let path = folder.appendingPathComponent("out.png").path
        let image = Image(width: 5, height: 3, red: 1, green: 0.2, blue: 0.6)
        try PNG.write(image, to: path, text: [PNGTextEntry(key: "seed", value: "42")])
        let decoded = try PNG.read(path: path)
        XCTAssertEqual(decoded.source, path, "expected the decoded PNG to name its file")
        XCTAssertEqual(decoded.image, image, "expected the written image back")
        XCTAssertEqual(decoded.text(forKey: "seed"), "42", "expected the written text back")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.png"],
                       "expected only the final file in the folder, no temporary left behind")
    }

    func testWriteReplacesAnExistingFile() throws {
        let path = folder.appendingPathComponent("mask.png").path
        try PNG.write(Mask(width: 2, height: 2, fill: 0), to: path)
        try PNG.write(Mask(width: 2, height: 2, fill: 1), to: path)
        XCTAssertEqual(try Mask(from: PNG.read(path: path)).values, [1, 1, 1, 1], "expected the second write to win")
    }

    func testReadingAMissingFileNamesThePathAndTheReason() {
        let path = folder.appendingPathComponent("missing.png").path
        assertImagingError(try PNG.read(path: path), "io for a missing file",
                           matches: { if case .io(path, _, _) = $0 { return true } else { return false } },
                           mentioning: [path, "No such file"])
    }

    func testWritingIntoAMissingFolderNamesThePath() {
        let path = folder.appendingPathComponent("no/such/folder/out.png").path
        assertImagingError(try PNG.write(Image(width: 1, height: 1), to: path), "io for a missing folder",
                           matches: { if case .io(path, _, _) = $0 { return true } else { return false } },
                           mentioning: [path, "No such file"])
    }

    func testDecodeErrorsFromAFileNameThatFile() throws {
        let path = folder.appendingPathComponent("fake.png").path
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: path))
        assertImagingError(try PNG.read(path: path), "notPNG naming the file",
                           matches: { $0 == .notPNG(source: path) }, mentioning: [path])
    }
}

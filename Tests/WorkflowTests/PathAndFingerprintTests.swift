import Crypto
import Foundation
import Workflow
import XCTest

/// Where nodes may read and write, and what the cache knows of files.
final class PathAndFingerprintTests: XCTestCase {
    func testRelativePathsResolveAgainstTheWorkflowFolderAndMayNotEscape() throws {
        let folder = try Fixtures.temporaryFolder().resolvingSymlinksInPath()
        let inside = folder.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: inside, withIntermediateDirectories: true)
        let policy = PathPolicy(baseDirectory: folder, allowedReadDirectories: [folder], outputDirectory: folder)
        XCTAssertEqual(try policy.resolveForReading("models/./x.bin").path, inside.appendingPathComponent("x.bin").path)
        XCTAssertEqual(try policy.resolveForReading(inside.path + "/../models").path, inside.path)
        XCTAssertThrowsError(try policy.resolveForReading("../elsewhere")) { error in
            XCTAssertEqual(error as? PathError, .outsideAllowedDirectories(path: "../elsewhere", allowed: [folder.path]))
        }
        XCTAssertThrowsError(try policy.resolveForReading("")) { XCTAssertEqual($0 as? PathError, .empty) }
        // A link inside that points outside is refused too.
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("link").path,
                                                   withDestinationPath: "/etc")
        XCTAssertThrowsError(try policy.resolveForReading("link/passwd"))
        // Without a list, anything goes.
        let open = PathPolicy(baseDirectory: folder, outputDirectory: folder)
        XCTAssertEqual(try open.resolveForReading("/etc/hostname").path, "/etc/hostname")
    }

    /// A chain of 30 links inside the allowed folder ending outside it: the
    /// old resolver gave up after about 21 links and let the path through.
    func testALongLinkChainOutOfTheAllowedFolderIsRefusedWithoutSayingWhereItLeads() throws {
        let folder = try Fixtures.temporaryFolder().resolvingSymlinksInPath()
        let outside = try Fixtures.temporaryFolder().resolvingSymlinksInPath().appendingPathComponent("secret.txt")
        try Data("root only".utf8).write(to: outside)
        var target = outside.path
        for i in (0..<30).reversed() {
            let link = folder.appendingPathComponent("l\(i)").path
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
            target = link
        }
        let policy = PathPolicy(baseDirectory: folder, allowedReadDirectories: [folder], outputDirectory: folder)
        XCTAssertThrowsError(try policy.resolveForReading("l0")) { error in
            XCTAssertEqual(error as? PathError, .outsideAllowedDirectories(path: "l0", allowed: [folder.path]))
            XCTAssertFalse("\(error)".contains("secret"), "a refusal must not reveal where the path leads: \(error)")
        }
        // A loop cannot be resolved: refused, not let through.
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("a").path, withDestinationPath: "b")
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("b").path, withDestinationPath: "a")
        XCTAssertThrowsError(try policy.resolveForReading("a")) { XCTAssertEqual($0 as? PathError, .unresolvable(path: "a")) }
        // Within the allowed folder, a long chain is fine.
        try Data("ok".utf8).write(to: folder.appendingPathComponent("real.txt"))
        var inner = folder.appendingPathComponent("real.txt").path
        for i in (0..<30).reversed() {
            let link = folder.appendingPathComponent("m\(i)").path
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: inner)
            inner = link
        }
        XCTAssertEqual(try policy.resolveForReading("m0").path, folder.appendingPathComponent("real.txt").path)
    }

    func testOutputNamesArePlainFileNames() throws {
        let policy = PathPolicy(baseDirectory: URL(fileURLWithPath: "/w"), outputDirectory: URL(fileURLWithPath: "/out"))
        XCTAssertEqual(try policy.outputFile(named: "result", extension: "png").path, "/out/result.png")
        for bad in ["", "..", "a/b", "../x"] {
            XCTAssertThrowsError(try policy.outputFile(named: bad, extension: "png")) { error in
                XCTAssertEqual(error as? PathError, .notAFileName(bad))
            }
        }
    }

    func testSmallFilesAreHashedWhole() throws {
        let file = try Fixtures.temporaryFolder().appendingPathComponent("a.txt")
        try Data("hello".utf8).write(to: file)
        let print = try FileFingerprint.of(file)
        XCTAssertEqual(print.size, 5)
        XCTAssertFalse(print.isPartial)
        XCTAssertEqual(print.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        XCTAssertGreaterThan(print.modified, 1_600_000_000)
    }

    func testLargeFilesAreHashedByTheirEnds() throws {
        let file = try Fixtures.temporaryFolder().appendingPathComponent("big.bin")
        XCTAssertTrue(FileManager.default.createFile(atPath: file.path, contents: Data([1, 2, 3])))
        let handle = try FileHandle(forWritingTo: file)
        try handle.truncate(atOffset: UInt64(FileFingerprint.wholeFileLimit))  // sparse: cheap on disk
        try handle.seek(toOffset: UInt64(FileFingerprint.wholeFileLimit) - 1)
        try handle.write(contentsOf: Data([9]))
        try handle.close()
        let print = try FileFingerprint.of(file)
        XCTAssertTrue(print.isPartial)
        XCTAssertEqual(print.size, FileFingerprint.wholeFileLimit)
        var head = Data(count: FileFingerprint.endBytes), tail = Data(count: FileFingerprint.endBytes)
        head.replaceSubrange(0..<3, with: [1, 2, 3])
        tail[tail.count - 1] = 9
        XCTAssertEqual(print.sha256, Digest.sha256Hex(head + tail))
    }

    func testFolderFingerprintCoversEveryFileInside() throws {
        let folder = try Fixtures.temporaryFolder()
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("unet"), withIntermediateDirectories: true)
        try Data("weights".utf8).write(to: folder.appendingPathComponent("unet/model.bin"))
        try Data("{}".utf8).write(to: folder.appendingPathComponent("config.json"))
        try Data("ignored".utf8).write(to: folder.appendingPathComponent(".DS_Store"))
        let before = try FileFingerprint.of(folder)
        XCTAssertEqual(before.size, 9)
        try Data("ignored too".utf8).write(to: folder.appendingPathComponent(".DS_Store"))
        XCTAssertEqual(try FileFingerprint.of(folder).sha256, before.sha256)
        try Data("weightz".utf8).write(to: folder.appendingPathComponent("unet/model.bin"))
        XCTAssertNotEqual(try FileFingerprint.of(folder).sha256, before.sha256)
    }
}

import Foundation
import SafeTensors
import XCTest

/// Every file a loader opens, not only the paths a workflow names, stays
/// inside the folders a run may read.
final class ReadConfinementTests: XCTestCase {
    private var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("confine-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("models/m"), withIntermediateDirectories: true)
        try Data("inside".utf8).write(to: root.appendingPathComponent("models/m/config.json"))
        try Data("secret".utf8).write(to: root.appendingPathComponent("secret.txt"))
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("models/m/linked.json").path,
                                                   withDestinationPath: root.appendingPathComponent("secret.txt").path)
        try FileManager.default.createSymbolicLink(atPath: root.appendingPathComponent("models/m/dots.json").path,
                                                   withDestinationPath: "../../secret.txt")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    func testLinksOutOfTheAllowedFoldersAreRefusedWithoutSayingWhereTheyLead() throws {
        let models = root.appendingPathComponent("models")
        try ReadConfinement.confined(to: [models]) {
            XCTAssertTrue(ReadConfinement.isConfined)
            XCTAssertNoThrow(try ReadConfinement.check(models.appendingPathComponent("m/config.json").path),
                             "expected a plain file inside the folder readable")
            for name in ["linked.json", "dots.json", "missing.json"] {
                let path = models.appendingPathComponent("m/\(name)").path
                XCTAssertThrowsError(try ReadConfinement.check(path), name) { error in
                    XCTAssertEqual((error as? ReadConfinementError)?.path, path, "\(name): expected the path refused")
                    XCTAssertFalse("\(error)".contains("secret"), "\(name): the error must not say where the link leads: \(error)")
                }
            }
            XCTAssertThrowsError(try SafeTensorsFile(path: models.appendingPathComponent("m/linked.json").path)) { error in
                XCTAssertTrue("\(error)".contains("not readable by this job"), "expected the loader refused before opening: \(error)")
            }
        }
        XCTAssertFalse(ReadConfinement.isConfined, "expected the confinement to end with its scope")
        XCTAssertNoThrow(try ReadConfinement.check(models.appendingPathComponent("m/linked.json").path), "unconfined reads are not checked")
    }

    func testAFolderNamedLikeThePrefixOfAnAllowedOneIsNotInside() throws {
        try FileManager.default.createDirectory(at: root.appendingPathComponent("models2"), withIntermediateDirectories: true)
        let sibling = root.appendingPathComponent("models2/file")
        try Data("x".utf8).write(to: sibling)
        try ReadConfinement.confined(to: [root.appendingPathComponent("models")]) {
            XCTAssertThrowsError(try ReadConfinement.check(sibling.path), "models2 is not inside models")
        }
    }
}

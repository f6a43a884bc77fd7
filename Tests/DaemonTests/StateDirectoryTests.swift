import Daemon
import Foundation
import Logging
import Nodes
import Workflow
import XCTest

/// A state directory someone else could have prepared is refused, and what
/// the daemon creates there is private to its user.
final class StateDirectoryTests: XCTestCase {
    private func start(_ state: URL, _ folder: URL) throws -> Daemon {
        var configuration = DaemonConfiguration(stateDirectory: state, modelsDirectory: DaemonFixture.models)
        configuration.requestEndpoint = "ipc://\(folder.path)/r"
        configuration.eventEndpoint = "ipc://\(folder.path)/e"
        var logger = Logger(label: "test.state")
        logger.logLevel = .error
        return try Daemon(configuration: configuration, nodes: .standard, logger: logger)
    }

    private func assertRefused(_ state: URL, _ folder: URL, mentioning part: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try start(state, folder), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(part), "the refusal must say why (\(part)): \(error)", file: file, line: line)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: state.appendingPathComponent(ConnectionInfo.fileName).path),
                       "no key may be written into a refused folder", file: file, line: line)
    }

    func testAStateFolderWritableByOthersIsRefused() throws {
        let folder = DaemonFixture.temporaryFolder("st-mode")
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        chmod(state.path, 0o777)
        assertRefused(state, folder, mentioning: "writable by group or others (mode 777)")
    }

    func testAStateFolderThatIsASymlinkIsRefused() throws {
        let folder = DaemonFixture.temporaryFolder("st-link")
        defer { try? FileManager.default.removeItem(at: folder) }
        let real = folder.appendingPathComponent("real"), state = folder.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: real, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: state, withDestinationURL: real)
        assertRefused(state, folder, mentioning: "is a symbolic link")
    }

    func testAStateFolderOwnedByAnotherUserIsRefused() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root to give a folder to another user") }
        let folder = DaemonFixture.temporaryFolder("st-owner")
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        chmod(state.path, 0o700)
        XCTAssertEqual(chown(state.path, 65534, 65534), 0, "chown to nobody")
        assertRefused(state, folder, mentioning: "belongs to uid 65534")
    }

    func testEverythingTheDaemonCreatesIsPrivate() throws {
        let folder = DaemonFixture.temporaryFolder("st-private")
        defer { try? FileManager.default.removeItem(at: folder) }
        let state = folder.appendingPathComponent("state")
        let daemon = try start(state, folder)
        withExtendedLifetime(daemon) {}
        for name in ["jobs.sqlite", ConnectionInfo.fileName, "daemon.lock"] {
            var info = stat()
            XCTAssertEqual(stat(state.appendingPathComponent(name).path, &info), 0, "\(name) must exist")
            XCTAssertEqual(info.st_mode & 0o077, 0, "\(name) must be private to its user, mode \(String(info.st_mode & 0o777, radix: 8))")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: state.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [], "no temporary key file may be left behind")
    }
}

/// The model catalog lists, sizes and hashes only what lies inside the models folder.
final class ModelCatalogLinkTests: XCTestCase {
    func testLinksOutOfTheModelsFolderAreNotListedSizedOrHashed() throws {
        let folder = DaemonFixture.temporaryFolder("catalog")
        defer { try? FileManager.default.removeItem(at: folder) }
        let models = folder.appendingPathComponent("models"), outside = folder.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try Data("secret weights".utf8).write(to: outside.appendingPathComponent("private.safetensors"))
        try Data("x".utf8).write(to: models.appendingPathComponent("mine.safetensors"))
        try FileManager.default.createSymbolicLink(at: models.appendingPathComponent("stolen.safetensors"),
                                                   withDestinationURL: outside.appendingPathComponent("private.safetensors"))
        // A model folder whose file links outside: the folder is listed, the linked file is not hashed.
        let component = models.appendingPathComponent("component")
        try FileManager.default.createDirectory(at: component, withIntermediateDirectories: true)
        try Data(#"{"_class_name": "UNet2DConditionModel"}"#.utf8).write(to: component.appendingPathComponent("config.json"))
        try FileManager.default.createSymbolicLink(at: component.appendingPathComponent("weights.safetensors"),
                                                   withDestinationURL: outside.appendingPathComponent("private.safetensors"))
        let store = try JobStore(path: folder.appendingPathComponent("jobs.sqlite").path)
        let names = ModelCatalog(directory: models, store: store).entries().map(\.name)
        XCTAssertEqual(names, ["component", "mine"], "a link out of the models folder must not be listed")
        let files = ModelCatalog.files(under: component).map(\.lastPathComponent)
        XCTAssertEqual(files, ["config.json"], "a file linked from outside must not be sized or hashed")
    }
}

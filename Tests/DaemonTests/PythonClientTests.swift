import Foundation
import XCTest

/// The Python client (Examples/clients/python) against a real daemon.
final class PythonClientTests: XCTestCase {
    func testPythonClientSuitePassesAgainstARealDaemon() throws {
        let python = ProcessInfo.processInfo.environment["PILOT_PYTHON"] ?? "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            return XCTFail("expected \(python) with pyzmq (Debian: apt install python3-zmq; scripts/test.sh installs it), or set PILOT_PYTHON")
        }
        let server = try TestDaemon(label: "py")
        defer { server.stop() }
        let script = DaemonFixture.repository.appendingPathComponent("Examples/clients/python/test_pilot_client.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script.path, server.daemon.configuration.stateDirectory.appendingPathComponent("connection.json").path,
                             DaemonFixture.tinyModel, DaemonFixture.examples.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "expected the Python client tests to pass; output:\n\(text)")
    }
}

import Daemon
import Foundation
import Workflow
import XCTest

final class WireTests: XCTestCase {
    let signer = MessageSigner(key: Data(repeating: 7, count: 32))

    func testEncodedMessageDecodesToTheSameHeaderContentAndFrames() throws {
        let message = WireMessage(type: "submit", content: .object(["template": .string("txt2img"), "n": .int(3)]),
                                  frames: [Data([1, 2, 3]), Data()])
        let (decoded, signature) = try WireMessage.decode(message.encoded(signer: signer)[...], signer: signer)
        XCTAssertEqual(decoded.header, message.header)
        XCTAssertEqual(decoded.content, message.content)
        XCTAssertEqual(decoded.frames, message.frames)
        XCTAssertEqual(signature.count, 64, "expected a hex HMAC-SHA256 (64 characters)")
    }

    func testMovingBytesBetweenFramesBreaksTheSignature() throws {
        var frames = WireMessage(type: "submit", frames: [Data([1, 2, 3]), Data([4])]).encoded(signer: signer)
        frames[4] = Data([1, 2]); frames[5] = Data([3, 4])  // same concatenation, other boundary
        XCTAssertThrowsError(try WireMessage.decode(frames[...], signer: signer)) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .badSignature, "expected bad_signature, got \(error)")
        }
    }

    func testDecodeNamesWhatIsWrong() {
        let good = WireMessage(type: "ping").encoded(signer: signer)
        let cases: [(String, [Data], ErrorCode)] = [
            ("three frames", Array(good.prefix(3)), .malformedMessage),
            ("other protocol", [Data("zmtp/9".utf8)] + good.dropFirst(), .unsupportedProtocol),
            ("empty signature", [good[0], Data()] + good.dropFirst(2), .unsigned),
            ("other key", WireMessage(type: "ping").encoded(signer: MessageSigner(key: Data([1]))), .badSignature),
        ]
        for (label, frames, code) in cases {
            XCTAssertThrowsError(try WireMessage.decode(frames[...], signer: signer), label) { error in
                XCTAssertEqual((error as? DaemonError)?.code, code, "\(label): expected \(code.rawValue), got \(error)")
            }
        }
        let notJSON = [Data("{not json".utf8), Data("{}".utf8)]
        let signed = [good[0], Data(signer.signature(of: notJSON).utf8)] + notJSON
        XCTAssertThrowsError(try WireMessage.decode(signed[...], signer: signer)) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .invalidJSON, "expected invalid_json, got \(error)")
        }
    }

    func testReplayGuardRefusesASecondUseAndStaleTimes() throws {
        var guardian = ReplayGuard(window: 60)
        let now = Date()
        let time = WireTime.format(now)
        try guardian.admit(signature: "a", time: time, now: now)
        XCTAssertThrowsError(try guardian.admit(signature: "a", time: time, now: now)) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .replayed, "expected replayed, got \(error)")
        }
        XCTAssertThrowsError(try guardian.admit(signature: "b", time: WireTime.format(now.addingTimeInterval(-61)), now: now)) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .stale, "expected stale, got \(error)")
        }
        // After the window the signature is forgotten, and its time is stale anyway.
        try guardian.admit(signature: "c", time: WireTime.format(now.addingTimeInterval(120)), now: now.addingTimeInterval(120))
        XCTAssertEqual(guardian.count, 1, "expected only the fresh signature to be remembered")
    }

    /// A message dated ahead of the clock: refused beyond a 30 s skew, and
    /// within it remembered until its own time plus the window, so it can
    /// never be replayed after its signature is forgotten.
    func testAFutureDatedMessageIsRefusedOrRememberedUntilItIsStale() throws {
        var guardian = ReplayGuard(window: 60)
        let now = Date()
        XCTAssertThrowsError(try guardian.admit(signature: "far", time: WireTime.format(now.addingTimeInterval(45)), now: now)) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .stale, "45 s ahead must be refused, got \(error)")
        }
        let sent = now.addingTimeInterval(25)
        try guardian.admit(signature: "ahead", time: WireTime.format(sent), now: now)
        // 70 s later the old guard had forgotten it, while the message was still fresh (sent + 60 > now + 70).
        XCTAssertThrowsError(try guardian.admit(signature: "ahead", time: WireTime.format(sent), now: now.addingTimeInterval(70))) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .replayed, "a replay within its freshness must be refused, got \(error)")
        }
        XCTAssertThrowsError(try guardian.admit(signature: "ahead", time: WireTime.format(sent), now: now.addingTimeInterval(86))) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .stale, "once forgotten, the message is stale, got \(error)")
        }
    }

    /// After a restart the signatures of the previous run are gone: nothing
    /// dated before the start is accepted, and what a clean stop saved is
    /// remembered (a message dated ahead of the clock stays refused).
    func testAMessageFromBeforeARestartIsRefusedAndSavedSignaturesAreRemembered() throws {
        let start = Date()
        var guardian = ReplayGuard(window: 300, notBefore: start)
        XCTAssertThrowsError(try guardian.admit(signature: "old", time: WireTime.format(start.addingTimeInterval(-1)), now: start)) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .stale, "a message dated before the start must be refused, got \(error)")
            XCTAssertTrue("\(error)".contains("before the daemon started"), "expected the reason: \(error)")
        }
        var previous = ReplayGuard(window: 300)
        let ahead = start.addingTimeInterval(20)
        try previous.admit(signature: "ahead", time: WireTime.format(ahead), now: start.addingTimeInterval(-5))
        guardian.remember(previous.remembered(now: start), now: start)
        XCTAssertThrowsError(try guardian.admit(signature: "ahead", time: WireTime.format(ahead), now: start.addingTimeInterval(1))) { error in
            XCTAssertEqual((error as? DaemonError)?.code, .replayed, "a saved signature must be refused after the restart, got \(error)")
        }
        try guardian.admit(signature: "fresh", time: WireTime.format(start.addingTimeInterval(1)), now: start.addingTimeInterval(1))
    }

    func testWireTimeRoundTripsToTheMicrosecondAndReadsOffsets() throws {
        let date = Date(timeIntervalSince1970: 1_795_000_000.123456)
        let text = WireTime.format(date)
        XCTAssertEqual(text, "2026-11-18T11:06:40.123456Z")
        XCTAssertEqual(try XCTUnwrap(WireTime.parse(text)).timeIntervalSince1970, date.timeIntervalSince1970, accuracy: 1e-5)
        XCTAssertEqual(WireTime.parse("2026-11-18T12:06:40+01:00")?.timeIntervalSince1970, 1_795_000_000)
        XCTAssertNil(WireTime.parse("2026-13-18T10:46:40Z"), "expected month 13 to be refused")
        XCTAssertNil(WireTime.parse("yesterday"))
    }

    func testJSONParsingKeepsBooleansIntegersAndFloatsApart() throws {
        let value = try JSONValue(parsing: Data(#"{"b": true, "i": 3, "f": 2.5, "z": 0, "s": "x", "n": null}"#.utf8))
        XCTAssertEqual(value["b"], .bool(true))
        XCTAssertEqual(value["i"], .int(3))
        XCTAssertEqual(value["f"], .float(2.5))
        XCTAssertEqual(value["z"], .int(0), "expected 0 to stay an integer, not false")
        XCTAssertEqual(value["s"], .string("x"))
        XCTAssertEqual(value["n"], .null)
    }

    /// Found by fuzzing: integers past Int64 wrapped around (18446744073709551615
    /// read as -1, so a priority of 2^64 − 1 passed as −1).
    func testIntegersBeyondSixtyFourBitsAreFloatsNotWrappedNegatives() throws {
        XCTAssertEqual(try JSONValue(parsing: Data("18446744073709551615".utf8)), .float(18446744073709551615.0))
        XCTAssertEqual(try JSONValue(parsing: Data("12345678901234567890".utf8)), .float(12345678901234567890.0))
        XCTAssertEqual(try JSONValue(parsing: Data("9223372036854775807".utf8)), .int(Int.max))
        XCTAssertEqual(try JSONValue(parsing: Data("-9223372036854775808".utf8)), .int(Int.min))
        let value = try JSONValue(parsing: Data("12345678901234567890".utf8))
        XCTAssertEqual(try JSONValue(parsing: Data(value.compact.utf8)), value, "expected the canonical form to parse back to itself")
    }

    func testConnectionFileIsOwnerOnlyAndReadsBack() throws {
        let folder = DaemonFixture.temporaryFolder("conn")
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("connection.json")
        let info = ConnectionInfo(requests: "tcp://127.0.0.1:5555", events: "tcp://127.0.0.1:5556", key: ConnectionInfo.newKey())
        try info.write(to: url)
        let mode = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? NSNumber)
        XCTAssertEqual(mode.intValue & 0o777, 0o600, "expected mode 0600")
        XCTAssertEqual(try ConnectionInfo.read(from: url), info)
        try Data(#"{"protocol": "pilot/1", "signature_scheme": "hmac-sha256", "requests": "x", "events": "y", "key": "zz"}"#.utf8)
            .write(to: url)
        XCTAssertThrowsError(try ConnectionInfo.read(from: url)) { error in
            XCTAssertTrue("\(error)".contains(url.path), "expected the error to name the file, got \(error)")
        }
    }
}

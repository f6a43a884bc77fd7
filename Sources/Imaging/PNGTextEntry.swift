import CPNG

/// One key/value text chunk of a PNG (tEXt, zTXt or iTXt).
///
/// PNG allows a key to repeat, so text is kept as an ordered list. On
/// encoding, a value that Latin-1 can hold goes into tEXt, any other into
/// iTXt (UTF-8); values of ``compressionThreshold`` bytes or more are
/// deflated (zTXt, or compressed iTXt).
public struct PNGTextEntry: Sendable, Equatable, CustomStringConvertible {
    /// The keyword: 1–79 printable Latin-1 characters, no leading, trailing
    /// or doubled spaces (PNG specification §11.3.4.3).
    public var key: String
    /// The text, any Unicode.
    public var value: String

    /// Values at least this many bytes long are compressed when encoded.
    public static let compressionThreshold = 1024

    /// An entry with the given key and value.
    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }

    public var description: String { "\(key)=\(value)" }
}

extension PNGTextEntry {
    /// The bytes and chunk kind this entry is written as.
    struct Encoded {
        var key: [UInt8]
        var value: [UInt8]
        var kind: Int32
    }

    /// Checks the key and picks the chunk kind; throws
    /// ``ImagingError/invalidText(key:reason:)`` for what PNG cannot store.
    func encoded() throws -> Encoded {
        let key = try keyBytes()
        if value.unicodeScalars.contains("\0") {
            throw ImagingError.invalidText(key: self.key, reason: "the value contains a NUL character")
        }
        let latin1 = value.unicodeScalars.allSatisfy { $0.value <= 0xFF }
        let bytes = latin1 ? value.unicodeScalars.map { UInt8($0.value) } : Array(value.utf8)
        let compressed = bytes.count >= Self.compressionThreshold
        let kind: Int32
        switch (latin1, compressed) {
        case (true, false): kind = Int32(PILOT_PNG_TEXT_LATIN1)
        case (true, true): kind = Int32(PILOT_PNG_TEXT_LATIN1_COMPRESSED)
        case (false, false): kind = Int32(PILOT_PNG_TEXT_UTF8)
        case (false, true): kind = Int32(PILOT_PNG_TEXT_UTF8_COMPRESSED)
        }
        return Encoded(key: key, value: bytes, kind: kind)
    }

    /// The key as Latin-1 bytes, if PNG accepts it as a keyword. (libpng
    /// would otherwise quietly rewrite spaces or drop the chunk.)
    private func keyBytes() throws -> [UInt8] {
        let scalars = Array(key.unicodeScalars)
        func invalid(_ reason: String) -> ImagingError { .invalidText(key: key, reason: reason) }
        guard (1...79).contains(scalars.count) else {
            throw invalid("a key must be 1 to 79 characters, this one has \(scalars.count)")
        }
        if let bad = scalars.first(where: { !Self.isKeywordCharacter($0) }) {
            let code = String(bad.value, radix: 16, uppercase: true)
            throw invalid("a key may hold only printable Latin-1 characters, found U+\(code)")
        }
        if scalars.first == " " || scalars.last == " " {
            throw invalid("a key must not start or end with a space")
        }
        if key.contains("  ") { throw invalid("a key must not contain two spaces in a row") }
        return scalars.map { UInt8($0.value) }
    }

    private static func isKeywordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        (0x20...0x7E).contains(scalar.value) || (0xA1...0xFF).contains(scalar.value)
    }
}

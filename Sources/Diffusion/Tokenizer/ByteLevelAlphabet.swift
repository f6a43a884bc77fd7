/// The reversible byte ↔ character table of byte-level BPE (GPT-2, CLIP).
///
/// BPE vocabularies are written as text, so each of the 256 byte values gets
/// a printable character: the printable Latin-1 bytes (`!`…`~`, `¡`…`¬`,
/// `®`…`ÿ`) stand for themselves and the other 68 bytes (controls, space,
/// soft hyphen) take U+0100, U+0101, … in byte order. This mirrors
/// `bytes_to_unicode` in OpenAI's `simple_tokenizer.py` and transformers.
enum ByteLevelAlphabet {
    /// The character standing for each byte value, indexed by byte.
    static let characters: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for byte in 0 ..< 256 {
            if isPrintable(byte) {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte values in vocabulary order: the printable bytes first, then
    /// the others, as `bytes_to_unicode().values()` lists them. The first 512
    /// ids of CLIP's vocabulary follow this order (twice: plain, then with `</w>`).
    static let vocabularyOrder: [UInt8] =
        (0 ..< 256).filter(isPrintable).map(UInt8.init) + (0 ..< 256).filter { !isPrintable($0) }.map(UInt8.init)

    private static func isPrintable(_ byte: Int) -> Bool {
        (0x21 ... 0x7e).contains(byte) || (0xa1 ... 0xac).contains(byte) || (0xae ... 0xff).contains(byte)
    }
}

/// Python `str` behaviours the reference tokenizer relies on, over scalars
/// (Python strings are sequences of code points, not grapheme clusters).
enum PythonText {
    /// Python's `str.isspace()`: the ASCII separators \t \n \v \f \r and
    /// 0x1C–0x1F, plus characters of bidirectional class WS, B or S or of
    /// category Zs (a fixed set since Unicode 6.3).
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09 ... 0x0D, 0x1C ... 0x20, 0x85, 0xA0, 0x1680, 0x2000 ... 0x200A,
             0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Python's `str.split()` without arguments: the maximal runs of
    /// non-whitespace, no empty pieces.
    static func splitOnWhitespace(_ scalars: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var pieces: [ArraySlice<Unicode.Scalar>] = []
        var start: Int?
        for (index, scalar) in scalars.enumerated() {
            if isSpace(scalar) {
                if let begin = start { pieces.append(scalars[begin ..< index]) }
                start = nil
            } else if start == nil {
                start = index
            }
        }
        if let begin = start { pieces.append(scalars[begin...]) }
        return pieces
    }

    /// Python's `str.lower()`: each scalar's full lowercase mapping (so "İ"
    /// becomes "i̇"), except capital sigma, which becomes final "ς" when it
    /// ends a word by Unicode's Final_Sigma rule and "σ" otherwise
    /// (CPython's `handle_capital_sigma`).
    static func lowercased(_ scalars: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var lower: [Unicode.Scalar] = []
        lower.reserveCapacity(scalars.count)
        for index in scalars.indices {
            let scalar = scalars[index]
            if scalar.isASCII {
                lower.append(scalar.value >= 0x41 && scalar.value <= 0x5A ? Unicode.Scalar(scalar.value + 32)! : scalar)
            } else if scalar == "\u{03A3}" {
                lower.append(isFinalSigma(at: index, in: scalars) ? "\u{03C2}" : "\u{03C3}")
            } else {
                lower += scalar.properties.lowercaseMapping.unicodeScalars
            }
        }
        return lower
    }

    /// Final_Sigma: a cased letter before (skipping case-ignorables) and no
    /// cased letter after (skipping case-ignorables).
    private static func isFinalSigma(at index: Int, in scalars: ArraySlice<Unicode.Scalar>) -> Bool {
        var before = index - 1
        while before >= scalars.startIndex, isCaseIgnorable(scalars[before]) { before -= 1 }
        guard before >= scalars.startIndex, isCased(scalars[before]) else { return false }
        var after = index + 1
        while after < scalars.endIndex, isCaseIgnorable(scalars[after]) { after += 1 }
        return after == scalars.endIndex || !isCased(scalars[after])
    }

    // Swift's Unicode data is newer than Python 3.11's 14.0. Compared over
    // every code point, two casing properties differ, and we answer as 14.0:
    // U+0295 LATIN LETTER PHARYNGEAL VOICED FRICATIVE was Ll, so cased, and
    // U+1171E AHOM CONSONANT SIGN MEDIAL RA was Mn, so case-ignorable.

    private static func isCased(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value == 0x0295 || scalar.properties.isCased
    }

    private static func isCaseIgnorable(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value == 0x1171E || scalar.properties.isCaseIgnorable
    }
}

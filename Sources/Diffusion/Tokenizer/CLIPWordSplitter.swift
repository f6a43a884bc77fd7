/// Splits cleaned text into the words BPE works on, as CLIP's pattern does:
///
///     <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
///
/// compiled with `regex.IGNORECASE` and applied with `regex.findall`: at
/// each position the first alternative that matches wins (not the longest),
/// whitespace matches nothing and is skipped. So letters group into runs,
/// every digit stands alone, and any other characters group into runs.
///
/// Case-insensitivity matters even on lowercased text, and we mirror the
/// `regex` module (2026.11.19) exactly, checked over every code point:
/// - under simple case folding "ſ" (U+017F, long s) equals "s", so "'ſ" is a
///   contraction and "<|ſtartoftext|>" matches the first alternative;
/// - U+0345 COMBINING GREEK YPOGEGRAMMENI (case-folds to the letter "ι")
///   matches neither `[\p{L}]` nor `[^\s\p{L}\p{N}]`, so, like whitespace,
///   it belongs to no word and ends the run it interrupts.
enum CLIPWordSplitter {
    /// The one character that no class of the pattern matches under
    /// IGNORECASE (see above).
    private static let unmatchable: Unicode.Scalar = "\u{0345}"

    /// The literal alternatives, in the pattern's order.
    private static let literals: [[Unicode.Scalar]] =
        ["<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
        .map { Array($0.unicodeScalars) }

    /// The words of `text`, as ranges of indices into it, in order.
    static func words(in text: [Unicode.Scalar]) -> [Range<Int>] {
        var words: [Range<Int>] = []
        var index = 0
        while index < text.count {
            if let length = literalMatch(in: text, at: index) {
                words.append(index ..< index + length)
                index += length
                continue
            }
            let scalar = text[index]
            if PythonText.isSpace(scalar) || scalar == unmatchable {
                index += 1
            } else if isLetter(scalar) {
                let end = text[index...].firstIndex { !isLetter($0) } ?? text.count
                words.append(index ..< end)
                index = end
            } else if isNumber(scalar) {
                words.append(index ..< index + 1)
                index += 1
            } else {
                let end = text[index...].firstIndex {
                    PythonText.isSpace($0) || $0 == unmatchable || isLetter($0) || isNumber($0)
                } ?? text.count
                words.append(index ..< end)
                index = end
            }
        }
        return words
    }

    /// The length of the first literal alternative matching at `index`.
    private static func literalMatch(in text: [Unicode.Scalar], at index: Int) -> Int? {
        guard text[index] == "<" || text[index] == "'" else { return nil }
        for literal in literals where index + literal.count <= text.count {
            if zip(literal, text[index...]).allSatisfy(equalIgnoringCase) { return literal.count }
        }
        return nil
    }

    /// Whether `scalar` matches the pattern's lowercase ASCII `literal`
    /// under `regex`'s simple case folding.
    private static func equalIgnoringCase(_ literal: Unicode.Scalar, _ scalar: Unicode.Scalar) -> Bool {
        if scalar == literal { return true }
        if literal.properties.isLowercase, scalar.value == literal.value - 32 { return true }
        return literal == "s" && scalar == "\u{017F}"
    }

    /// `\p{L}`: Lu, Ll, Lt, Lm, Lo.
    static func isLetter(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return (scalar.value | 0x20) >= 0x61 && (scalar.value | 0x20) <= 0x7A }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// `\p{N}`: Nd, Nl, No.
    static func isNumber(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return scalar.value >= 0x30 && scalar.value <= 0x39 }
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }
}

/// The text clean-up transformers' slow `CLIPTokenizer` applies before BPE
/// when `ftfy` is not installed: `BasicTokenizer(strip_accents=False,
/// do_split_on_punc=False).tokenize`, then `" ".join(…)`.
///
/// In order, as transformers 4.57 does it:
/// 1. drop NUL, U+FFFD and every "C*" category character except tab, line
///    feed and carriage return; turn those three and "Zs" spaces into " ";
/// 2. put spaces around CJK ideographs (so each becomes its own word);
/// 3. NFC-normalise (``UnicodeNFC``, with Python's Unicode data);
/// 4. split on whitespace (Python's `str.split()`), lowercase each piece
///    with Python's `str.lower()` (no accent stripping, no punctuation
///    splitting) and join the pieces with single spaces.
///
/// Python's `unicodedata` answers from a fixed Unicode version (14.0 for
/// Python 3.11, which made the reference ids); a character assigned later is
/// "Cn" (unassigned) there and so removed in step 1. We do the same by age.
struct CLIPTextCleaner: Sendable {
    /// The Unicode version whose assignments count; newer characters are
    /// treated as unassigned, like the reference Python's `unicodedata`.
    var unicodeVersion: Unicode.Version = (major: 14, minor: 0)

    /// The cleaned text, as scalars, ready for the word splitter.
    func clean(_ text: some Collection<Unicode.Scalar>) -> [Unicode.Scalar] {
        var spaced: [Unicode.Scalar] = []
        spaced.reserveCapacity(text.count)
        for scalar in text {
            if scalar.value == 0 || scalar.value == 0xFFFD || isControl(scalar) { continue }
            if isCJKIdeograph(scalar) {
                spaced += [" ", scalar, " "]
            } else {
                spaced.append(isWhitespace(scalar) ? " " : scalar)
            }
        }
        var cleaned: [Unicode.Scalar] = []
        cleaned.reserveCapacity(spaced.count)
        for word in PythonText.splitOnWhitespace(UnicodeNFC.normalize(spaced)) {
            if !cleaned.isEmpty { cleaned.append(" ") }
            cleaned += PythonText.lowercased(word)
        }
        return cleaned
    }

    /// transformers' `_is_control`: any "C*" category except \t \n \r.
    private func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        guard isAssigned(scalar) else { return true }
        switch scalar.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// transformers' `_is_whitespace`: space, \t \n \r, or category "Zs".
    private func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" { return true }
        return scalar.properties.generalCategory == .spaceSeparator
    }

    private func isAssigned(_ scalar: Unicode.Scalar) -> Bool {
        guard let age = scalar.properties.age else { return false }
        return (age.major, age.minor) <= (unicodeVersion.major, unicodeVersion.minor)
    }

    /// transformers' `_is_chinese_char`: the CJK Unified Ideographs blocks,
    /// extensions A–E and the compatibility ideographs (not kana, not Hangul).
    private func isCJKIdeograph(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00 ... 0x9FFF, 0x3400 ... 0x4DBF, 0x20000 ... 0x2A6DF, 0x2A700 ... 0x2B73F,
             0x2B740 ... 0x2B81F, 0x2B820 ... 0x2CEAF, 0xF900 ... 0xFAFF, 0x2F800 ... 0x2FA1F:
            return true
        default:
            return false
        }
    }
}

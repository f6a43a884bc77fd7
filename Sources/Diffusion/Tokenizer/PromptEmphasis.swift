import Foundation

/// A prompt's emphasis syntax, read the way AUTOMATIC1111's web UI reads it
/// (and ComfyUI, but for its normalisation): a prompt becomes runs of text,
/// each with the weight its brackets give it.
///
/// - `(text)` multiplies the weight of `text` by 1.1, `[text]` divides it by
///   1.1; brackets nest and multiply.
/// - `(text:1.3)` multiplies by the number instead of 1.1 (a `:` that is not
///   followed by a number and `)` is ordinary text).
/// - `\(`, `\)`, `\[`, `\]`, `\\` are the characters themselves; a `\`
///   before anything else is dropped.
/// - A `)` or `]` with no open bracket is ordinary text; a bracket still
///   open at the end applies to the rest of the prompt.
/// - `BREAK` (upper case, as a word) ends the current 75-token chunk.
///
/// Runs with equal weights that touch are merged. The parse is one pass with
/// an explicit stack of open brackets, so deep nesting costs no recursion.
public enum PromptEmphasis {
    /// A piece of the prompt: text with its weight, or a chunk break.
    public enum Fragment: Equatable, Sendable {
        case text(String, weight: Float)
        case chunkBreak
    }

    static let roundFactor: Double = 1.1

    /// The fragments of `prompt`; an empty prompt gives one empty text.
    public static func parse(_ prompt: String) -> [Fragment] {
        // Weights are kept in Double while brackets multiply them (as Python
        // does), then rounded to Float.
        var runs: [(text: String, weight: Double, isBreak: Bool)] = []
        var round: [Int] = [], square: [Int] = []
        func multiply(from start: Int, by factor: Double) {
            for i in start..<runs.count where !runs[i].isBreak { runs[i].weight *= factor }
        }
        func append(_ text: String) {
            // BREAK splits plain text into chunks: "a BREAK b" → "a", break, "b".
            let pieces = splitOnBreak(text)
            for (i, piece) in pieces.enumerated() {
                if i > 0 { runs.append(("BREAK", -1, true)) }
                runs.append((piece, 1, false))
            }
        }
        let scalars = Array(prompt.unicodeScalars)
        var i = 0
        var plain = String.UnicodeScalarView()
        func flushPlain() {
            if !plain.isEmpty { append(String(plain)); plain = String.UnicodeScalarView() }
        }
        while i < scalars.count {
            let c = scalars[i]
            switch c {
            case "\\":
                flushPlain()
                if i + 1 < scalars.count, "()[]\\".unicodeScalars.contains(scalars[i + 1]) {
                    runs.append((String(scalars[i + 1]), 1, false))
                    i += 2
                } else {
                    runs.append(("", 1, false))  // a lone backslash: an empty run of weight 1, as A1111 keeps one
                    i += 1
                }
            case "(":
                flushPlain(); round.append(runs.count); i += 1
            case "[":
                flushPlain(); square.append(runs.count); i += 1
            case ":":
                flushPlain()
                if let (number, end) = explicitWeight(scalars, colon: i), let open = round.popLast() {
                    multiply(from: open, by: number)
                    i = end
                } else {
                    runs.append((":", 1, false))
                    i += 1
                }
            case ")":
                flushPlain()
                if let open = round.popLast() { multiply(from: open, by: roundFactor) } else { runs.append((")", 1, false)) }
                i += 1
            case "]":
                flushPlain()
                if let open = square.popLast() { multiply(from: open, by: 1 / roundFactor) } else { runs.append(("]", 1, false)) }
                i += 1
            default:
                plain.append(c); i += 1
            }
        }
        flushPlain()
        for open in round { multiply(from: open, by: roundFactor) }
        for open in square { multiply(from: open, by: 1 / roundFactor) }
        if runs.isEmpty { return [.text("", weight: 1)] }
        var merged: [(text: String, weight: Double, isBreak: Bool)] = []
        for run in runs {
            if let last = merged.last, !last.isBreak, !run.isBreak, last.weight == run.weight {
                merged[merged.count - 1].text += run.text
            } else {
                merged.append(run)
            }
        }
        return merged.map { $0.isBreak ? .chunkBreak : .text($0.text, weight: Float($0.weight)) }
    }

    /// `:` at `colon` followed by optional spaces, a number (`[+-]?[.0-9]+`),
    /// optional spaces and `)`: the number and the index after the `)`.
    private static func explicitWeight(_ s: [Unicode.Scalar], colon: Int) -> (Double, Int)? {
        var j = colon + 1
        func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace }
        while j < s.count, isSpace(s[j]) { j += 1 }
        let start = j
        if j < s.count, s[j] == "+" || s[j] == "-" { j += 1 }
        let digitsStart = j
        while j < s.count, s[j] == "." || ("0"..."9").contains(s[j]) { j += 1 }
        guard j > digitsStart else { return nil }
        let text = String(String.UnicodeScalarView(s[start..<j]))
        while j < s.count, isSpace(s[j]) { j += 1 }
        guard j < s.count, s[j] == ")" else { return nil }
        // "1.2.3" or "." match the pattern but are not numbers: Python's
        // float() would raise; such a weight is taken as text here.
        guard let value = Double(text) else { return nil }
        return (value, j + 1)
    }

    /// `text` split at each `BREAK` that stands as a word, with the spaces
    /// around it removed.
    static func splitOnBreak(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        let keyword = Array("BREAK".unicodeScalars)
        func isWordScalar(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic || c.properties.numericType != nil || c == "_" }
        var pieces: [String] = []
        var start = 0, i = 0
        while i + keyword.count <= s.count {
            let before = i == 0 || !isWordScalar(s[i - 1])
            let after = i + keyword.count == s.count || !isWordScalar(s[i + keyword.count])
            if before, after, Array(s[i..<(i + keyword.count)]) == keyword {
                var end = i
                while end > start, s[end - 1].properties.isWhitespace { end -= 1 }
                pieces.append(String(String.UnicodeScalarView(s[start..<end])))
                var next = i + keyword.count
                while next < s.count, s[next].properties.isWhitespace { next += 1 }
                start = next
                i = next
            } else {
                i += 1
            }
        }
        pieces.append(String(String.UnicodeScalarView(s[start..<s.count])))
        return pieces
    }
}

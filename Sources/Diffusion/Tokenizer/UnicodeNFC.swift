/// Unicode Normalization Form C (UAX #15) with Python 3.11's Unicode 14.0
/// data (``table``, generated), as `unicodedata.normalize("NFC", …)` does.
///
/// Our own rather than Foundation's `precomposedStringWithCanonicalMapping`,
/// which on Swift 6.3 (Linux) differs from Python in three ways (details in
/// `Tests/Reference/make_unicode_nfc_table.py`): no reordering after
/// U+0F73/U+0F75/U+0F81, Hangul composition outside the modern jamo ranges,
/// and supplementary characters composing as their low 16 bits.
enum UnicodeNFC {
    /// The parsed ``table``.
    private struct Data: Sendable {
        var combiningClasses: [UInt32: UInt8] = [:]
        var decompositions: [UInt32: [UInt32]] = [:]
        /// Primary composites keyed by `first << 21 | second`.
        var compositions: [UInt64: UInt32] = [:]
    }

    private static let data: Data = {
        var data = Data()
        for line in table.split(separator: "\n") {
            let kind = line.first!
            let fields = line.dropFirst().split(separator: ":")
            switch kind {
            case "c":
                let bounds = fields[0].split(separator: "-").map { UInt32($0, radix: 16)! }
                for scalar in bounds[0] ... bounds.last! { data.combiningClasses[scalar] = UInt8(fields[1])! }
            default:
                let scalar = UInt32(fields[0], radix: 16)!
                let parts = fields[1].split(separator: " ").map { UInt32($0, radix: 16)! }
                data.decompositions[scalar] = parts
                if kind == "=" { data.compositions[pairKey(parts[0], parts[1])] = scalar }
            }
        }
        return data
    }()

    // Hangul syllables are composed and decomposed arithmetically (Unicode §3.12).
    private static let syllableBase: UInt32 = 0xAC00, leadingBase: UInt32 = 0x1100
    private static let vowelBase: UInt32 = 0x1161, trailingBase: UInt32 = 0x11A7
    private static let leadingCount: UInt32 = 19, vowelCount: UInt32 = 21, trailingCount: UInt32 = 28
    private static let syllableCount = leadingCount * vowelCount * trailingCount

    /// `scalars` in NFC.
    static func normalize(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        // Nothing below U+0300 decomposes or combines with what precedes it.
        if scalars.allSatisfy({ $0.value < 0x300 }) { return scalars }
        var decomposed: [UInt32] = []
        decomposed.reserveCapacity(scalars.count)
        for scalar in scalars { decompose(scalar.value, into: &decomposed) }
        reorder(&decomposed)
        return compose(decomposed).map { Unicode.Scalar($0)! }
    }

    private static func combiningClass(_ scalar: UInt32) -> UInt8 {
        data.combiningClasses[scalar] ?? 0
    }

    /// Full canonical decomposition of one scalar.
    private static func decompose(_ scalar: UInt32, into output: inout [UInt32]) {
        let index = scalar &- syllableBase
        if index < syllableCount {
            output.append(leadingBase + index / (vowelCount * trailingCount))
            output.append(vowelBase + (index % (vowelCount * trailingCount)) / trailingCount)
            if index % trailingCount != 0 { output.append(trailingBase + index % trailingCount) }
        } else if let parts = data.decompositions[scalar] {
            for part in parts { decompose(part, into: &output) }
        } else {
            output.append(scalar)
        }
    }

    /// Canonical ordering: a stable sort by combining class of every run of
    /// non-starters.
    private static func reorder(_ scalars: inout [UInt32]) {
        guard scalars.count > 1 else { return }
        for index in 1 ..< scalars.count {
            let scalar = scalars[index], ccc = combiningClass(scalar)
            guard ccc != 0 else { continue }
            var position = index
            while position > 0 {
                let before = combiningClass(scalars[position - 1])
                guard before > ccc else { break }
                scalars[position] = scalars[position - 1]
                position -= 1
            }
            scalars[position] = scalar
        }
    }

    /// Canonical composition: each character joins the last starter unless a
    /// character between them blocks it (a starter, or one of equal or
    /// higher combining class).
    private static func compose(_ scalars: [UInt32]) -> [UInt32] {
        var output: [UInt32] = []
        output.reserveCapacity(scalars.count)
        var starter: Int?
        var lastClass: UInt8 = 0
        for scalar in scalars {
            let ccc = combiningClass(scalar)
            if let start = starter {
                let adjacent = output.count - 1 == start
                if adjacent || (lastClass != 0 && lastClass < ccc), let composite = primaryComposite(output[start], scalar) {
                    output[start] = composite
                    continue
                }
            }
            if ccc == 0 { starter = output.count }
            lastClass = ccc
            output.append(scalar)
        }
        return output
    }

    private static func primaryComposite(_ first: UInt32, _ second: UInt32) -> UInt32? {
        let leadingIndex = first &- leadingBase, vowelIndex = second &- vowelBase
        if leadingIndex < leadingCount, vowelIndex < vowelCount {
            return syllableBase + (leadingIndex * vowelCount + vowelIndex) * trailingCount
        }
        let syllableIndex = first &- syllableBase, trailingIndex = second &- trailingBase
        if syllableIndex < syllableCount, syllableIndex % trailingCount == 0, trailingIndex > 0, trailingIndex < trailingCount {
            return first + trailingIndex
        }
        return data.compositions[pairKey(first, second)]
    }

    private static func pairKey(_ first: UInt32, _ second: UInt32) -> UInt64 {
        UInt64(first) << 21 | UInt64(second)
    }
}

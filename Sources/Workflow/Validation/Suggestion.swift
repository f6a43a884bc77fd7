/// "did you mean" hints for misspelt names.
enum Suggestion {
    /// `; did you mean 'X'?` when one candidate is close to `name`, else "".
    static func didYouMean(_ name: String, among candidates: [String]) -> String {
        closest(to: name, among: candidates).map { "; did you mean '\($0)'?" } ?? ""
    }

    /// The nearest candidate within a third of the name's length in edits
    /// (at least 1, case ignored); none for names under 3 characters, where
    /// every other short name is "close".
    static func closest(to name: String, among candidates: [String]) -> String? {
        guard name.count >= 3 else { return nil }
        let limit = max(1, name.count / 3)
        let scored = candidates.filter { $0 != name }
            .map { ($0, distance(name.lowercased(), $0.lowercased())) }
            .filter { $0.1 <= limit }
            .sorted { ($0.1, $0.0) < ($1.1, $1.0) }
        return scored.first?.0
    }

    /// Edit distance counting an adjacent transposition as one edit
    /// (optimal string alignment), since `vlaue` is one slip from `value`.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var table = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }
}

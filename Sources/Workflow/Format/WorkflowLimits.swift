import Foundation
import Yams

/// Bounds on workflow text, checked on the raw text before any YAML/JSON
/// parser sees it: the parsers recurse once per nesting level, so a deeply
/// nested value (`[[[[…]]]]`, `- - - - …`) would otherwise overflow the
/// stack of whoever parses it (the daemon's request thread, `pilot
/// validate`). The check is one linear pass with no recursion.
public struct WorkflowLimits: Sendable, Equatable {
    /// Deepest nesting of collections (flow brackets, block indentation,
    /// sequence dashes) a workflow may have. Real workflows use under 10.
    public var maxDepth: Int
    /// Largest workflow text, in bytes.
    public var maxBytes: Int

    /// Most nodes in a workflow.
    public var maxNodes: Int
    /// Most template inputs.
    public var maxTemplateInputs: Int
    /// Longest string value (a prompt, a path), in bytes.
    public var maxStringBytes: Int

    public init(maxDepth: Int = 64, maxBytes: Int = 4 << 20, maxNodes: Int = 1000, maxTemplateInputs: Int = 256,
                maxStringBytes: Int = 64 << 10) {
        self.maxDepth = maxDepth
        self.maxBytes = maxBytes
        self.maxNodes = maxNodes
        self.maxTemplateInputs = maxTemplateInputs
        self.maxStringBytes = maxStringBytes
    }

    /// The defaults, or `PILOT_WORKFLOW_MAX_DEPTH` / `PILOT_WORKFLOW_MAX_BYTES`.
    public static var current: WorkflowLimits {
        let env = ProcessInfo.processInfo.environment
        var l = WorkflowLimits()
        if let d = env["PILOT_WORKFLOW_MAX_DEPTH"].flatMap(Int.init), d > 0 { l.maxDepth = d }
        if let b = env["PILOT_WORKFLOW_MAX_BYTES"].flatMap(Int.init), b > 0 { l.maxBytes = b }
        return l
    }

    /// Where the text first breaks a limit, with what to say; nil when it keeps them.
    public func violation(in text: String) -> (location: SourceLocation, message: String)? {
        let bytes = text.utf8.count
        if bytes > maxBytes {
            return (SourceLocation(line: 1, column: 1),
                    "workflow text is \(bytes) bytes, over the limit of \(maxBytes) (PILOT_WORKFLOW_MAX_BYTES)")
        }
        if let (line, column, depth) = NestingScanner.firstBeyond(maxDepth, in: text) {
            return (SourceLocation(line: line, column: column),
                    "nesting deeper than \(maxDepth) levels (level \(depth) starts here); workflows nest at most \(maxDepth) levels (PILOT_WORKFLOW_MAX_DEPTH)")
        }
        return nil
    }
}

extension WorkflowLimits {
    /// Most values (scalars and collections) in the parsed tree, counting
    /// each use of an alias: bounds "billion laughs" alias expansion.
    static let maxValues = 100_000

    /// The first string value longer than the limit, or too many values, in
    /// the parsed tree (walked with an explicit stack, no recursion).
    func longString(in root: Yams.Node) -> (location: SourceLocation, message: String)? {
        var stack: [Yams.Node] = [root]
        var visited = 0
        while let node = stack.popLast() {
            visited += 1
            if visited > Self.maxValues {
                return (node.location, "more than \(Self.maxValues) values (aliases counted each time they are used)")
            }
            switch node {
            case let .scalar(scalar):
                let n = scalar.string.utf8.count
                if n > maxStringBytes {
                    return (node.location, "a string of \(n) bytes, over the limit of \(maxStringBytes)")
                }
            case let .mapping(mapping):
                for (key, value) in mapping { stack.append(key); stack.append(value) }
            case let .sequence(sequence):
                stack.append(contentsOf: sequence)
            }
        }
        return nil
    }
}

/// Estimates YAML/JSON nesting depth from the raw text in one pass:
/// flow brackets `[ {` outside quoted scalars and comments, plus the block
/// structure (the stack of indentation levels of content lines, and each
/// `- ` sequence entry that opens a line). Block scalars (`|`, `>`) and
/// quoted scalars spanning lines are skipped. It never under-counts what a
/// parser would nest on, so anything it passes parses within the limit.
enum NestingScanner {
    /// The first (line, column, depth) where the depth exceeds `limit`.
    static func firstBeyond(_ limit: Int, in text: String) -> (Int, Int, Int)? {
        var indents: [Int] = []          // block indentation stack
        var flow = 0                     // open [ and {
        var quote: UInt8? = nil          // open ' or " spanning lines
        var blockScalarIndent: Int? = nil   // skip lines deeper than this
        var lineNumber = 0
        for rawLine in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = Array(rawLine)
            var i = 0
            while i < line.count && line[i] == UInt8(ascii: " ") { i += 1 }
            let indent = i
            let blank = i == line.count || line[i] == UInt8(ascii: "#") || line[i] == UInt8(ascii: "\r")
            if let parent = blockScalarIndent {
                if blank || indent > parent { continue }
                blockScalarIndent = nil
            }
            var depth = 0
            if quote == nil && flow == 0 && !blank {
                while let last = indents.last, last > indent { indents.removeLast() }
                if indents.last.map({ $0 < indent }) ?? true { indents.append(indent) }
                depth = indents.count
                // Compact sequences: each leading "- " is one more level.
                while i < line.count, line[i] == UInt8(ascii: "-"),
                      i + 1 == line.count || line[i + 1] == UInt8(ascii: " ") {
                    depth += 1
                    if depth + flow > limit { return (lineNumber, i + 1, depth + flow) }
                    i += 1
                    while i < line.count && line[i] == UInt8(ascii: " ") { i += 1 }
                }
            } else {
                depth = indents.count
            }
            if depth + flow > limit { return (lineNumber, indent + 1, depth + flow) }
            var lastContent: UInt8 = 0
            var column = i
            while column < line.count {
                let c = line[column]
                if let q = quote {
                    if q == UInt8(ascii: "\"") && c == UInt8(ascii: "\\") {
                        column += 2
                        continue
                    }
                    if c == q {
                        if q == UInt8(ascii: "'") && column + 1 < line.count && line[column + 1] == q {
                            column += 2
                            continue
                        }
                        quote = nil
                    }
                    column += 1
                    continue
                }
                switch c {
                case UInt8(ascii: "\""), UInt8(ascii: "'"):
                    // A quote opens a scalar only where a scalar can start.
                    let previous = column == 0 ? UInt8(ascii: " ") : line[column - 1]
                    if previous == UInt8(ascii: " ") || previous == UInt8(ascii: "[") || previous == UInt8(ascii: "{")
                        || previous == UInt8(ascii: ",") || previous == UInt8(ascii: ":") || previous == UInt8(ascii: "-") {
                        quote = c
                    }
                case UInt8(ascii: "#"):
                    if column == 0 || line[column - 1] == UInt8(ascii: " ") || line[column - 1] == UInt8(ascii: "\t") {
                        column = line.count
                        continue
                    }
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    flow += 1
                    if depth + flow > limit { return (lineNumber, column + 1, depth + flow) }
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    flow = Swift.max(0, flow - 1)
                default:
                    break
                }
                if c != UInt8(ascii: " ") && c != UInt8(ascii: "\r") { lastContent = c }
                column += 1
            }
            // A block scalar header ends the line: its body is text, not structure.
            if quote == nil && flow == 0 && (lastContent == UInt8(ascii: "|") || lastContent == UInt8(ascii: ">")
                                             || isBlockScalarHeaderEnd(line)) {
                blockScalarIndent = indent
            }
        }
        return nil
    }

    /// `key: |-`, `key: >+2` and the like.
    private static func isBlockScalarHeaderEnd(_ line: [UInt8]) -> Bool {
        var end = line.count
        while end > 0 && (line[end - 1] == UInt8(ascii: " ") || line[end - 1] == UInt8(ascii: "\r")) { end -= 1 }
        var start = end
        while start > 0 && line[start - 1] != UInt8(ascii: " ") { start -= 1 }
        let token = line[start..<end]
        guard let first = token.first, first == UInt8(ascii: "|") || first == UInt8(ascii: ">") else { return false }
        return token.dropFirst().allSatisfy { $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "+") || ($0 >= 48 && $0 <= 57) }
    }
}

import Foundation
import Workflow

extension PreviewRequest {
    /// The request a submit's `preview` field makes: `{"every": N, "method":
    /// "latent2rgb" | "taesd", "max_side": S}`, every field optional; nil for
    /// an absent or null field. Anything else is refused, naming the field.
    init?(submitted value: JSONValue?) throws(DaemonError) {
        guard let value, value != .null else { return nil }
        guard case let .object(fields) = value else {
            throw DaemonError(.invalidRequest, "'preview' must be an object {\"every\", \"method\", \"max_side\"}, found \(value.typeName)")
        }
        if let unknown = fields.keys.sorted().first(where: { !["every", "method", "max_side"].contains($0) }) {
            throw DaemonError(.invalidRequest, "'preview' has an unknown field '\(String(unknown.prefix(64)))'; "
                              + "it takes every, method and max_side")
        }
        func number(_ key: String, _ range: ClosedRange<Int>, _ fallback: Int) throws(DaemonError) -> Int {
            guard let field = fields[key], field != .null else { return fallback }
            guard let n = field.intValue, range.contains(n) else {
                throw DaemonError(.invalidRequest, "'preview.\(key)' must be an integer in \(range.lowerBound)...\(range.upperBound), "
                                  + "found \(field.compact.prefix(40))")
            }
            return n
        }
        var method = Method.latent2rgb
        if let field = fields["method"], field != .null {
            guard let name = field.stringValue, let known = Method(rawValue: name) else {
                throw DaemonError(.invalidRequest, "'preview.method' must be one of "
                                  + Method.allCases.map(\.rawValue).joined(separator: ", ") + ", found \(field.compact.prefix(40))")
            }
            method = known
        }
        self.init(every: try number("every", Self.everyRange, Self.defaultEvery), method: method,
                  maxSide: try number("max_side", Self.maxSideRange, Self.defaultMaxSide))
    }

    /// The stored form (every field written out).
    var json: JSONValue {
        .object(["every": .int(every), "method": .string(method.rawValue), "max_side": .int(maxSide)])
    }

    /// The stored form read back (nil if it is not one).
    init?(stored value: JSONValue?) {
        guard let value, let request = try? PreviewRequest(submitted: value) else { return nil }
        self = request
    }
}

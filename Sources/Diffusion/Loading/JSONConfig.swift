import Foundation
import SafeTensors

/// A model `config.json`, read leniently: missing keys take the caller's
/// default (diffusers' own defaults), present keys of the wrong type are
/// errors naming the file and key.
public struct JSONConfig {
    public let path: String
    public let values: [String: Any]

    public init(path: String) throws {
        try ReadConfinement.check(path)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelLoadError.missingFile(path: path, what: "config file")
        }
        try self.init(data: data, path: path)
    }

    public init(data: Data, path: String) throws {
        let obj: Any
        do {
            obj = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ModelLoadError.badConfig(path: path, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = obj as? [String: Any] else {
            throw ModelLoadError.badConfig(path: path, reason: "expected a JSON object at the top level")
        }
        self.path = path
        values = dict
    }

    public init(values: [String: Any], path: String = "<preset>") {
        self.path = path
        self.values = values
    }

    private func wrong(_ key: String, _ expected: String) -> ModelLoadError {
        .badConfig(path: path, reason: "\(key) should be \(expected), found \(String(describing: values[key]!))")
    }

    public func int(_ key: String, default d: Int? = nil) throws -> Int {
        guard let v = values[key], !(v is NSNull) else {
            guard let d else { throw ModelLoadError.badConfig(path: path, reason: "missing required key \(key)") }
            return d
        }
        if let n = v as? NSNumber, !isBoolean(v), n.doubleValue == n.doubleValue.rounded() { return n.intValue }
        throw wrong(key, "an integer")
    }

    public func float(_ key: String, default d: Float) throws -> Float {
        guard let v = values[key], !(v is NSNull) else { return d }
        if let n = v as? NSNumber, !isBoolean(v) { return n.floatValue }
        throw wrong(key, "a number")
    }

    public func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let v = values[key], !(v is NSNull) else { return d }
        if isBoolean(v), let b = v as? Bool { return b }
        throw wrong(key, "true or false")
    }

    public func string(_ key: String, default d: String) throws -> String {
        guard let v = values[key], !(v is NSNull) else { return d }
        if let s = v as? String { return s }
        throw wrong(key, "a string")
    }

    /// A transformer's `hidden_act` (or another activation key) as an `Activation`.
    public func activation(_ key: String, default d: String) throws -> Activation {
        let name = try string(key, default: d)
        guard let a = Activation(rawValue: name) else {
            throw ModelLoadError.badConfig(path: path, reason: "unsupported \(key) \(name)")
        }
        return a
    }

    /// A string that may be absent or null.
    public func optionalString(_ key: String) throws -> String? {
        guard let v = values[key], !(v is NSNull) else { return nil }
        if let s = v as? String { return s }
        throw wrong(key, "a string or null")
    }

    public func strings(_ key: String, default d: [String]) throws -> [String] {
        guard let v = values[key], !(v is NSNull) else { return d }
        if let s = v as? [String] { return s }
        throw wrong(key, "a list of strings")
    }

    public func ints(_ key: String, default d: [Int]) throws -> [Int] {
        guard let v = values[key], !(v is NSNull) else { return d }
        if let a = v as? [NSNumber] { return a.map(\.intValue) }
        throw wrong(key, "a list of integers")
    }

    /// An integer applying to every block, or one per block (`attention_head_dim`).
    /// JSON true/false. (On Linux every NSNumber casts to Bool, so look at
    /// how the number is stored: booleans are chars.)
    private func isBoolean(_ v: Any) -> Bool {
        guard let n = v as? NSNumber else { return v is Bool }
        return String(cString: n.objCType) == "c"
    }

    public func intOrList(_ key: String, count: Int, default d: Int?) throws -> [Int]? {
        guard let v = values[key], !(v is NSNull) else { return d.map { Array(repeating: $0, count: count) } }
        if let n = v as? NSNumber, !isBoolean(v) { return Array(repeating: n.intValue, count: count) }
        if let a = v as? [NSNumber] {
            guard a.count == count else { throw wrong(key, "an integer or a list of \(count) integers") }
            return a.map(\.intValue)
        }
        throw wrong(key, "an integer or a list of integers")
    }
}

import Foundation
import SafeTensors
import Workflow

extension JSONValue {
    /// Parses one JSON document (RFC 8259; any top-level value) with the
    /// strict parser: nesting at most 64 deep, duplicate keys refused (two
    /// readers of one signed message must not see different values), numbers
    /// converted with correct rounding. Integer literals beyond 64 bits are
    /// floats, never wrapped (18446744073709551615 is not −1); numbers beyond
    /// Double's range are refused.
    public init(parsing data: Data) throws {
        self = try JSONValue(strict: StrictJSON.parse(data))
    }

    private init(strict value: StrictJSON) throws {
        switch value {
        case .null: self = .null
        case let .bool(flag): self = .bool(flag)
        case let .string(text): self = .string(text)
        case let .number(literal):
            if let exact = value.integerValue {
                self = .int(exact)
            } else if let number = Double(literal), number.isFinite {
                self = .float(number)
            } else {
                throw StrictJSON.ParseError(message: "the number \(literal.prefix(40)) is beyond the range of a Double", offset: 0)
            }
        case let .array(items): self = .array(try items.map { try JSONValue(strict: $0) })
        case let .object(members): self = .object(try members.mapValues { try JSONValue(strict: $0) })
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case let .object(members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case let .string(text) = self { return text }
        return nil
    }

    public var intValue: Int? {
        switch self {
        case let .int(value): value
        case let .float(value) where value.rounded() == value && abs(value) < 9e15: Int(value)
        default: nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case let .int(value): Double(value)
        case let .float(value): value
        default: nil
        }
    }

    public var boolValue: Bool? {
        if case let .bool(value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case let .object(members) = self { return members }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case let .array(items) = self { return items }
        return nil
    }

    /// The value's JSON type, for messages ("a string", "an object").
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int: "an integer"
        case .float: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// UTF-8 bytes of the compact form.
    public var data: Data { Data(compact.utf8) }
}

/// UTC timestamps as the protocol writes them: `2026-11-25T09:41:07.123456Z`.
public enum WireTime {
    public static func format(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        var whole = time_t(seconds.rounded(.down))
        let micros = Int(((seconds - Double(whole)) * 1e6).rounded(.down))
        var parts = tm()
        gmtime_r(&whole, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let fraction = String(micros)
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
            + String(repeating: "0", count: 6 - fraction.count) + fraction + "Z"
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; nil otherwise.
    public static func parse(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20 else { return nil }
        func number(_ range: Range<Int>) -> Int32? {
            var value: Int32 = 0
            for index in range {
                guard bytes[index] >= 48, bytes[index] <= 57 else { return nil }
                value = value * 10 + Int32(bytes[index] - 48)
            }
            return value
        }
        guard bytes[4] == 45, bytes[7] == 45, bytes[10] == 84 || bytes[10] == 116, bytes[13] == 58, bytes[16] == 58,
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0.0
        if bytes[index] == 46 {
            index += 1
            var scale = 0.1
            let start = index
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                fraction += Double(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
            guard index > start else { return nil }
        }
        var offset = 0
        guard index < bytes.count else { return nil }
        if bytes[index] == 90 || bytes[index] == 122 {
            index += 1
        } else if bytes[index] == 43 || bytes[index] == 45, index + 6 == bytes.count, bytes[index + 3] == 58,
                  let h = number(index + 1..<index + 3), let m = number(index + 4..<index + 6) {
            offset = (Int(h) * 3600 + Int(m) * 60) * (bytes[index] == 45 ? -1 : 1)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        let epoch = timegm(&parts)
        return Date(timeIntervalSince1970: Double(epoch) - Double(offset) + fraction)
    }
}

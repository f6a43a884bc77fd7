/// Client-supplied text made safe for a log line or a terminal: control
/// characters (newlines, escape sequences) are written as `\u{…}` escapes,
/// so a path or template name cannot forge a log line or drive the
/// terminal, and long text is cut.
public enum LogText {
    public static func escaped(_ text: String, limit: Int = 500) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit { out += "…"; break }
            count += 1
            switch scalar.value {
            case 0..<0x20, 0x7f, 0x80..<0xa0, 0x2028, 0x2029:
                out += "\\u{\(String(scalar.value, radix: 16))}"
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

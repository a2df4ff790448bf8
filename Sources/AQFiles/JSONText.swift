/// JSON string literals, the one escaper of aqbert's hand-written JSON and quoted names.
public enum JSONText {
    /// `s` as a JSON string literal as serde_json and Python's json write it: quotes, backslash,
    /// `\n`, `\r`, `\t`, `\b`, `\f` and the other control characters below 0x20 (as `\u00XX`)
    /// escaped, the rest verbatim UTF-8. With `lineBreakers` also DEL,
    /// NEL and U+2028/U+2029 (so that a hostile name keeps a message on one line); with
    /// `maxScalars` the text is cut there and "..." marks the cut.
    public static func quoted(_ s: String, maxScalars: Int? = nil, lineBreakers: Bool = false) -> String {
        var out = "\""
        for (count, c) in s.unicodeScalars.enumerated() {
            if let maxScalars, count >= maxScalars {
                out += "..."
                break
            }
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where c.value < 0x20 || (lineBreakers && [0x7F, 0x85, 0x2028, 0x2029].contains(c.value)):
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }
}

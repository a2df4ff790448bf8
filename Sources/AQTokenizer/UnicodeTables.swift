// Per-code-point lookups for the BERT normalizer and pre-tokenizer, decoded once from the
// generated `BertUnicodeData` strings (probed from Hugging Face `tokenizers`).

/// Flags of one code point, one byte each for all of U+0000...U+10FFFF.
struct UnicodeFlags: OptionSet, Sendable {
    let rawValue: UInt8
    /// Removed by `clean_text` (U+0000, U+FFFD, control/format/private-use of Unicode 8).
    static let drop = UnicodeFlags(rawValue: 1 << 0)
    /// Replaced by U+0020 by `clean_text`.
    static let cleanSpace = UnicodeFlags(rawValue: 1 << 1)
    /// Whitespace for the pre-tokenizer (Rust `char::is_whitespace`).
    static let splitSpace = UnicodeFlags(rawValue: 1 << 2)
    /// Punctuation for the pre-tokenizer.
    static let punctuation = UnicodeFlags(rawValue: 1 << 3)
    /// Non-spacing mark removed by accent stripping (Unicode 8 Mn).
    static let nonspacingMark = UnicodeFlags(rawValue: 1 << 4)
    /// Has a lower-case mapping different from itself.
    static let hasLowercase = UnicodeFlags(rawValue: 1 << 5)
    /// Has a canonical decomposition (Hangul syllables excluded; they are algorithmic).
    static let hasDecomposition = UnicodeFlags(rawValue: 1 << 6)
    /// Non-zero canonical combining class.
    static let nonStarter = UnicodeFlags(rawValue: 1 << 7)
}

struct UnicodeTables: Sendable {
    let flags: [UInt8]
    let lowercase: [UInt32: [UInt32]]
    let decomposition: [UInt32: [UInt32]]
    let combiningClass: [UInt32: UInt8]

    static let shared = UnicodeTables()

    private init() {
        var flags = [UInt8](repeating: 0, count: 0x110000)
        func mark(_ table: String, _ flag: UnicodeFlags) {
            UnicodeTables.forEachRange(table) { lo, hi, _ in
                var cp = Int(lo)
                while cp <= Int(hi) && cp < 0x110000 {
                    flags[cp] |= flag.rawValue
                    cp += 1
                }
            }
        }
        mark(BertUnicodeData.drop, .drop)
        mark(BertUnicodeData.cleanSpace, .cleanSpace)
        mark(BertUnicodeData.splitSpace, .splitSpace)
        mark(BertUnicodeData.punctuation, .punctuation)
        mark(BertUnicodeData.nonspacingMark, .nonspacingMark)

        var ccc: [UInt32: UInt8] = [:]
        UnicodeTables.forEachRange(BertUnicodeData.combiningClass) { lo, hi, value in
            var cp = lo
            while cp <= hi {
                ccc[cp] = UInt8(truncatingIfNeeded: value ?? 0)
                if cp < 0x110000 { flags[Int(cp)] |= UnicodeFlags.nonStarter.rawValue }
                cp += 1
            }
        }
        let lower = UnicodeTables.parseMapping(BertUnicodeData.lowercase)
        for key in lower.keys where key < 0x110000 { flags[Int(key)] |= UnicodeFlags.hasLowercase.rawValue }
        let decomposition = UnicodeTables.parseMapping(BertUnicodeData.decomposition)
        for key in decomposition.keys where key < 0x110000 {
            flags[Int(key)] |= UnicodeFlags.hasDecomposition.rawValue
        }
        self.flags = flags
        self.lowercase = lower
        self.decomposition = decomposition
        self.combiningClass = ccc
    }

    @inline(__always)
    func flags(_ scalar: UInt32) -> UnicodeFlags {
        scalar < 0x110000 ? UnicodeFlags(rawValue: flags[Int(scalar)]) : []
    }

    /// Canonical combining class (0 for starters).
    @inline(__always)
    func combiningClass(_ scalar: UInt32) -> UInt8 {
        flags(scalar).contains(.nonStarter) ? (combiningClass[scalar] ?? 0) : 0
    }

    /// The CJK ideograph ranges of `BertNormalizer::is_chinese_char`.
    @inline(__always)
    static func isChinese(_ c: UInt32) -> Bool {
        if c < 0x3400 { return false }
        return (0x4E00...0x9FFF).contains(c) || (0x3400...0x4DBF).contains(c)
            || (0x20000...0x2A6DF).contains(c) || (0x2A700...0x2B73F).contains(c)
            || (0x2B740...0x2B81F).contains(c) || (0x2B920...0x2CEAF).contains(c)
            || (0xF900...0xFAFF).contains(c) || (0x2F800...0x2FA1F).contains(c)
    }

    // MARK: - Decoding the generated strings

    /// Calls `body(lo, hi, value)` for every `lo[-hi][:value]` item of a comma separated list.
    static func forEachRange(_ table: String, _ body: (UInt32, UInt32, UInt32?) -> Void) {
        for item in table.split(separator: ",") {
            var rangePart = Substring(item)
            var value: UInt32? = nil
            if let colon = item.firstIndex(of: ":") {
                rangePart = item[item.startIndex..<colon]
                value = UInt32(item[item.index(after: colon)...], radix: 16)
            }
            if let dash = rangePart.firstIndex(of: "-") {
                if let lo = UInt32(rangePart[rangePart.startIndex..<dash], radix: 16),
                   let hi = UInt32(rangePart[rangePart.index(after: dash)...], radix: 16) {
                    body(lo, hi, value)
                }
            } else if let cp = UInt32(rangePart, radix: 16) {
                body(cp, cp, value)
            }
        }
    }

    /// Parses `cp>a b c,cp>d` into a dictionary.
    static func parseMapping(_ table: String) -> [UInt32: [UInt32]] {
        var result: [UInt32: [UInt32]] = [:]
        for item in table.split(separator: ",") {
            guard let gt = item.firstIndex(of: ">"),
                  let key = UInt32(item[item.startIndex..<gt], radix: 16) else { continue }
            let values = item[item.index(after: gt)...].split(separator: " ").compactMap { UInt32($0, radix: 16) }
            if !values.isEmpty { result[key] = values }
        }
        return result
    }
}

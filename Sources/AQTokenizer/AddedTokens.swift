/// A token matched as a whole in the input before WordPiece runs (Hugging Face `AddedToken`),
/// e.g. `[CLS]`, `[SEP]`, `[MASK]` typed literally in a text.
public struct AddedToken: Sendable, Equatable, Hashable {
    public var content: String
    /// Only match when not surrounded by word characters.
    public var singleWord: Bool
    /// Swallow whitespace on the left / right of the match.
    public var lstrip: Bool
    public var rstrip: Bool
    /// Match against the normalized text (else against the original text).
    public var normalized: Bool
    /// Special tokens are skipped by `decode(skipSpecialTokens: true)`.
    public var special: Bool
    /// Fixed id (as in `tokenizer.json`); nil = the vocabulary id, or a new one after it.
    public var id: Int?

    public init(_ content: String, special: Bool = true, normalized: Bool? = nil, singleWord: Bool = false,
                lstrip: Bool = false, rstrip: Bool = false, id: Int? = nil) {
        self.content = content
        self.special = special
        self.normalized = normalized ?? !special
        self.singleWord = singleWord
        self.lstrip = lstrip
        self.rstrip = rstrip
        self.id = id
    }
}

/// One added token resolved to an id and the scalars it matches.
struct AddedTokenPattern: Sendable {
    var id: Int
    var pattern: [UInt32]
    var token: AddedToken
}

/// A split of a scalar range: either plain text or a matched added token.
struct AddedSplit {
    var lo: Int
    var hi: Int
    var pattern: Int?  // index into the matcher's patterns
}

/// Leftmost-longest matcher of added tokens (`AddedVocabulary::find_matches`).
struct AddedTokenMatcher: Sendable {
    let patterns: [AddedTokenPattern]
    /// Pattern indices by first scalar, longest pattern first.
    private let byFirst: [UInt32: [Int]]

    init(_ patterns: [AddedTokenPattern]) {
        let kept = patterns.filter { !$0.pattern.isEmpty }
        self.patterns = kept
        var byFirst: [UInt32: [Int]] = [:]
        for (i, p) in kept.enumerated() { byFirst[p.pattern[0], default: []].append(i) }
        for key in byFirst.keys {
            // Longest first; equal lengths keep their order.
            byFirst[key]!.sort { a, b in
                kept[a].pattern.count != kept[b].pattern.count ? kept[a].pattern.count > kept[b].pattern.count : a < b
            }
        }
        self.byFirst = byFirst
    }

    var isEmpty: Bool { patterns.isEmpty }

    /// Splits `s[lo..<hi]` into plain and added-token parts covering the whole range.
    func split(_ s: [UInt32], _ lo: Int, _ hi: Int) -> [AddedSplit] {
        if lo >= hi || patterns.isEmpty { return [AddedSplit(lo: lo, hi: hi, pattern: nil)] }
        var splits: [AddedSplit] = []
        var startOffset = lo
        var i = lo
        while i < hi {
            guard let candidates = byFirst[s[i]] else { i += 1; continue }
            var found: Int? = nil
            for c in candidates {
                let p = patterns[c].pattern
                if i + p.count <= hi && s[i..<(i + p.count)].elementsEqual(p) { found = c; break }
            }
            guard let index = found else { i += 1; continue }
            let matchEnd = i + patterns[index].pattern.count
            var start = i
            var stop = matchEnd
            i = matchEnd
            let token = patterns[index].token
            if token.singleWord {
                let startSpace = start == lo || !AddedTokenMatcher.isWordChar(s[start - 1])
                let stopSpace = stop == hi || !AddedTokenMatcher.isWordChar(s[stop])
                if !startSpace || !stopSpace { continue }
            }
            if token.lstrip {
                var newStart = start
                while newStart > lo && AddedTokenMatcher.isSpace(s[newStart - 1]) { newStart -= 1 }
                start = max(newStart, startOffset)
            }
            if token.rstrip {
                while stop < hi && AddedTokenMatcher.isSpace(s[stop]) { stop += 1 }
            }
            if startOffset < start { splits.append(AddedSplit(lo: startOffset, hi: start, pattern: nil)) }
            splits.append(AddedSplit(lo: start, hi: stop, pattern: index))
            startOffset = stop
        }
        if startOffset < hi { splits.append(AddedSplit(lo: startOffset, hi: hi, pattern: nil)) }
        return splits
    }

    /// Regex `\w` (Unicode): alphabetic, marks, decimal digits, connector punctuation, joiners.
    static func isWordChar(_ c: UInt32) -> Bool {
        if c < 0x80 {
            return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
        }
        guard let scalar = Unicode.Scalar(c) else { return false }
        let p = scalar.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// Regex `\s` (Unicode White_Space).
    static func isSpace(_ c: UInt32) -> Bool {
        if c < 0x80 { return c == 0x20 || (c >= 0x09 && c <= 0x0D) }
        guard let scalar = Unicode.Scalar(c) else { return false }
        return scalar.properties.isWhitespace
    }
}

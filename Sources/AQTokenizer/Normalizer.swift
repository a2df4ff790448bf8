// The BERT normalizer with alignment tracking, mirroring `tokenizers`' `NormalizedString`:
// every normalized scalar remembers the range of ORIGINAL scalars it came from, so token
// offsets can be reported in the original text even after removals, insertions, NFD
// decomposition with canonical reordering, accent stripping and multi-scalar lower-casing.

/// A normalized piece of text: scalars plus, for each, the original scalar range [start, end).
struct NormalizedText {
    var chars: [UInt32]
    var starts: [Int32]
    var ends: [Int32]
    /// Original position of the start of the piece; used for insertions at its very start.
    var origin: Int32

    init(original scalars: ArraySlice<UInt32>, origin: Int) {
        chars = Array(scalars)
        let lo = Int32(truncatingIfNeeded: scalars.startIndex)
        starts = (0..<Int32(scalars.count)).map { lo + $0 }
        ends = (0..<Int32(scalars.count)).map { lo + $0 + 1 }
        self.origin = Int32(truncatingIfNeeded: origin)
    }

    init(chars: [UInt32], starts: [Int32], ends: [Int32], origin: Int32) {
        self.chars = chars
        self.starts = starts
        self.ends = ends
        self.origin = origin
    }

    var count: Int { chars.count }
    var isEmpty: Bool { chars.isEmpty }

    /// Original range covered by normalized scalars [lo, hi) (`expand_alignments`).
    @inline(__always)
    func originalRange(_ lo: Int, _ hi: Int) -> (Int, Int) {
        (Int(starts[lo]), Int(ends[hi - 1]))
    }

    func slice(_ lo: Int, _ hi: Int) -> NormalizedText {
        NormalizedText(chars: Array(chars[lo..<hi]), starts: Array(starts[lo..<hi]),
                       ends: Array(ends[lo..<hi]), origin: lo < hi ? starts[lo] : origin)
    }

    /// `NormalizedString::transform` over the whole string: `items` are the new scalars with
    /// their change (`0` replaces the current scalar, `1` is inserted, `-n` replaces the
    /// current scalar and removes the `n` following ones); `initialOffset` scalars are
    /// removed at the start. Inserted scalars take the alignment of the previous original.
    mutating func transform(_ items: [(UInt32, Int)], initialOffset: Int) {
        var newChars = [UInt32](), newStarts = [Int32](), newEnds = [Int32]()
        newChars.reserveCapacity(items.count)
        newStarts.reserveCapacity(items.count)
        newEnds.reserveCapacity(items.count)
        var offset = initialOffset
        let n = chars.count
        for (c, change) in items {
            var s: Int32 = origin, e: Int32 = origin
            if change > 0 {
                if offset >= 1 && offset - 1 < n { s = starts[offset - 1]; e = ends[offset - 1] }
            } else {
                if offset < n { s = starts[offset]; e = ends[offset] }
                else if n > 0 { s = starts[n - 1]; e = ends[n - 1] }
                offset += 1 - change
            }
            newChars.append(c)
            newStarts.append(s)
            newEnds.append(e)
        }
        chars = newChars
        starts = newStarts
        ends = newEnds
    }
}

/// The resolved normalizer switches (`BertNormalizer`).
struct NormalizerConfig: Sendable, Equatable {
    var cleanText: Bool
    var handleChineseChars: Bool
    var stripAccents: Bool
    var lowercase: Bool
}

enum BertNormalizerImpl {
    static func normalize(_ text: inout NormalizedText, _ config: NormalizerConfig) {
        let tables = UnicodeTables.shared
        if config.cleanText { cleanText(&text, tables) }
        if config.handleChineseChars { padChinese(&text) }
        if config.stripAccents { stripAccents(&text, tables) }
        if config.lowercase { lowercase(&text, tables) }
    }

    /// Drops U+0000, U+FFFD and control characters; maps whitespace to U+0020.
    static func cleanText(_ text: inout NormalizedText, _ tables: UnicodeTables) {
        var needed = false
        for c in text.chars {
            if c < 0x20 || c >= 0x7F { needed = true; break }
        }
        if !needed { return }
        var w = 0
        let n = text.count
        for r in 0..<n {
            let c = text.chars[r]
            let f = tables.flags(c)
            if f.contains(.drop) { continue }
            text.chars[w] = f.contains(.cleanSpace) ? 0x20 : c
            text.starts[w] = text.starts[r]
            text.ends[w] = text.ends[r]
            w += 1
        }
        if w < n {
            text.chars.removeLast(n - w)
            text.starts.removeLast(n - w)
            text.ends.removeLast(n - w)
        }
    }

    /// Surrounds CJK ideographs with spaces. The spaces are removed again by the
    /// pre-tokenizer, so their alignment never reaches an offset; they take the ideograph's.
    static func padChinese(_ text: inout NormalizedText) {
        guard text.chars.contains(where: { $0 >= 0x3400 && UnicodeTables.isChinese($0) }) else { return }
        var chars = [UInt32](), starts = [Int32](), ends = [Int32]()
        chars.reserveCapacity(text.count + 16)
        starts.reserveCapacity(text.count + 16)
        ends.reserveCapacity(text.count + 16)
        for i in 0..<text.count {
            let c = text.chars[i], s = text.starts[i], e = text.ends[i]
            if UnicodeTables.isChinese(c) {
                chars.append(0x20); starts.append(s); ends.append(e)
                chars.append(c); starts.append(s); ends.append(e)
                chars.append(0x20); starts.append(s); ends.append(e)
            } else {
                chars.append(c); starts.append(s); ends.append(e)
            }
        }
        text.chars = chars
        text.starts = starts
        text.ends = ends
    }

    /// NFD (Unicode 9 data, canonical reordering, changes travelling with the scalars, as
    /// `unicode-normalization-alignments` does), then removal of non-spacing marks.
    static func stripAccents(_ text: inout NormalizedText, _ tables: UnicodeTables) {
        // Nothing below U+00C0 decomposes or is a mark.
        guard text.chars.contains(where: { $0 >= 0xC0 }) else { return }
        var items = [(UInt32, Int)]()
        items.reserveCapacity(text.count + 8)
        var changed = false
        for c in text.chars {
            if c >= 0xAC00 && c <= 0xD7A3 {
                let s = c - 0xAC00
                items.append((0x1100 + s / 588, 0))
                items.append((0x1161 + (s % 588) / 28, 1))
                if s % 28 != 0 { items.append((0x11A7 + s % 28, 1)) }
                changed = true
            } else if c >= 0xC0 && tables.flags(c).contains(.hasDecomposition), let d = tables.decomposition[c] {
                for (k, x) in d.enumerated() { items.append((x, k == 0 ? 0 : 1)) }
                changed = true
            } else {
                items.append((c, 0))
            }
        }
        // Canonical ordering: stable sort of every run of non-starters by combining class.
        var i = 0
        while i < items.count {
            if tables.combiningClass(items[i].0) == 0 { i += 1; continue }
            var j = i
            while j < items.count && tables.combiningClass(items[j].0) != 0 { j += 1 }
            if j - i > 1 {
                let run = items[i..<j].enumerated().sorted {
                    let a = tables.combiningClass($0.element.0), b = tables.combiningClass($1.element.0)
                    return a != b ? a < b : $0.offset < $1.offset
                }.map { $0.element }
                if !run.elementsEqual(items[i..<j], by: { $0.0 == $1.0 && $0.1 == $1.1 }) { changed = true }
                items.replaceSubrange(i..<j, with: run)
            }
            i = j
        }
        if changed { text.transform(items, initialOffset: 0) }
        // Filter the marks out; the kept scalars keep their alignment.
        var w = 0
        let n = text.count
        for r in 0..<n {
            let c = text.chars[r]
            if c >= 0x300 && tables.flags(c).contains(.nonspacingMark) { continue }
            text.chars[w] = c
            text.starts[w] = text.starts[r]
            text.ends[w] = text.ends[r]
            w += 1
        }
        if w < n {
            text.chars.removeLast(n - w)
            text.starts.removeLast(n - w)
            text.ends.removeLast(n - w)
        }
    }

    /// Rust `char::to_lowercase`; extra scalars of an expansion share the source's alignment.
    static func lowercase(_ text: inout NormalizedText, _ tables: UnicodeTables) {
        var expands = false
        for i in 0..<text.count {
            let c = text.chars[i]
            if c < 0x80 {
                if c >= 0x41 && c <= 0x5A { text.chars[i] = c + 0x20 }
            } else if tables.flags(c).contains(.hasLowercase), let m = tables.lowercase[c] {
                if m.count == 1 { text.chars[i] = m[0] } else { expands = true }
            }
        }
        guard expands else { return }
        var chars = [UInt32](), starts = [Int32](), ends = [Int32]()
        for i in 0..<text.count {
            let c = text.chars[i], s = text.starts[i], e = text.ends[i]
            if c >= 0x80, tables.flags(c).contains(.hasLowercase), let m = tables.lowercase[c], m.count > 1 {
                for x in m { chars.append(x); starts.append(s); ends.append(e) }
            } else {
                chars.append(c); starts.append(s); ends.append(e)
            }
        }
        text.chars = chars
        text.starts = starts
        text.ends = ends
    }
}

import Foundation

/// WordPiece tokenizer with the semantics of Hugging Face `BertTokenizerFast`
/// (transformers 5.x / tokenizers 0.23): `BertNormalizer`, `BertPreTokenizer`, `WordPiece`,
/// the `[CLS] A [SEP] B [SEP]` template, truncation, and offsets into the original text in
/// Unicode scalars (Python `str` indices).
public struct BertTokenizer: Sendable {
    public struct Options: Sendable, Equatable {
        /// `do_lower_case`.
        public var lowercase: Bool
        /// `strip_accents`; nil follows `lowercase` (as original BERT).
        public var stripAccents: Bool?
        /// `tokenize_chinese_chars`: put CJK ideographs in words of their own.
        public var tokenizeChineseChars: Bool
        /// `clean_text`: drop control characters, map whitespace to spaces.
        public var cleanText: Bool
        /// Longer words (in normalized scalars) become `[UNK]`.
        public var maxInputCharsPerWord: Int
        public var continuingSubwordPrefix: String
        public var unkToken: String
        public var clsToken: String
        public var sepToken: String
        public var padToken: String
        public var maskToken: String
        /// `model_max_length` from the config, for callers that want to truncate to it.
        public var modelMaxLength: Int?
        /// Extra added tokens beyond the five special ones.
        public var addedTokens: [AddedToken]

        public init(lowercase: Bool = true, stripAccents: Bool? = nil, tokenizeChineseChars: Bool = true,
                    cleanText: Bool = true, maxInputCharsPerWord: Int = 100, continuingSubwordPrefix: String = "##",
                    unkToken: String = "[UNK]", clsToken: String = "[CLS]", sepToken: String = "[SEP]",
                    padToken: String = "[PAD]", maskToken: String = "[MASK]", modelMaxLength: Int? = nil,
                    addedTokens: [AddedToken] = []) {
            self.lowercase = lowercase
            self.stripAccents = stripAccents
            self.tokenizeChineseChars = tokenizeChineseChars
            self.cleanText = cleanText
            self.maxInputCharsPerWord = maxInputCharsPerWord
            self.continuingSubwordPrefix = continuingSubwordPrefix
            self.unkToken = unkToken
            self.clsToken = clsToken
            self.sepToken = sepToken
            self.padToken = padToken
            self.maskToken = maskToken
            self.modelMaxLength = modelMaxLength
            self.addedTokens = addedTokens
        }

        /// Accent stripping actually applied.
        public var effectiveStripAccents: Bool { stripAccents ?? lowercase }
    }

    public let options: Options
    /// Token strings by id (vocab.txt order, plus any added token that was not in it).
    public let vocabulary: [String]
    /// Token -> id, keyed by exact scalars (Swift `String` equality is canonical equivalence,
    /// which would merge e.g. precomposed and decomposed vocabulary entries).
    private let ids: [ExactKey: Int]
    private let model: WordPieceModel
    private let normalizer: NormalizerConfig
    /// Added tokens matched on the original text (`normalized == false`).
    private let rawMatcher: AddedTokenMatcher
    /// Added tokens matched on the normalized text (`normalized == true`).
    private let normalizedMatcher: AddedTokenMatcher
    private let specialIds: Set<Int>

    public let unkTokenId: Int
    public let clsTokenId: Int
    public let sepTokenId: Int
    public let padTokenId: Int
    public let maskTokenId: Int

    // MARK: - Construction

    public init(vocabulary: [String], options: Options = Options()) throws {
        try self.init(vocabulary: vocabulary, options: options, source: "vocabulary")
    }

    init(vocabulary vocab: [String], options: Options, source: String) throws {
        guard !vocab.isEmpty else { throw TokenizerError(.invalidVocabulary, "\(source) is empty") }
        guard options.maxInputCharsPerWord >= 0 else {
            throw TokenizerError(.invalidOption, "maxInputCharsPerWord must be >= 0, got \(options.maxInputCharsPerWord)")
        }
        for (name, value) in [("unk_token", options.unkToken), ("cls_token", options.clsToken),
                              ("sep_token", options.sepToken), ("pad_token", options.padToken),
                              ("mask_token", options.maskToken)] where value.isEmpty {
            throw TokenizerError(.invalidOption, "\(name) is empty")
        }
        var vocabulary = vocab
        var ids: [ExactKey: Int] = [:]
        ids.reserveCapacity(vocab.count)
        for (i, token) in vocab.enumerated() { ids[ExactKey(token)] = i }
        let modelIds = ids

        // Added tokens: the explicit ones, then the five specials (normalized == false).
        var added: [AddedToken] = options.addedTokens
        for special in [options.padToken, options.unkToken, options.clsToken, options.sepToken, options.maskToken]
        where !added.contains(where: { ExactKey($0.content) == ExactKey(special) }) {
            added.append(AddedToken(special, special: true, normalized: false))
        }
        var resolved: [AddedTokenPattern] = []
        var addedIds: [ExactKey: Int] = [:]
        for token in added where !token.content.isEmpty {
            let key = ExactKey(token.content)
            var id: Int
            if let fixed = token.id, fixed >= 0 {
                id = fixed
            } else if let existing = addedIds[key] ?? ids[key] {
                id = existing
            } else {
                id = vocabulary.count
            }
            if id > vocabulary.count + 1_000_000 {
                throw TokenizerError(.invalidOption, "added token \(token.content) has an implausible id \(id) (vocabulary size \(vocabulary.count))")
            }
            if id >= vocabulary.count {
                // A token the vocabulary lacks gets the next id (as Hugging Face adds it).
                while vocabulary.count < id { vocabulary.append("") }
                vocabulary.append(token.content)
            }
            if addedIds[key] == nil { addedIds[key] = id }
            ids[key] = id
            if resolved.contains(where: { ExactKey($0.token.content) == key }) { continue }
            resolved.append(AddedTokenPattern(id: id, pattern: token.content.unicodeScalars.map { $0.value }, token: token))
        }

        func required(_ token: String, _ name: String) throws -> Int {
            guard let id = modelIds[ExactKey(token)] else {
                throw TokenizerError(.missingToken, "\(source) lacks the \(name) \(token)")
            }
            return id
        }
        unkTokenId = try required(options.unkToken, "unk_token")
        clsTokenId = try required(options.clsToken, "cls_token")
        sepTokenId = try required(options.sepToken, "sep_token")
        padTokenId = ids[ExactKey(options.padToken)] ?? 0
        maskTokenId = ids[ExactKey(options.maskToken)] ?? unkTokenId

        normalizer = NormalizerConfig(cleanText: options.cleanText, handleChineseChars: options.tokenizeChineseChars,
                                      stripAccents: options.effectiveStripAccents, lowercase: options.lowercase)
        // Normalized added tokens match their normalized form.
        let normalizerConfig = normalizer
        resolved = resolved.map { p in
            guard p.token.normalized else { return p }
            var text = NormalizedText(original: p.pattern[...], origin: 0)
            BertNormalizerImpl.normalize(&text, normalizerConfig)
            var q = p
            q.pattern = text.chars
            return q
        }
        rawMatcher = AddedTokenMatcher(resolved.filter { !$0.token.normalized })
        normalizedMatcher = AddedTokenMatcher(resolved.filter { $0.token.normalized })
        specialIds = Set(resolved.filter { $0.token.special }.map { $0.id })
        model = WordPieceModel(vocabulary: vocab, continuingSubwordPrefix: options.continuingSubwordPrefix,
                               unkId: unkTokenId, maxInputCharsPerWord: options.maxInputCharsPerWord)
        self.vocabulary = vocabulary
        self.ids = ids
        self.options = options
    }

    // MARK: - Lookup

    public func id(of token: String) -> Int? { ids[ExactKey(token)] }

    public func token(of id: Int) -> String? {
        id >= 0 && id < vocabulary.count ? vocabulary[id] : nil
    }

    public var vocabularySize: Int { vocabulary.count }

    /// Ids of the added special tokens (`[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`, ...).
    public var specialTokenIds: Set<Int> { specialIds }

    /// Number of tokens the template adds: 2 for one text, 3 for a pair.
    public func numberOfSpecialTokens(pair: Bool) -> Int { pair ? 3 : 2 }

    // MARK: - Encoding

    /// Encodes a text (or pair) like `tokenizer(text, pair, truncation=..., max_length=...)`.
    /// Without `maxLength` nothing is truncated. `maxLength` counts the special tokens; if it is
    /// smaller than their number, nothing is truncated (as in Hugging Face). Where Hugging Face
    /// raises (`only_second` without a pair, or the chosen sequence too short), this falls back
    /// to `longest_first`; use `tryEncode` to get the error instead. An empty `pair` counts as
    /// no pair (transformers tests `if text_pair:`).
    public func encode(_ text: String, pair: String? = nil, addSpecialTokens: Bool = true,
                       maxLength: Int? = nil, truncation: TruncationStrategy = .longestFirst) -> Encoding {
        var first = encodeSequence(text)
        var second = BertTokenizer.effectivePair(pair).map { encodeSequence($0) }
        if let maxLength {
            do {
                try truncate(&first, &second, maxLength: maxLength, strategy: truncation, addSpecialTokens: addSpecialTokens)
            } catch {
                try? truncate(&first, &second, maxLength: maxLength, strategy: .longestFirst, addSpecialTokens: addSpecialTokens)
            }
        }
        return postProcess(first, second, addSpecialTokens: addSpecialTokens)
    }

    /// Like `encode`, but throws where Hugging Face raises a truncation error.
    public func tryEncode(_ text: String, pair: String? = nil, addSpecialTokens: Bool = true,
                          maxLength: Int? = nil, truncation: TruncationStrategy = .longestFirst) throws -> Encoding {
        var first = encodeSequence(text)
        var second = BertTokenizer.effectivePair(pair).map { encodeSequence($0) }
        if let maxLength {
            try truncate(&first, &second, maxLength: maxLength, strategy: truncation, addSpecialTokens: addSpecialTokens)
        }
        return postProcess(first, second, addSpecialTokens: addSpecialTokens)
    }

    static func effectivePair(_ pair: String?) -> String? {
        guard let pair, !pair.isEmpty else { return nil }
        return pair
    }

    /// Encodes many texts, in parallel for large batches; results are in input order.
    public func encodeBatch(_ texts: [String], addSpecialTokens: Bool = true, maxLength: Int? = nil,
                            truncation: TruncationStrategy = .longestFirst) -> [Encoding] {
        let chunk = 256
        if texts.count <= chunk {
            return texts.map { encode($0, addSpecialTokens: addSpecialTokens, maxLength: maxLength, truncation: truncation) }
        }
        let chunks = (texts.count + chunk - 1) / chunk
        let results = ResultBox<[Encoding]>(count: chunks)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * chunk, hi = min(texts.count, lo + chunk)
            results.set(c, texts[lo..<hi].map {
                encode($0, addSpecialTokens: addSpecialTokens, maxLength: maxLength, truncation: truncation)
            })
        }
        return results.values.flatMap { $0 ?? [] }
    }

    /// Right-pads (or leaves alone) an encoding to `length` with `[PAD]`.
    public func pad(_ encoding: Encoding, to length: Int) -> Encoding {
        var e = encoding
        while e.count < length {
            e.ids.append(padTokenId)
            e.tokens.append(options.padToken)
            e.offsets.append(TokenOffset(0, 0))
            e.typeIds.append(0)
            e.attentionMask.append(0)
            e.specialTokensMask.append(1)
            e.wordIds.append(nil)
            e.sequenceIds.append(nil)
        }
        return e
    }

    /// Tokens of `text` without special tokens or truncation.
    public func tokenize(_ text: String) -> [String] {
        encodeSequence(text).tokens
    }

    // MARK: - Decoding

    /// Joins tokens like the Hugging Face WordPiece decoder (`##` pieces glued, a space
    /// before other tokens, and its `cleanup` of spaces before punctuation / contractions,
    /// applied token by token as tokenizers does). Works on scalars, not `Character`s:
    /// `"##ि"` is one grapheme cluster `"#"` + `"#ि"` but still a `##` piece.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        let prefix = Array(options.continuingSubwordPrefix.unicodeScalars.map { $0.value })
        var out: [UInt32] = []
        var first = true
        for id in ids {
            guard let token = token(of: id) else { continue }
            if skipSpecialTokens && specialIds.contains(id) { continue }
            var piece = token.unicodeScalars.map { $0.value }
            if !first {
                if !prefix.isEmpty && piece.starts(with: prefix) {
                    piece.removeFirst(prefix.count)
                } else {
                    piece.insert(0x20, at: 0)
                }
            }
            first = false
            out += BertTokenizer.cleanup(piece)
        }
        return BertTokenizer.string(out[...])
    }

    private static let cleanupRules: [([UInt32], [UInt32])] = [
        (" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
        (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"),
    ].map { (Array($0.0.unicodeScalars.map { $0.value }), Array($0.1.unicodeScalars.map { $0.value })) }

    /// `decoders::wordpiece::cleanup`: literal, left-to-right replacements in order.
    static func cleanup(_ s: [UInt32]) -> [UInt32] {
        guard s.contains(0x20) else { return s }
        var current = s
        for (pattern, replacement) in cleanupRules {
            var result: [UInt32] = []
            result.reserveCapacity(current.count)
            var i = 0
            var replaced = false
            while i < current.count {
                if i + pattern.count <= current.count && current[i..<(i + pattern.count)].elementsEqual(pattern) {
                    result += replacement
                    i += pattern.count
                    replaced = true
                } else {
                    result.append(current[i])
                    i += 1
                }
            }
            if replaced { current = result }
        }
        return current
    }

    // MARK: - Pipeline

    /// Tokens of one sequence before truncation and special tokens.
    struct SequenceTokens {
        var ids: [Int] = []
        var tokens: [String] = []
        var starts: [Int] = []
        var ends: [Int] = []
        var words: [Int] = []

        var count: Int { ids.count }

        mutating func truncate(to n: Int) {
            guard n < ids.count else { return }
            let k = max(0, n)
            ids.removeSubrange(k...)
            tokens.removeSubrange(k...)
            starts.removeSubrange(k...)
            ends.removeSubrange(k...)
            words.removeSubrange(k...)
        }
    }

    func encodeSequence(_ text: String) -> SequenceTokens {
        var scalars: [UInt32] = []
        scalars.reserveCapacity(text.utf8.count)
        for s in text.unicodeScalars { scalars.append(s.value) }
        var out = SequenceTokens()
        out.ids.reserveCapacity(scalars.count / 3 + 4)
        var word = 0
        for split in rawMatcher.split(scalars, 0, scalars.count) {
            if let p = split.pattern {
                let pattern = rawMatcher.patterns[p]
                out.ids.append(pattern.id)
                out.tokens.append(BertTokenizer.string(scalars[split.lo..<split.hi]))
                out.starts.append(split.lo)
                out.ends.append(split.hi)
                out.words.append(word)
                word += 1
                continue
            }
            if split.lo >= split.hi { continue }
            var normalized = NormalizedText(original: scalars[split.lo..<split.hi], origin: split.lo)
            BertNormalizerImpl.normalize(&normalized, normalizer)
            if normalized.isEmpty { continue }
            if normalizedMatcher.isEmpty {
                preTokenizeAndModel(normalized, 0, normalized.count, &out, &word)
            } else {
                for sub in normalizedMatcher.split(normalized.chars, 0, normalized.count) {
                    if let p = sub.pattern {
                        let pattern = normalizedMatcher.patterns[p]
                        let (s, e) = normalized.originalRange(sub.lo, sub.hi)
                        out.ids.append(pattern.id)
                        out.tokens.append(BertTokenizer.string(normalized.chars[sub.lo..<sub.hi]))
                        out.starts.append(s)
                        out.ends.append(e)
                        out.words.append(word)
                        word += 1
                    } else if sub.lo < sub.hi {
                        preTokenizeAndModel(normalized, sub.lo, sub.hi, &out, &word)
                    }
                }
            }
        }
        return out
    }

    /// BertPreTokenizer (split on whitespace, isolate punctuation) then WordPiece per word.
    private func preTokenizeAndModel(_ text: NormalizedText, _ lo: Int, _ hi: Int,
                                     _ out: inout SequenceTokens, _ word: inout Int) {
        let tables = UnicodeTables.shared
        let chars = text.chars
        var wordStart = -1
        var i = lo
        func flush(_ end: Int) {
            if wordStart >= 0 && wordStart < end {
                emitWord(text, wordStart, end, &out, word)
                word += 1
            }
            wordStart = -1
        }
        while i < hi {
            let c = chars[i]
            let isSpace: Bool
            let isPunct: Bool
            if c < 0x80 {
                isSpace = c == 0x20 || (c >= 0x09 && c <= 0x0D)
                isPunct = (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60)
                    || (c >= 0x7B && c <= 0x7E)
            } else {
                let f = tables.flags(c)
                isSpace = f.contains(.splitSpace)
                isPunct = f.contains(.punctuation)
            }
            if isSpace {
                flush(i)
            } else if isPunct {
                flush(i)
                emitWord(text, i, i + 1, &out, word)
                word += 1
            } else if wordStart < 0 {
                wordStart = i
            }
            i += 1
        }
        flush(hi)
    }

    @inline(__always)
    private func emitWord(_ text: NormalizedText, _ lo: Int, _ hi: Int, _ out: inout SequenceTokens, _ word: Int) {
        let vocabulary = self.vocabulary
        model.tokenize(text.chars, lo, hi) { id, a, b in
            out.ids.append(id)
            out.tokens.append(vocabulary[id])
            out.starts.append(Int(text.starts[a]))
            out.ends.append(Int(text.ends[b - 1]))
            out.words.append(word)
        }
    }

    static func string(_ scalars: ArraySlice<UInt32>) -> String {
        var s = String.UnicodeScalarView()
        for v in scalars { if let u = Unicode.Scalar(v) { s.append(u) } }
        return String(s)
    }

    /// `truncate_encodings` of tokenizers, with `maxLength` reduced by the special tokens.
    func truncate(_ first: inout SequenceTokens, _ second: inout SequenceTokens?, maxLength: Int,
                  strategy: TruncationStrategy, addSpecialTokens: Bool) throws {
        var limit = maxLength
        if addSpecialTokens {
            limit -= numberOfSpecialTokens(pair: second != nil)
            // Hugging Face computes this in unsigned arithmetic; a negative limit wraps to a
            // huge one, which means no truncation at all.
            if limit < 0 { return }
        } else if limit < 0 {
            return
        }
        if limit == 0 {
            first.truncate(to: 0)
            second?.truncate(to: 0)
            return
        }
        let total = first.count + (second?.count ?? 0)
        guard total > limit else { return }
        let toRemove = total - limit
        switch strategy {
        case .longestFirst:
            if var other = second {
                var n1 = first.count, n2 = other.count
                var swapped = false
                if n1 > n2 { swap(&n1, &n2); swapped = true }
                if n1 > limit { n2 = n1 } else { n2 = max(n1, limit - n1) }
                if n1 + n2 > limit {
                    n1 = limit / 2
                    n2 = n1 + limit % 2
                }
                if swapped { swap(&n1, &n2) }
                first.truncate(to: n1)
                other.truncate(to: n2)
                second = other
            } else {
                first.truncate(to: total - toRemove)
            }
        case .onlyFirst, .onlySecond:
            if strategy == .onlySecond && second == nil {
                throw TokenizerError(.truncation, "truncation only_second needs a second sequence")
            }
            let targetCount = strategy == .onlyFirst ? first.count : second!.count
            guard targetCount > toRemove else {
                throw TokenizerError(.truncation,
                    "truncation \(strategy.rawValue): the sequence to truncate is too short to respect max_length \(maxLength)")
            }
            if strategy == .onlyFirst { first.truncate(to: targetCount - toRemove) }
            else { second!.truncate(to: targetCount - toRemove) }
        }
    }

    /// TemplateProcessing: `[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1`.
    func postProcess(_ first: SequenceTokens, _ second: SequenceTokens?, addSpecialTokens: Bool) -> Encoding {
        var e = Encoding()
        let n = first.count + (second?.count ?? 0) + (addSpecialTokens ? (second == nil ? 2 : 3) : 0)
        e.ids.reserveCapacity(n)
        func special(_ id: Int, _ token: String, _ type: Int) {
            e.append(id: id, token: token, offset: TokenOffset(0, 0), typeId: type, special: true, wordId: nil, sequenceId: nil)
        }
        func sequence(_ s: SequenceTokens, _ index: Int) {
            for i in 0..<s.count {
                e.append(id: s.ids[i], token: s.tokens[i], offset: TokenOffset(s.starts[i], s.ends[i]), typeId: index,
                         special: false, wordId: s.words[i], sequenceId: index)
            }
        }
        if addSpecialTokens { special(clsTokenId, options.clsToken, 0) }
        sequence(first, 0)
        if addSpecialTokens { special(sepTokenId, options.sepToken, 0) }
        if let second {
            sequence(second, 1)
            if addSpecialTokens { special(sepTokenId, options.sepToken, 1) }
        }
        return e
    }
}

/// A dictionary key comparing strings scalar by scalar (UTF-8 bytes), not by canonical equivalence.
struct ExactKey: Hashable, Sendable {
    let bytes: [UInt8]
    init(_ s: String) { bytes = Array(s.utf8) }
}

/// A fixed-size result buffer for `concurrentPerform` (each slot written by one iteration).
final class ResultBox<T>: @unchecked Sendable {
    private var storage: [T?]
    private let lock = NSLock()

    init(count: Int) { storage = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ value: T) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }

    var values: [T?] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}

import Foundation

/// How to shorten an input (or pair) that does not fit `maxLength` (Hugging Face names).
public enum TruncationStrategy: String, Sendable, CaseIterable {
    /// Remove tokens from the longer sequence first (balanced when both are long).
    case longestFirst = "longest_first"
    /// Only truncate the first sequence.
    case onlyFirst = "only_first"
    /// Only truncate the second sequence (e.g. the context of a question/context pair).
    case onlySecond = "only_second"
}

/// A half-open character range `[start, end)` into the original text, in Unicode scalars
/// (the same indices as Python `str`). Special tokens have `(0, 0)`.
public struct TokenOffset: Sendable, Hashable, Codable, CustomStringConvertible {
    public var start: Int
    public var end: Int

    public init(_ start: Int, _ end: Int) {
        self.start = start
        self.end = end
    }

    public var description: String { "(\(start), \(end))" }
}

/// The result of encoding one text or text pair, aligned token by token.
public struct Encoding: Sendable, Equatable {
    /// Vocabulary ids.
    public var ids: [Int]
    /// Token strings (`##` marks continuation pieces).
    public var tokens: [String]
    /// Offsets into the original text of the token's sequence (see `sequenceIds`).
    public var offsets: [TokenOffset]
    /// Segment ids: 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`.
    public var typeIds: [Int]
    /// 1 for real tokens, 0 for padding.
    public var attentionMask: [Int]
    /// 1 for `[CLS]`/`[SEP]`/padding added by the tokenizer, else 0.
    public var specialTokensMask: [Int]
    /// Index of the pre-tokenized word of its sequence each token comes from; nil for added specials.
    public var wordIds: [Int?]
    /// 0 or 1 for tokens of the first or second sequence; nil for added specials.
    public var sequenceIds: [Int?]

    public init(ids: [Int] = [], tokens: [String] = [], offsets: [TokenOffset] = [], typeIds: [Int] = [],
                attentionMask: [Int] = [], specialTokensMask: [Int] = [], wordIds: [Int?] = [],
                sequenceIds: [Int?] = []) {
        self.ids = ids
        self.tokens = tokens
        self.offsets = offsets
        self.typeIds = typeIds
        self.attentionMask = attentionMask
        self.specialTokensMask = specialTokensMask
        self.wordIds = wordIds
        self.sequenceIds = sequenceIds
    }

    public var count: Int { ids.count }
    public var isEmpty: Bool { ids.isEmpty }

    /// Offsets as plain tuples.
    public var offsetPairs: [(Int, Int)] { offsets.map { ($0.start, $0.end) } }

    mutating func append(id: Int, token: String, offset: TokenOffset, typeId: Int, special: Bool,
                         wordId: Int?, sequenceId: Int?) {
        ids.append(id)
        tokens.append(token)
        offsets.append(offset)
        typeIds.append(typeId)
        attentionMask.append(1)
        specialTokensMask.append(special ? 1 : 0)
        wordIds.append(wordId)
        sequenceIds.append(sequenceId)
    }

    /// Keeps the first `length` tokens.
    mutating func truncate(to length: Int) {
        guard length < ids.count else { return }
        let n = max(0, length)
        ids.removeSubrange(n...)
        tokens.removeSubrange(n...)
        offsets.removeSubrange(n...)
        typeIds.removeSubrange(n...)
        attentionMask.removeSubrange(n...)
        specialTokensMask.removeSubrange(n...)
        wordIds.removeSubrange(n...)
        sequenceIds.removeSubrange(n...)
    }

    /// Token index range of sequence `sequence` (0 or 1), or nil if it has no token.
    public func tokenRange(ofSequence sequence: Int) -> Range<Int>? {
        guard let first = sequenceIds.firstIndex(of: sequence),
              let last = sequenceIds.lastIndex(of: sequence) else { return nil }
        return first..<(last + 1)
    }

    /// Index of the token of `sequence` that covers original character `char`, if any.
    public func token(forCharacter char: Int, inSequence sequence: Int = 0) -> Int? {
        for i in 0..<ids.count where sequenceIds[i] == sequence {
            if offsets[i].start <= char && char < offsets[i].end { return i }
        }
        return nil
    }
}

/// A one-line error naming the file or setting at fault.
public struct TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        case missingFile, notAFile, notADirectory, unreadable, invalidJSON, invalidVocabulary,
             missingToken, invalidOption, truncation, invalidInput, io
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = TokenizerError.oneLine(message)
    }

    /// Replaces line breaks (scalar-wise, so `\r\n` too) by spaces.
    static func oneLine(_ s: String) -> String {
        var view = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            view.append(u == "\n" || u == "\r" || u == "\u{2028}" || u == "\u{2029}" || u == "\u{85}" ? " " : u)
        }
        return String(view)
    }

    public var description: String { message }
}

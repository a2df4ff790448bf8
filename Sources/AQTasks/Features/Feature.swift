import AQTokenizer

/// One model input row, unpadded: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`.
///
/// Which targets are set depends on the task: `label` (sequence classification),
/// `tokenLabels` (token classification) or `startPosition`/`endPosition` (question answering,
/// training rows only). Unlabelled rows leave them nil.
public struct Feature: Sendable, Equatable {
    /// Label of tokens the loss ignores (PyTorch `CrossEntropyLoss(ignore_index=-100)`).
    public static let ignoredLabel: Int32 = -100

    /// Vocabulary ids, `[T]`.
    public var inputIds: [Int]
    /// Segment ids, `[T]`: 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`.
    public var typeIds: [Int]
    /// Class id (sequence classification).
    public var label: Int32?
    /// `[T]` label ids for token classification: the word's tag id on the first word piece of
    /// each word, `ignoredLabel` on the other pieces and on `[CLS]`/`[SEP]`.
    public var tokenLabels: [Int32]?
    /// QA training target: token index of the answer's first token; 0 (`[CLS]`) with
    /// `endPosition` 0 when the answer is not entirely inside this window.
    public var startPosition: Int32?
    /// QA training target: token index of the answer's last token (inclusive).
    public var endPosition: Int32?
    /// Index of the source example in the array the builder was given (SQuAD: several windows
    /// share one example).
    public var exampleIndex: Int

    public init(inputIds: [Int], typeIds: [Int], label: Int32? = nil, tokenLabels: [Int32]? = nil,
                startPosition: Int32? = nil, endPosition: Int32? = nil, exampleIndex: Int) {
        self.inputIds = inputIds
        self.typeIds = typeIds
        self.label = label
        self.tokenLabels = tokenLabels
        self.startPosition = startPosition
        self.endPosition = endPosition
        self.exampleIndex = exampleIndex
    }

    /// Number of tokens `T`.
    public var count: Int { inputIds.count }
}

/// Where the words of one tagged sentence landed in its `Feature`.
public struct WordAlignment: Sendable, Equatable {
    /// For each word of the sentence, the token index of its first word piece; nil when the word
    /// produced no token (empty, or only characters the normalizer removes) or was truncated away.
    public var firstToken: [Int?]

    public init(firstToken: [Int?]) {
        self.firstToken = firstToken
    }

    /// Number of words in the sentence.
    public var wordCount: Int { firstToken.count }
}

/// One SQuAD window: `[CLS] question [SEP] context[a..<b] [SEP]`, with what post-processing
/// needs to map token predictions back to the context.
public struct SquadFeature: Sendable, Equatable {
    /// The model row (`startPosition`/`endPosition` set only when built for training).
    public var feature: Feature
    /// `[T]`: the character span in the example's context (Unicode scalars, Python `str`
    /// indices) of each context token; nil for `[CLS]`, question tokens and `[SEP]` (run_qa's
    /// `offset_mapping` with None outside the context).
    public var offsets: [TokenOffset?]
    /// `[T]`: whether this window gives the token its maximum context, as `_check_is_max_context`
    /// of the original BERT `run_squad.py` (score = min(left, right) + 0.01 * window length, the
    /// first window wins ties); false outside the context.
    public var tokenIsMaxContext: [Bool]
    /// Position of this window among its example's windows (0, 1, ...).
    public var window: Int
    /// Index, in the context's own tokenization, of this window's first context token.
    public var contextStart: Int
    /// Token indices of the context in this row.
    public var contextTokens: Range<Int>
    /// The example's SQuAD id.
    public var exampleId: String

    public init(feature: Feature, offsets: [TokenOffset?], tokenIsMaxContext: [Bool], window: Int,
                contextStart: Int, contextTokens: Range<Int>, exampleId: String) {
        self.feature = feature
        self.offsets = offsets
        self.tokenIsMaxContext = tokenIsMaxContext
        self.window = window
        self.contextStart = contextStart
        self.contextTokens = contextTokens
        self.exampleId = exampleId
    }
}

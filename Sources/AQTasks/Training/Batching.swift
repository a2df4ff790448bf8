import AQBert

/// Padded model inputs and targets for a group of features. Legend: B = rows, T = longest row.
public struct FeatureBatch {
    public var inputs: BertBatch
    /// Sequence labels (B), token labels (B*T, -100 on padding), or nil.
    public var labels: [Int32]?
    public var startPositions: [Int32]?
    public var endPositions: [Int32]?

    /// A batch already padded, with its sequence or token labels (benchmarks, tests).
    public init(inputs: BertBatch, labels: [Int32]?) {
        self.inputs = inputs
        self.labels = labels
    }

    /// Right-pads `features` to their longest row (dynamic padding), or to `minimumLength` if
    /// that is longer.
    public init(_ features: [Feature], padId: Int, minimumLength: Int = 0) {
        inputs = BertBatch(sequences: features.map(\.inputIds), typeIds: features.map(\.typeIds), padId: padId,
                           minimumLength: minimumLength)
        let t = inputs.sequenceLength
        if features.allSatisfy({ $0.tokenLabels != nil }), !features.isEmpty {
            var l = [Int32](repeating: -100, count: features.count * t)
            for (b, f) in features.enumerated() {
                for (i, v) in f.tokenLabels!.enumerated() where i < t { l[b * t + i] = v }
            }
            labels = l
        } else if features.allSatisfy({ $0.label != nil }), !features.isEmpty {
            labels = features.map { $0.label! }
        }
        if features.allSatisfy({ $0.startPosition != nil && $0.endPosition != nil }), !features.isEmpty {
            startPositions = features.map { $0.startPosition! }
            endPositions = features.map { $0.endPosition! }
        }
    }
}

extension BertTaskModel {
    /// The task's training loss on a batch: start/end cross-entropy for question answering,
    /// cross-entropy over the labels (ignore index -100) otherwise. logits: the model's output.
    public func taskLoss(_ logits: Tensor, batch: FeatureBatch, tape: Tape) -> Tensor {
        if architecture == .questionAnswering {
            return spanLoss(logits, startPositions: batch.startPositions ?? [], endPositions: batch.endPositions ?? [], tape: tape)
        }
        return classificationLoss(logits, labels: batch.labels ?? [], tape: tape)
    }

    /// The training loss of `batch`: distilled with `distillation`, the task loss otherwise; with
    /// `share`, the batch's part of a larger batch's loss (see `Distillation.loss`).
    func trainingLoss(_ batch: FeatureBatch, tape: Tape, distillation: Distillation?, share: BatchShare? = nil) -> Tensor {
        if let distillation { return distillation.loss(of: self, batch: batch, tape: tape, share: share) }
        let loss = taskLoss(forward(batch.inputs, tape: tape), batch: batch, tape: tape)
        return share.map { tape.scale(loss, by: $0.taskShare) } ?? loss
    }
}

/// Rank `rank`'s rows of a batch of `rows` split over `ranks` processes: consecutive slices,
/// the first `rows % ranks` one row longer (empty when the batch has fewer rows than ranks).
public func batchSlice(rows: Int, rank: Int, ranks: Int) -> Range<Int> {
    let base = rows / ranks, extra = rows % ranks
    let start = rank * base + min(rank, extra)
    return start..<(start + base + (rank < extra ? 1 : 0))
}

/// How many terms the task loss of `batch` averages: its labelled tokens for token
/// classification (labels other than -100), its rows otherwise. A data-parallel slice's loss is
/// weighted by its share of the whole batch's terms.
public func lossTerms(_ batch: FeatureBatch, architecture: BertArchitecture) -> Int {
    if architecture == .tokenClassification, let labels = batch.labels { return labels.lazy.filter { $0 != -100 }.count }
    return batch.inputs.batchSize
}

/// A data-parallel slice's part of its whole batch (see `Trainer`): its share of the task
/// loss's terms (`lossTerms`) and the whole batch's real tokens and (query, key) pairs, which
/// normalise distillation's layer terms.
public struct BatchShare: Sendable, Equatable {
    public var taskShare: Float
    public var tokens: Int
    public var pairs: Int
    public init(taskShare: Float, tokens: Int, pairs: Int) {
        self.taskShare = taskShare
        self.tokens = tokens
        self.pairs = pairs
    }
}

/// One process's part of a data-parallel batch (see `Trainer`): its rows, padded to the whole
/// batch's length, its share of the loss and its place in the batch (for the dropout masks).
public struct BatchPart {
    public let batch: FeatureBatch
    public let share: BatchShare
    public let rows: BatchRows
    /// A process whose slice is empty (a last batch with fewer rows than processes) computes the
    /// batch's first row with weight 0, so that it takes part in every collective of the update
    /// (the activation ranges') without changing the sums.
    public let isPlaceholder: Bool

    /// Rank `rank`'s part of `features` split over `ranks` processes (`batchSlice`).
    public init(of features: [Feature], rank: Int, ranks: Int, padId: Int, architecture: BertArchitecture) {
        var slice = batchSlice(rows: features.count, rank: rank, ranks: ranks)
        let whole = FeatureBatch(features, padId: padId)
        isPlaceholder = slice.isEmpty
        if isPlaceholder { slice = 0..<min(1, features.count) }
        batch = FeatureBatch(Array(features[slice]), padId: padId, minimumLength: whole.inputs.sequenceLength)
        let total = lossTerms(whole, architecture: architecture)
        let terms = isPlaceholder ? 0 : lossTerms(batch, architecture: architecture)
        let counts = Distillation.realTokensAndPairs(whole.inputs)
        share = BatchShare(taskShare: total > 0 ? Float(terms) / Float(total) : 0, tokens: counts.tokens, pairs: counts.pairs)
        rows = BatchRows(offset: slice.lowerBound, total: features.count)
    }
}

/// The token ids a batch of `features` gathers from the word-embedding table (padding
/// included), sorted, each once: the rows whose gradient the batch can make nonzero.
public func gatheredIds(_ features: [Feature], padId: Int) -> [Int] {
    var seen = Set<Int>([padId])
    for f in features { seen.formUnion(f.inputIds) }
    return seen.sorted()
}

/// Deterministic batch order: a permutation of `0..<count` from (seed, epoch), cut into
/// consecutive batches. The same seed gives the same batches after a resume.
public func epochBatches(count: Int, batchSize: Int, seed: UInt64, epoch: Int, shuffle: Bool) -> [[Int]] {
    var order = Array(0..<count)
    if shuffle {
        var g = SeededGenerator(seed: seed &+ 0x5851_F42D_4C95_7F2D &* UInt64(epoch + 1))
        g.shuffle(&order)
    }
    return stride(from: 0, to: count, by: batchSize).map { Array(order[$0..<min(count, $0 + batchSize)]) }
}

/// Checks rows against a model's tables before any forward pass (a bad id must be a clear
/// error, never a trap inside a kernel): ids within the vocabulary, token types within
/// `type_vocab_size`, lengths within `max_position_embeddings`.
public func validate(_ features: [Feature], for config: BertConfig) throws {
    for f in features {
        if f.inputIds.count > config.maxPositionEmbeddings {
            throw DataError("a row of \(f.inputIds.count) tokens exceeds max_position_embeddings \(config.maxPositionEmbeddings): lower --max-seq-length")
        }
        if let bad = f.inputIds.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw DataError("token id \(bad) is outside the model's vocabulary (vocab_size \(config.vocabSize)): the tokenizer does not match the model")
        }
        if config.hasTokenTypes, let bad = f.typeIds.first(where: { $0 < 0 || $0 >= config.typeVocabSize }) {
            throw DataError("token type \(bad) needs type_vocab_size > \(bad), the model has \(config.typeVocabSize) (sentence pairs need 2)")
        }
    }
}

import AQNN

// BERT encoder. Legend: B = batch, T = sequence, H = hidden, I = intermediate, L = labels.

/// Token ids of a padded batch, row-major [B, T].
public struct BertBatch: Sendable {
    public var inputIds: [Int32]
    public var tokenTypeIds: [Int32]
    /// 1 for real tokens, 0 for padding, as floats (the attention key mask).
    public var attentionMask: [Float]
    public let batchSize: Int
    public let sequenceLength: Int

    public init(inputIds: [Int32], tokenTypeIds: [Int32]? = nil, attentionMask: [Float]? = nil, batchSize: Int, sequenceLength: Int) {
        precondition(inputIds.count == batchSize * sequenceLength, "BertBatch: \(inputIds.count) ids for [\(batchSize), \(sequenceLength)]")
        self.inputIds = inputIds
        self.tokenTypeIds = tokenTypeIds ?? [Int32](repeating: 0, count: inputIds.count)
        self.attentionMask = attentionMask ?? [Float](repeating: 1, count: inputIds.count)
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        precondition(self.tokenTypeIds.count == inputIds.count && self.attentionMask.count == inputIds.count)
    }

    /// Right-pads variable-length sequences with `padId` (mask 0), to their longest or to
    /// `minimumLength` if that is longer (a slice of a larger batch padded as the whole batch).
    public init(sequences: [[Int]], typeIds: [[Int]]? = nil, padId: Int = 0, padToMultipleOf: Int = 1, minimumLength: Int = 0) {
        let longest = max(minimumLength, sequences.map(\.count).max() ?? 0)
        let t = max(1, (longest + padToMultipleOf - 1) / padToMultipleOf * padToMultipleOf)
        var ids = [Int32](repeating: Int32(padId), count: sequences.count * t)
        var types = [Int32](repeating: 0, count: sequences.count * t)
        var mask = [Float](repeating: 0, count: sequences.count * t)
        for (b, s) in sequences.enumerated() {
            for (i, id) in s.enumerated() {
                ids[b * t + i] = Int32(id)
                mask[b * t + i] = 1
                if let typeIds { types[b * t + i] = Int32(typeIds[b][i]) }
            }
        }
        self.init(inputIds: ids, tokenTypeIds: types, attentionMask: mask, batchSize: sequences.count, sequenceLength: t)
    }

    /// Checks ids against the model's tables (user input must never trap inside a kernel).
    public func validate(for config: BertConfig) throws {
        if sequenceLength > config.maxPositionEmbeddings {
            throw BertError("sequence length \(sequenceLength) exceeds max_position_embeddings \(config.maxPositionEmbeddings)")
        }
        if let bad = inputIds.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw BertError("token id \(bad) outside the vocabulary (vocab_size \(config.vocabSize))")
        }
        if config.hasTokenTypes, let bad = tokenTypeIds.first(where: { $0 < 0 || Int($0) >= config.typeVocabSize }) {
            throw BertError("token type id \(bad) outside 0..<\(config.typeVocabSize)")
        }
    }
}

/// Word + position + token-type embeddings, LayerNorm, dropout.
public final class BertEmbeddings: Module {
    public let word: Embedding, position: Embedding
    /// nil for DistilBERT (no token types).
    public let tokenType: Embedding?
    public let norm: LayerNorm

    init(_ c: BertConfig) {
        word = Embedding(count: c.vocabSize, dimension: c.hiddenSize, paddingIndex: c.padTokenId)
        position = Embedding(count: c.maxPositionEmbeddings, dimension: c.hiddenSize)
        tokenType = c.hasTokenTypes ? Embedding(count: c.typeVocabSize, dimension: c.hiddenSize) : nil
        norm = LayerNorm(dimension: c.hiddenSize, eps: c.layerNormEps)
    }

    /// Every lookup table: word, position and (BERT) token type.
    public var tables: [Embedding] { [word, position] + (tokenType.map { [$0] } ?? []) }

    public var namedParameters: [(path: String, tensor: Tensor)] {
        word.prefixed("word") + position.prefixed("position") + (tokenType?.prefixed("tokenType") ?? []) + norm.prefixed("norm")
    }
}

/// One encoder block: self-attention and feed-forward, each with residual + post-LayerNorm.
public final class BertLayer: Module {
    public let query: Linear, key: Linear, value: Linear, attentionOutput: Linear
    public let attentionNorm: LayerNorm
    public let intermediate: Linear, output: Linear
    public let outputNorm: LayerNorm

    init(_ c: BertConfig) {
        let h = c.hiddenSize
        query = Linear(inFeatures: h, outFeatures: h)
        key = Linear(inFeatures: h, outFeatures: h)
        value = Linear(inFeatures: h, outFeatures: h)
        attentionOutput = Linear(inFeatures: h, outFeatures: h)
        attentionNorm = LayerNorm(dimension: h, eps: c.layerNormEps)
        intermediate = Linear(inFeatures: h, outFeatures: c.intermediateSize)
        output = Linear(inFeatures: c.intermediateSize, outFeatures: h)
        outputNorm = LayerNorm(dimension: h, eps: c.layerNormEps)
    }

    /// The six dense weight matrices AQ-BERT quantizes, in block order (Q, K, V, O, FFN in, FFN out).
    public var denseLayers: [Linear] { [query, key, value, attentionOutput, intermediate, output] }

    public var namedParameters: [(path: String, tensor: Tensor)] {
        query.prefixed("query") + key.prefixed("key") + value.prefixed("value") + attentionOutput.prefixed("attentionOutput")
            + attentionNorm.prefixed("attentionNorm") + intermediate.prefixed("intermediate") + output.prefixed("output")
            + outputNorm.prefixed("outputNorm")
    }
}

/// The BERT encoder with its pooler (transformers `BertModel`), or a DistilBERT encoder
/// (`DistilBertModel`: no token types, no dropout after the attention output; its "pooler" is
/// the sequence classifier's `pre_classifier`, ReLU instead of tanh).
public final class BertModel: Module {
    public let config: BertConfig
    public let embeddings: BertEmbeddings
    public let layers: [BertLayer]
    /// Pooler dense layer (tanh of the first token; DistilBERT's pre_classifier, ReLU); nil for
    /// checkpoints saved without one.
    public let pooler: Linear?
    /// Dropout is active when true.
    public var training = false
    /// Source of every dropout mask.
    public var generator = SeededGenerator(seed: 0)
    /// With data parallelism, where this process's batch sits in the global batch: dropout masks
    /// are then the global batch's, cut to these rows (nil: the batch is the whole batch).
    public var batchRows: BatchRows?
    /// When not nil, `encode` appends the tape's `recordedCount` as each layer starts and once
    /// after the last: every rule that touches layer l's parameters was recorded at or after
    /// mark l, so in the backward pass their gradients are complete once only `mark l` rules are
    /// left (data parallelism sums them then, while the lower layers' run).
    public var layerMarks: [Int]?

    public init(config: BertConfig, withPooler: Bool = true) {
        self.config = config
        embeddings = BertEmbeddings(config)
        layers = (0..<config.numHiddenLayers).map { _ in BertLayer(config) }
        pooler = withPooler ? Linear(inFeatures: config.hiddenSize, outFeatures: config.hiddenSize) : nil
    }

    public var namedParameters: [(path: String, tensor: Tensor)] {
        var all = embeddings.prefixed("embeddings")
        for (i, l) in layers.enumerated() { all += l.prefixed("layers.\(i)") }
        if let pooler { all += pooler.prefixed("pooler") }
        return all
    }

    /// transformers `BertPreTrainedModel._init_weights`: Linear/Embedding ~ N(0, range^2),
    /// biases 0, LayerNorm weight 1 and bias 0, the padding row of the word embeddings 0.
    public func initializeWeights(generator g: inout SeededGenerator) {
        let std = config.initializerRange
        embeddings.word.initialize(std: std, paddingIndex: config.padTokenId, generator: &g)
        embeddings.position.initialize(std: std, paddingIndex: nil, generator: &g)
        embeddings.tokenType?.initialize(std: std, paddingIndex: nil, generator: &g)
        for l in layers { for d in l.denseLayers { d.initialize(std: std, generator: &g) } }
        pooler?.initialize(std: std, generator: &g)
    }

    func dropout(_ x: Tensor, _ p: Float, tape: Tape) -> Tensor {
        training && p > 0 ? tape.dropout(x, probability: p, generator: &generator, rows: batchRows) : x
    }

    /// Last hidden state [B, T, H]. With a `trace`, also records the hidden states and (if
    /// asked) each layer's attention scores for layer-wise distillation.
    public func encode(_ batch: BertBatch, tape: Tape, trace: EncoderTrace? = nil) -> Tensor {
        let b = batch.batchSize, t = batch.sequenceLength, c = config
        precondition(t <= c.maxPositionEmbeddings, "sequence \(t) longer than max_position_embeddings")
        let positions = (0..<b).flatMap { _ in (0..<t).map(Int32.init) }
        var h = embeddings.word(batch.inputIds, shape: [b, t], tape: tape)
        h = tape.add(h, embeddings.position(positions, shape: [b, t], tape: tape))
        if let tokenType = embeddings.tokenType {
            h = tape.add(h, tokenType(batch.tokenTypeIds, shape: [b, t], tape: tape))
        }
        h = dropout(embeddings.norm(h, tape: tape), c.hiddenDropoutProb, tape: tape)
        trace?.hiddenStates.append(h)
        // DistilBERT adds out_lin's output to the residual without a dropout
        // (modeling_distilbert.py TransformerBlock.forward); BERT drops it out (BertSelfOutput).
        let attentionOutputDropout = c.family == .bert ? c.hiddenDropoutProb : 0
        let mask = Tensor(shape: [b, t], values: batch.attentionMask)
        let attnDrop = training ? c.attentionProbsDropoutProb : 0
        for layer in layers {
            layerMarks?.append(tape.recordedCount)
            let q = layer.query(h, tape: tape), k = layer.key(h, tape: tape), v = layer.value(h, tape: tape)
            if let trace, trace.recordsAttentionScores {
                trace.queries.append(q)
                trace.keys.append(k)
            }
            let ctx = tape.attention(query: q, key: k, value: v, keyMask: mask, heads: c.numAttentionHeads,
                                     dropout: attnDrop, generator: &generator, rows: batchRows)
            let a = dropout(layer.attentionOutput(ctx, tape: tape), attentionOutputDropout, tape: tape)
            let h1 = layer.attentionNorm(tape.add(a, h), tape: tape)
            var i = layer.intermediate(h1, tape: tape)
            switch c.hiddenAct {
            case .relu: i = tape.relu(i)
            case .gelu: i = tape.gelu(i)
            default: i = tape.gelu(i, approximate: true)
            }
            let o = dropout(layer.output(i, tape: tape), c.hiddenDropoutProb, tape: tape)
            h = layer.outputNorm(tape.add(o, h1), tape: tape)
            trace?.hiddenStates.append(h)
        }
        layerMarks?.append(tape.recordedCount)
        return h
    }

    /// tanh(dense(hidden[:, 0])) -> [B, H]; DistilBERT relu(pre_classifier(hidden[:, 0])).
    /// Requires a pooler.
    public func pool(_ hidden: Tensor, tape: Tape) -> Tensor {
        guard let pooler else { preconditionFailure("pool() on a model loaded without pooler weights") }
        let b = hidden.shape[0], h = hidden.shape[2]
        let first = tape.reshape(tape.slice(hidden, axis: 1, range: 0..<1), [b, h])
        let dense = pooler(first, tape: tape)
        return config.family == .distilBert ? tape.relu(dense) : tape.tanh(dense)
    }

    /// Embedding of each sequence: hidden state at [CLS] or the attention-masked mean. -> [B, H]
    public func sentenceEmbedding(_ hidden: Tensor, mask: [Float], pooling: Pooling, tape: Tape) -> Tensor {
        let b = hidden.shape[0], t = hidden.shape[1], h = hidden.shape[2]
        switch pooling {
        case .cls:
            return tape.reshape(tape.slice(hidden, axis: 1, range: 0..<1), [b, h])
        case .mean:
            // sum_t(mask * hidden) / max(sum_t mask, 1e-9)   (sentence-transformers mean pooling)
            let m = Tensor(shape: [b, t, 1], values: mask)
            let summed = tape.sum(tape.mul(hidden, m), axis: 1)
            var inv = [Float](repeating: 0, count: b)
            for i in 0..<b { inv[i] = 1 / max(mask[(i * t)..<((i + 1) * t)].reduce(0, +), 1e-9) }
            return tape.mul(summed, Tensor(shape: [b, 1], values: inv))
        }
    }
}

/// How `encode` turns token states into one vector.
public enum Pooling: String, Sendable, CaseIterable {
    case cls, mean
}

/// What `BertModel.encode` records for layer-wise distillation (TinyBERT, TernaryBERT): the
/// hidden states as transformers' `output_hidden_states` gives them (the embedding output, then
/// each layer's output) and, when asked, each layer's query and key projections, from which
/// the attention scores Q K^T / sqrt(D) are formed (`Tape.attentionScores`,
/// `Tape.attentionScoreError`) without keeping [B, NH, T, T] maps alive.
public final class EncoderTrace {
    public let recordsAttentionScores: Bool
    /// L + 1 tensors [B, T, H].
    public internal(set) var hiddenStates: [Tensor] = []
    /// L tensors [B, T, H] each (empty unless `recordsAttentionScores`).
    public internal(set) var queries: [Tensor] = []
    public internal(set) var keys: [Tensor] = []

    public init(attentionScores: Bool) {
        recordsAttentionScores = attentionScores
    }
}

import AQNN
import AQTokenizer
import Foundation

/// Texts to fixed-size vectors with a BERT encoder: tokenise, batch by length (dynamic
/// padding), run the encoder, pool each sequence ([CLS] state or attention-masked mean).
public struct SentenceEncoder {
    public let model: BertTaskModel
    public let tokenizer: BertTokenizer

    public init(model: BertTaskModel, tokenizer: BertTokenizer) throws {
        self.model = model
        self.tokenizer = tokenizer
        if tokenizer.vocabularySize > model.config.vocabSize {
            throw BertError("vocabulary has \(tokenizer.vocabularySize) tokens but the model's vocab_size is \(model.config.vocabSize)")
        }
    }

    /// Loads a model directory (weights, config, vocabulary).
    public init(directory: URL) throws {
        let (model, _) = try BertTaskModel.load(directory: directory, architecture: .base)
        let tokenizer: BertTokenizer
        do { tokenizer = try BertTokenizer(directory: directory) } catch { throw BertError("\(error)") }
        try self.init(model: model, tokenizer: tokenizer)
    }

    /// Longest sequence the encoder accepts (tokenizer `model_max_length`, capped by positions).
    public var maxLength: Int {
        min(tokenizer.options.modelMaxLength ?? model.config.maxPositionEmbeddings, model.config.maxPositionEmbeddings)
    }

    /// One encoded text.
    public struct Output: Sendable {
        public var inputIds: [Int]
        public var embedding: [Float]
    }

    /// Embeddings in input order. `progress(done, total)` after each batch.
    public func encode(_ texts: [String], pooling: Pooling, batchSize: Int,
                       progress: ((Int, Int) -> Void)? = nil) -> [Output] {
        let encodings = tokenizer.encodeBatch(texts, maxLength: maxLength).map(\.ids)
        // Length-sorted batches waste little on padding; results are put back in input order.
        let order = encodings.indices.sorted { encodings[$0].count < encodings[$1].count }
        var outputs = [Output?](repeating: nil, count: texts.count)
        var done = 0
        for start in stride(from: 0, to: order.count, by: max(1, batchSize)) {
            let idx = Array(order[start..<min(order.count, start + max(1, batchSize))])
            let batch = BertBatch(sequences: idx.map { encodings[$0] }, padId: tokenizer.padTokenId)
            let hidden = model.bert.encode(batch, tape: .inference)
            let pooled = model.bert.sentenceEmbedding(hidden, mask: batch.attentionMask, pooling: pooling, tape: .inference)
            let h = pooled.shape[1]
            for (row, i) in idx.enumerated() {
                outputs[i] = Output(inputIds: encodings[i], embedding: Array(pooled.values[(row * h)..<((row + 1) * h)]))
            }
            done += idx.count
            progress?(done, texts.count)
        }
        return outputs.map { $0! }
    }
}

import Foundation

// DistilBERT's config.json (transformers `DistilBertConfig`, models/distilbert/
// configuration_distilbert.py, transformers 5.24) mapped onto `BertConfig`'s fields.

extension BertConfig {
    /// DistilBERT's key names: the only place they appear.
    enum DistilKey {
        static let vocabSize = "vocab_size", dim = "dim", nLayers = "n_layers", nHeads = "n_heads"
        static let hiddenDim = "hidden_dim", activation = "activation", dropout = "dropout"
        static let attentionDropout = "attention_dropout", maxPositionEmbeddings = "max_position_embeddings"
        static let initializerRange = "initializer_range", padTokenId = "pad_token_id"
        static let seqClassifDropout = "seq_classif_dropout", qaDropout = "qa_dropout"
        static let sinusoidalPosEmbds = "sinusoidal_pos_embds"
        static let all: Set<String> = [vocabSize, dim, nLayers, nHeads, hiddenDim, activation, dropout, attentionDropout,
                                       maxPositionEmbeddings, initializerRange, padTokenId, seqClassifDropout, qaDropout,
                                       sinusoidalPosEmbds, Key.architectures, Key.id2label, Key.label2id, Key.numLabels]
    }

    /// DistilBERT's LayerNorms use eps 1e-12, fixed in its modeling code (not a config key).
    static let distilBertLayerNormEps: Float = 1e-12

    /// Reads a `model_type: "distilbert"` config. Shapes are required (no silent 768-wide
    /// defaults); dropouts and the rest default as `DistilBertConfig` does.
    init(distilBert r: ConfigReader) throws {
        self.init()
        family = .distilBert
        vocabSize = try r.int(DistilKey.vocabSize, nil)
        hiddenSize = try r.int(DistilKey.dim, nil)
        numHiddenLayers = try r.int(DistilKey.nLayers, nil)
        numAttentionHeads = try r.int(DistilKey.nHeads, nil)
        intermediateSize = try r.int(DistilKey.hiddenDim, nil)
        maxPositionEmbeddings = try r.int(DistilKey.maxPositionEmbeddings, 512)
        typeVocabSize = 0
        padTokenId = try r.int(DistilKey.padTokenId, 0)
        hiddenDropoutProb = try r.float(DistilKey.dropout, 0.1)
        attentionProbsDropoutProb = try r.float(DistilKey.attentionDropout, 0.1)
        seqClassifDropout = try r.float(DistilKey.seqClassifDropout, 0.2)
        qaDropout = try r.float(DistilKey.qaDropout, 0.1)
        initializerRange = try r.float(DistilKey.initializerRange, 0.02)
        layerNormEps = Self.distilBertLayerNormEps
        hiddenAct = try r.activation(DistilKey.activation)
        // transformers 4.x froze sinusoidal tables, 5.x only initialises with them: the two
        // disagree on training, so such checkpoints are refused rather than half supported.
        if try r.bool(DistilKey.sinusoidalPosEmbds, false) {
            throw BertError("\(r.source): sinusoidal_pos_embds true is not supported (only learned position embeddings)")
        }
        architectures = r.dict[Key.architectures] as? [String]
        id2label = try r.labels()
        extra = [:]
        for (k, v) in r.dict where !DistilKey.all.contains(k) { extra[k] = JSONValue(any: v) }
        try validate(source: r.source)
    }

    func validateDistilBert(source: String) throws {
        for (k, v) in [(DistilKey.vocabSize, vocabSize), (DistilKey.dim, hiddenSize), (DistilKey.nLayers, numHiddenLayers),
                       (DistilKey.nHeads, numAttentionHeads), (DistilKey.hiddenDim, intermediateSize),
                       (DistilKey.maxPositionEmbeddings, maxPositionEmbeddings)] where v <= 0 {
            throw BertError("\(source): \(k) must be positive, got \(v)")
        }
        if hiddenSize % numAttentionHeads != 0 {
            throw BertError("\(source): dim \(hiddenSize) is not a multiple of n_heads \(numAttentionHeads)")
        }
        if typeVocabSize != 0 { throw BertError("\(source): a DistilBERT has no token-type embeddings") }
        for (k, p) in [(DistilKey.dropout, hiddenDropoutProb), (DistilKey.attentionDropout, attentionProbsDropoutProb),
                       (DistilKey.seqClassifDropout, seqClassifDropout ?? 0), (DistilKey.qaDropout, qaDropout ?? 0)]
        where !(p >= 0 && p < 1) {
            throw BertError("\(source): \(k) must be in [0, 1), got \(p)")
        }
        if padTokenId < 0 || padTokenId >= vocabSize {
            throw BertError("\(source): pad_token_id \(padTokenId) outside the vocabulary (vocab_size \(vocabSize))")
        }
    }

    /// The config.json `DistilBertConfig.to_json_string` writes: DistilBERT keys only (sorted,
    /// 2-space indent), unknown keys passed through.
    func distilBertJSONData() throws -> Data {
        var d: [String: Any] = [:]
        for (k, v) in extra { d[k] = v.any }
        d[Key.modelType] = ModelFamily.distilBert.rawValue
        d[DistilKey.vocabSize] = vocabSize
        d[DistilKey.dim] = hiddenSize
        d[DistilKey.nLayers] = numHiddenLayers
        d[DistilKey.nHeads] = numAttentionHeads
        d[DistilKey.hiddenDim] = intermediateSize
        d[DistilKey.activation] = hiddenAct.rawValue
        d[DistilKey.dropout] = Double(hiddenDropoutProb)
        d[DistilKey.attentionDropout] = Double(attentionProbsDropoutProb)
        d[DistilKey.maxPositionEmbeddings] = maxPositionEmbeddings
        d[DistilKey.initializerRange] = Double(initializerRange)
        d[DistilKey.padTokenId] = padTokenId
        d[DistilKey.seqClassifDropout] = Double(seqClassifDropout ?? 0.2)
        d[DistilKey.qaDropout] = Double(qaDropout ?? 0.1)
        d[DistilKey.sinusoidalPosEmbds] = false
        writeLabels(into: &d)
        return try JSONSerialization.data(withJSONObject: d, options: [.prettyPrinted, .sortedKeys])
    }
}

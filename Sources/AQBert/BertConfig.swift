import Foundation

/// Hidden activations transformers' BERT accepts that aqbert implements.
public enum HiddenActivation: String, Sendable, Codable, CaseIterable {
    /// Exact erf form.
    case gelu
    /// tanh approximation (transformers `NewGELUActivation`).
    case geluNew = "gelu_new"
    /// tanh approximation (`nn.GELU(approximate="tanh")`).
    case geluPytorchTanh = "gelu_pytorch_tanh"
    /// tanh approximation written with 0.7978845608 (`FastGELUActivation`), same function.
    case geluFast = "gelu_fast"
    case relu

    public var isTanhApproximation: Bool { self == .geluNew || self == .geluPytorchTanh || self == .geluFast }
}

/// The Hugging Face model family a config describes. It decides the config keys, the checkpoint
/// names and the few places the networks differ (Docs/ARCHITECTURE.md, "DistilBERT").
public enum ModelFamily: String, Sendable, Equatable, CaseIterable {
    /// `BertModel` and the `BertFor*` heads (also RoBERTa-shaped configs).
    case bert
    /// `DistilBertModel` and the `DistilBertFor*` heads: no token types, no pooler.
    case distilBert = "distilbert"
}

/// The `config.json` of a Hugging Face BERT (or a BertConfig-shaped) model, or of a DistilBERT
/// (`BertConfig+DistilBert.swift` maps its keys onto these fields).
///
/// Decoding is strict where a wrong value would silently change the network (activation,
/// position embeddings, shapes); keys aqbert does not use are kept in `extra` and written
/// back unchanged, so a saved directory stays loadable by transformers.
public struct BertConfig: Sendable, Equatable {
    public var family: ModelFamily
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var hiddenAct: HiddenActivation
    public var hiddenDropoutProb: Float
    public var attentionProbsDropoutProb: Float
    public var maxPositionEmbeddings: Int
    /// 0 for DistilBERT, which has no token-type embeddings (its `token_type_ids` are ignored).
    public var typeVocabSize: Int
    public var initializerRange: Float
    public var layerNormEps: Float
    public var padTokenId: Int
    public var classifierDropout: Float?
    /// DistilBERT only: `seq_classif_dropout` (after pre_classifier + ReLU) and `qa_dropout`
    /// (before qa_outputs).
    public var seqClassifDropout: Float?
    public var qaDropout: Float?
    public var architectures: [String]?
    /// Label names by class index (from `id2label`), if the config has them.
    public var id2label: [Int: String]?
    /// Every other key of the original JSON, preserved for writing.
    public var extra: [String: JSONValue]

    public var headSize: Int { hiddenSize / numAttentionHeads }
    public var numLabels: Int? { id2label.map { $0.count } }
    public var hasTokenTypes: Bool { typeVocabSize > 0 }

    /// Dropout probability in front of a task head, as transformers places it: BERT
    /// `classifier_dropout ?? hidden_dropout_prob` (none for QA); DistilBERT `seq_classif_dropout`,
    /// `dropout` (token classification), `qa_dropout`.
    public func headDropout(for architecture: BertArchitecture) -> Float {
        switch (family, architecture) {
        case (_, .base): return 0
        case (.bert, .questionAnswering): return 0
        case (.bert, _): return classifierDropout ?? hiddenDropoutProb
        case (.distilBert, .sequenceClassification): return seqClassifDropout ?? 0.2
        case (.distilBert, .tokenClassification): return hiddenDropoutProb
        case (.distilBert, .questionAnswering): return qaDropout ?? 0.1
        }
    }

    public init(vocabSize: Int = 30522, hiddenSize: Int = 768, numHiddenLayers: Int = 12, numAttentionHeads: Int = 12,
                intermediateSize: Int = 3072, hiddenAct: HiddenActivation = .gelu, hiddenDropoutProb: Float = 0.1,
                attentionProbsDropoutProb: Float = 0.1, maxPositionEmbeddings: Int = 512, typeVocabSize: Int = 2,
                initializerRange: Float = 0.02, layerNormEps: Float = 1e-12, padTokenId: Int = 0) {
        self.family = .bert
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.hiddenAct = hiddenAct
        self.hiddenDropoutProb = hiddenDropoutProb
        self.attentionProbsDropoutProb = attentionProbsDropoutProb
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.initializerRange = initializerRange
        self.layerNormEps = layerNormEps
        self.padTokenId = padTokenId
        self.classifierDropout = nil
        self.seqClassifDropout = nil
        self.qaDropout = nil
        self.architectures = nil
        self.id2label = nil
        self.extra = ["model_type": .string("bert")]
    }

    /// bert-base-uncased shapes.
    public static let base = BertConfig()
    /// all-MiniLM-L6-v2 shapes.
    public static let miniLM = BertConfig(hiddenSize: 384, numHiddenLayers: 6, numAttentionHeads: 12, intermediateSize: 1536)
    /// A small model for quick runs.
    public static let tiny = BertConfig(hiddenSize: 128, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 512)

    enum Key {
        static let vocabSize = "vocab_size", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        static let numAttentionHeads = "num_attention_heads", intermediateSize = "intermediate_size"
        static let hiddenAct = "hidden_act", hiddenDropoutProb = "hidden_dropout_prob"
        static let attentionProbsDropoutProb = "attention_probs_dropout_prob"
        static let maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
        static let initializerRange = "initializer_range", layerNormEps = "layer_norm_eps", padTokenId = "pad_token_id"
        static let classifierDropout = "classifier_dropout", architectures = "architectures"
        static let id2label = "id2label", label2id = "label2id", positionEmbeddingType = "position_embedding_type"
        static let modelType = "model_type", numLabels = "num_labels"
        static let all: Set<String> = [vocabSize, hiddenSize, numHiddenLayers, numAttentionHeads, intermediateSize,
                                       hiddenAct, hiddenDropoutProb, attentionProbsDropoutProb, maxPositionEmbeddings,
                                       typeVocabSize, initializerRange, layerNormEps, padTokenId, classifierDropout,
                                       architectures, id2label, label2id, numLabels]
    }

    /// Reads `config.json` from a model directory (or a file path).
    public init(contentsOf url: URL) throws {
        var isDir: ObjCBool = false
        var file = url
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
            file = url.appendingPathComponent("config.json")
        }
        guard FileManager.default.fileExists(atPath: file.path, isDirectory: &isDir) else {
            throw BertError("cannot open \(file.path): No such file or directory")
        }
        if isDir.boolValue { throw BertError("\(file.path) is a directory, expected a config.json file") }
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw BertError("cannot read \(file.path): \(error.localizedDescription)")
        }
        try self.init(json: data, source: file.path)
    }

    /// Parses config JSON; `source` names it in errors.
    public init(json data: Data, source: String = "config.json") throws {
        // Syntax (with line and column), UTF-8 and duplicate keys first: Foundation would keep
        // one of two values for a key silently.
        if let problem = StrictJSON.problem(in: data) { throw BertError("\(source): \(problem)") }
        guard let object = try? JSONSerialization.jsonObject(with: data), let dict = object as? [String: Any] else {
            throw BertError("\(source): not a JSON object")
        }
        let r = ConfigReader(dict: dict, source: source)
        if let mt = dict[Key.modelType] as? String, mt == ModelFamily.distilBert.rawValue {
            self = try BertConfig(distilBert: r)
            return
        }
        if let mt = dict[Key.modelType] as? String, !["bert", "roberta", "camembert", "xlm-roberta"].contains(mt) {
            throw BertError("\(source): model_type \"\(mt)\" is not a BERT or DistilBERT model")
        }
        self.init()
        vocabSize = try r.int(Key.vocabSize, nil)
        hiddenSize = try r.int(Key.hiddenSize, nil)
        numHiddenLayers = try r.int(Key.numHiddenLayers, nil)
        numAttentionHeads = try r.int(Key.numAttentionHeads, nil)
        intermediateSize = try r.int(Key.intermediateSize, nil)
        maxPositionEmbeddings = try r.int(Key.maxPositionEmbeddings, 512)
        typeVocabSize = try r.int(Key.typeVocabSize, 2)
        padTokenId = try r.int(Key.padTokenId, 0)
        hiddenDropoutProb = try r.float(Key.hiddenDropoutProb, 0.1)
        attentionProbsDropoutProb = try r.float(Key.attentionProbsDropoutProb, 0.1)
        initializerRange = try r.float(Key.initializerRange, 0.02)
        layerNormEps = try r.float(Key.layerNormEps, 1e-12)
        if let v = dict[Key.classifierDropout], !(v is NSNull) { classifierDropout = try r.float(Key.classifierDropout, 0.1) }
        hiddenAct = try r.activation(Key.hiddenAct)
        if let pe = dict[Key.positionEmbeddingType] {
            guard let s = pe as? String, s == "absolute" else {
                throw BertError("\(source): unsupported position_embedding_type \"\(pe)\" (only \"absolute\" is implemented)")
            }
        }
        architectures = dict[Key.architectures] as? [String]
        id2label = try r.labels()
        extra = [:]
        for (k, v) in dict where !Key.all.contains(k) { extra[k] = JSONValue(any: v) }
        try validate(source: source)
    }

    /// Shape sanity checks (clear errors instead of traps later).
    public func validate(source: String = "config") throws {
        try validateDimensions(source: source)
        if family == .distilBert { return try validateDistilBert(source: source) }
        for (k, v) in [(Key.vocabSize, vocabSize), (Key.hiddenSize, hiddenSize), (Key.numHiddenLayers, numHiddenLayers),
                       (Key.numAttentionHeads, numAttentionHeads), (Key.intermediateSize, intermediateSize),
                       (Key.maxPositionEmbeddings, maxPositionEmbeddings), (Key.typeVocabSize, typeVocabSize)] where v <= 0 {
            throw BertError("\(source): \(k) must be positive, got \(v)")
        }
        if hiddenSize % numAttentionHeads != 0 {
            throw BertError("\(source): hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        for (k, p) in [(Key.hiddenDropoutProb, hiddenDropoutProb), (Key.attentionProbsDropoutProb, attentionProbsDropoutProb)]
        where !(p >= 0 && p < 1) {
            throw BertError("\(source): \(k) must be in [0, 1), got \(p)")
        }
        if !(layerNormEps > 0) { throw BertError("\(source): layer_norm_eps must be positive") }
    }

    /// The weights every model of this configuration has at least (word, position and token-type
    /// embeddings, and per layer the four attention and two FFN matrices), in Double so that no size
    /// overflows: what a checkpoint for it must hold, before anything is allocated.
    public var minimumWeightCount: Double {
        let h = Double(hiddenSize)
        return (Double(vocabSize) + Double(maxPositionEmbeddings) + Double(typeVocabSize)) * h
            + Double(numHiddenLayers) * (4 * h * h + 2 * h * Double(intermediateSize))
    }

    /// Whether a checkpoint storing `storedElements` elements can belong to this configuration:
    /// it describes at most a small multiple of them (a packed file keeps every embedding row
    /// and at least 2 bits a kept weight). Checked before the model is allocated, so sizes far
    /// beyond the weights fail at once; a near miss reaches the per-tensor shape checks.
    public func fits(storedElements: Double) -> Bool {
        minimumWeightCount <= 16 * storedElements + 1e7
    }

    /// The largest model aqbert loads: 4 billion weights (16 GB in fp32), far above any BERT.
    public static let maximumWeightCount: Double = 4e9

    /// Refuses sizes no BERT has before they reach an allocation (or an Int product that
    /// overflows), and a model whose fp32 weights alone exceed this machine's memory (an
    /// allocation that would fail or be killed).
    func validateDimensions(source: String) throws {
        let count = minimumWeightCount
        guard count <= Self.maximumWeightCount else {
            throw BertError(String(format: "%@: the sizes (vocab_size %ld, hidden_size %ld, %ld layers, intermediate_size %ld, max_position_embeddings %ld, type_vocab_size %ld) describe a model of at least %.3g weights, more than the %.0f billion aqbert loads",
                                   source, vocabSize, hiddenSize, numHiddenLayers, intermediateSize, maxPositionEmbeddings, typeVocabSize, count,
                                   Self.maximumWeightCount / 1e9))
        }
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        if pages > 0, pageSize > 0, count * 4 > Double(pages) * Double(pageSize) {
            throw BertError(String(format: "%@: the model's fp32 weights need at least %.1f GB, more than this machine's %.1f GB of memory",
                                   source, count * 4 / 1e9, Double(pages) * Double(pageSize) / 1e9))
        }
    }

    /// A lower bound on the activations one training step keeps for its backward pass, in bytes:
    /// per token and layer at least the layer's input, attention output and FFN output (3 H
    /// floats) and the FFN's intermediate (I), and per head the attention probabilities of its
    /// row (`sequence` floats); batch x sequence tokens.
    public func trainingActivationBytes(batch: Int, sequence: Int) -> Double {
        let perToken = Double(3 * hiddenSize + intermediateSize) + Double(numAttentionHeads) * Double(sequence)
        return 4 * Double(batch) * Double(sequence) * Double(numHiddenLayers) * perToken
    }

    /// Refuses a training batch whose activations alone (`trainingActivationBytes`) exceed this
    /// machine's memory, before the first step allocates them (an allocation that would fail or
    /// be killed by the kernel).
    public func checkTrainingMemory(batch: Int, sequence: Int) throws {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return }
        let need = trainingActivationBytes(batch: batch, sequence: sequence), have = Double(pages) * Double(pageSize)
        if need > have {
            throw BertError(String(format: "a training step of %ld examples of up to %ld tokens keeps at least %.1f GB of activations, more than this machine's %.1f GB of memory: lower --batch-size or --max-seq-length",
                                   batch, sequence, need / 1e9, have / 1e9))
        }
    }

    /// The JSON object transformers writes (sorted keys, 2-space indent).
    public func jsonData() throws -> Data {
        if family == .distilBert { return try distilBertJSONData() }
        var d: [String: Any] = [:]
        for (k, v) in extra { d[k] = v.any }
        d[Key.vocabSize] = vocabSize
        d[Key.hiddenSize] = hiddenSize
        d[Key.numHiddenLayers] = numHiddenLayers
        d[Key.numAttentionHeads] = numAttentionHeads
        d[Key.intermediateSize] = intermediateSize
        d[Key.hiddenAct] = hiddenAct.rawValue
        d[Key.hiddenDropoutProb] = Double(hiddenDropoutProb)
        d[Key.attentionProbsDropoutProb] = Double(attentionProbsDropoutProb)
        d[Key.maxPositionEmbeddings] = maxPositionEmbeddings
        d[Key.typeVocabSize] = typeVocabSize
        d[Key.initializerRange] = Double(initializerRange)
        d[Key.layerNormEps] = Double(layerNormEps)
        d[Key.padTokenId] = padTokenId
        d[Key.classifierDropout] = classifierDropout.map { Double($0) as Any } ?? NSNull()
        if d[Key.modelType] == nil { d[Key.modelType] = "bert" }
        if d[Key.positionEmbeddingType] == nil { d[Key.positionEmbeddingType] = "absolute" }
        writeLabels(into: &d)
        return try JSONSerialization.data(withJSONObject: d, options: [.prettyPrinted, .sortedKeys])
    }

    /// `architectures`, `id2label` and `label2id` (the same keys in both families).
    func writeLabels(into d: inout [String: Any]) {
        if let architectures { d[Key.architectures] = architectures }
        if let id2label {
            d[Key.id2label] = Dictionary(uniqueKeysWithValues: id2label.map { (String($0.key), $0.value) })
            d[Key.label2id] = Dictionary(uniqueKeysWithValues: id2label.map { ($0.value, $0.key) })
        }
    }
}

/// Typed reads from a config JSON object; every failure is a one-line `BertError` naming the key.
struct ConfigReader {
    let dict: [String: Any]
    let source: String

    /// An integer; `def` when absent or null (nil: the key is required).
    func int(_ k: String, _ def: Int?) throws -> Int {
        guard let v = dict[k], !(v is NSNull) else {
            if let def { return def }
            throw BertError("\(source): missing required key \"\(k)\"")
        }
        guard !isJSONBool(v), let n = v as? NSNumber, n.doubleValue == n.doubleValue.rounded() else {
            throw BertError("\(source): \"\(k)\" must be an integer, got \(v)")
        }
        return n.intValue
    }

    func float(_ k: String, _ def: Float) throws -> Float {
        guard let v = dict[k], !(v is NSNull) else { return def }
        guard !isJSONBool(v), let n = v as? NSNumber else { throw BertError("\(source): \"\(k)\" must be a number, got \(v)") }
        return n.floatValue
    }

    func bool(_ k: String, _ def: Bool) throws -> Bool {
        guard let v = dict[k], !(v is NSNull) else { return def }
        guard isJSONBool(v), let b = v as? Bool else { throw BertError("\(source): \"\(k)\" must be true or false, got \(v)") }
        return b
    }

    /// The activation named by key `k` (default "gelu").
    func activation(_ k: String) throws -> HiddenActivation {
        let act = (dict[k] as? String) ?? "gelu"
        guard let a = HiddenActivation(rawValue: act) else {
            throw BertError("\(source): unsupported \(k) \"\(act)\" (supported: \(HiddenActivation.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return a
    }

    /// Label names from `id2label`, or `LABEL_i` for `num_labels`; nil when neither is present.
    func labels() throws -> [Int: String]? {
        if let labels = dict[BertConfig.Key.id2label] as? [String: Any] {
            var m: [Int: String] = [:]
            for (k, v) in labels {
                guard let i = Int(k), i >= 0, let name = v as? String else { throw BertError("\(source): malformed id2label entry \"\(k)\"") }
                m[i] = name
            }
            guard Set(m.keys) == Set(0..<m.count) else { throw BertError("\(source): id2label ids must be 0..<\(m.count)") }
            return m
        } else if dict[BertConfig.Key.numLabels] != nil {
            let n = try int(BertConfig.Key.numLabels, nil)
            return Dictionary(uniqueKeysWithValues: (0..<n).map { ($0, "LABEL_\($0)") })
        }
        return nil
    }
}

/// True for a JSON `true`/`false` as JSONSerialization returns it (never for a number).
func isJSONBool(_ v: Any) -> Bool {
    if let n = v as? NSNumber {
        return String(describing: type(of: n)).contains("Bool") || String(cString: n.objCType) == "B"
            || (v is Bool && !(v is Int) && !(v is Double))
    }
    return v is Bool
}

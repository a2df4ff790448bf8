import AQNN

/// Which transformers class a model corresponds to.
public enum BertArchitecture: String, Sendable, CaseIterable {
    case base = "BertModel"
    case sequenceClassification = "BertForSequenceClassification"
    case tokenClassification = "BertForTokenClassification"
    case questionAnswering = "BertForQuestionAnswering"

    /// transformers builds BertForTokenClassification / BertForQuestionAnswering without a pooler.
    public var hasPooler: Bool { self == .base || self == .sequenceClassification }

    /// Whether the encoder carries a pooler: BERT as `hasPooler`; DistilBERT only as the
    /// sequence classifier's pre_classifier (DistilBertModel has no pooler).
    public func hasPooler(_ family: ModelFamily) -> Bool {
        family == .bert ? hasPooler : self == .sequenceClassification
    }

    /// The transformers class name (`BertForSequenceClassification`, `DistilBertModel`, ...).
    public func className(_ family: ModelFamily) -> String {
        family == .distilBert ? "Distil" + rawValue : rawValue
    }

    /// The architecture of a transformers class name of either family.
    public init?(className: String) {
        let name = className.hasPrefix("DistilBert") ? String(className.dropFirst("Distil".count)) : className
        self.init(rawValue: name)
    }
}

/// A BERT encoder with an optional task head, as the transformers `BertFor*` classes (or
/// `DistilBertFor*` for a DistilBERT config).
///
/// Heads: sequence classification = dropout(pooler) -> classifier [L, H] (DistilBERT: the
/// pooler is pre_classifier + ReLU); token classification = dropout(hidden) -> classifier [L, H];
/// question answering = qa_outputs [2, H] on hidden (DistilBERT: after dropout), split into
/// start/end logits. `BertConfig.headDropout(for:)` holds each dropout probability.
public final class BertTaskModel: Module {
    public let architecture: BertArchitecture
    public let bert: BertModel
    /// classifier (L outputs) or qa_outputs (2 outputs); nil for the bare encoder.
    public let head: Linear?

    public var config: BertConfig { bert.config }
    public var training: Bool {
        get { bert.training }
        set { bert.training = newValue }
    }

    public init(config: BertConfig, architecture: BertArchitecture, numLabels: Int? = nil) {
        self.architecture = architecture
        bert = BertModel(config: config, withPooler: architecture.hasPooler(config.family))
        switch architecture {
        case .base: head = nil
        case .questionAnswering: head = Linear(inFeatures: config.hiddenSize, outFeatures: 2)
        case .sequenceClassification, .tokenClassification:
            head = Linear(inFeatures: config.hiddenSize, outFeatures: numLabels ?? config.numLabels ?? 2)
        }
    }

    public var numLabels: Int { head?.outFeatures ?? 0 }

    /// The transformers class this model corresponds to (`config.json` `architectures`).
    public var className: String { architecture.className(config.family) }

    public var namedParameters: [(path: String, tensor: Tensor)] {
        bert.prefixed("bert") + (head?.prefixed("head") ?? [])
    }

    /// Parameters excluded from weight decay in the usual BERT recipe (biases and LayerNorm).
    public func isNoDecay(_ path: String) -> Bool {
        path.hasSuffix(".bias") || path.contains("Norm.") || path.contains("norm.")
    }

    /// Logits: [B, L] (sequence classification), [B, T, L] (token classification),
    /// [B, T, 2] (question answering: start, end), or the last hidden state [B, T, H] (base).
    /// With a `trace`, the encoder also records what layer-wise distillation compares.
    public func forward(_ batch: BertBatch, tape: Tape, trace: EncoderTrace? = nil) -> Tensor {
        let hidden = bert.encode(batch, tape: tape, trace: trace)
        let dropP = config.headDropout(for: architecture)
        switch architecture {
        case .base:
            return hidden
        case .sequenceClassification:
            return head!(bert.dropout(bert.pool(hidden, tape: tape), dropP, tape: tape), tape: tape)
        case .tokenClassification, .questionAnswering:
            return head!(bert.dropout(hidden, dropP, tape: tape), tape: tape)
        }
    }

    /// Cross-entropy of sequence labels (B) or token labels (B*T, -100 ignored).
    public func classificationLoss(_ logits: Tensor, labels: [Int32], tape: Tape) -> Tensor {
        let l = logits.shape.last ?? 1
        return tape.crossEntropy(tape.reshape(logits, [-1, l]), targets: labels, ignoreIndex: -100)
    }

    /// transformers BertForQuestionAnswering loss: positions clamped to [0, T], T ignored,
    /// (CE(start) + CE(end)) / 2.
    public func spanLoss(_ logits: Tensor, startPositions: [Int32], endPositions: [Int32], tape: Tape) -> Tensor {
        let b = logits.shape[0], t = logits.shape[1]
        let flat = tape.reshape(logits, [b * t, 2])
        let start = tape.reshape(tape.slice(flat, axis: 1, range: 0..<1), [b, t])
        let end = tape.reshape(tape.slice(flat, axis: 1, range: 1..<2), [b, t])
        let ignored = Int32(t)
        func clamp(_ p: [Int32]) -> [Int32] { p.map { min(max($0, 0), ignored) } }
        let ls = tape.crossEntropy(start, targets: clamp(startPositions), ignoreIndex: ignored)
        let le = tape.crossEntropy(end, targets: clamp(endPositions), ignoreIndex: ignored)
        return tape.scale(tape.add(ls, le), by: 0.5)
    }
}

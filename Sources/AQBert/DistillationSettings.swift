/// What a distilled run matches of an fp32 teacher of the same architecture.
public enum DistillMode: String, Codable, Sendable, CaseIterable {
    /// The logits only: `(1 - alpha) CE + alpha T^2 softCE(student / T, softmax(teacher / T))`.
    case logits
    /// Every layer's hidden states and attention scores, beside the hard cross-entropy.
    case layers
    /// Both: the logit loss plus the layer terms (TernaryBERT's objective, with the hard
    /// cross-entropy kept at weight 1 - alpha).
    case all

    public var matchesLogits: Bool { self != .layers }
    public var matchesLayers: Bool { self != .logits }
}

/// The settings of a distillation loss (`AQTasks.Distillation` computes it): what it matches,
/// alpha and temperature T of the logit term, and the weights of the hidden-state and
/// attention-score terms. Recorded with every run that distils (retrain's
/// `training_args.json`, the search's `search_config.json`).
public struct DistillationSettings: Codable, Sendable, Equatable {
    public var mode: DistillMode
    public var alpha: Float
    public var temperature: Float
    public var hiddenWeight: Float
    public var attentionWeight: Float

    public init(mode: DistillMode, alpha: Float = 0.5, temperature: Float = 2, hiddenWeight: Float = 1, attentionWeight: Float = 1) {
        self.mode = mode
        self.alpha = alpha
        self.temperature = temperature
        self.hiddenWeight = hiddenWeight
        self.attentionWeight = attentionWeight
    }

    /// The flag to fix when a value is out of range (messages name retrain's flags).
    public func validate() throws {
        if !(alpha >= 0 && alpha <= 1) { throw BertError("--distill-alpha must be in [0, 1]") }
        if !(temperature > 0 && temperature.isFinite) { throw BertError("--distill-temperature must be positive") }
        for (w, flag) in [(hiddenWeight, "--distill-hidden-weight"), (attentionWeight, "--distill-attention-weight")] {
            if !(w >= 0 && w.isFinite) { throw BertError("\(flag) must be a finite number >= 0") }
        }
    }
}

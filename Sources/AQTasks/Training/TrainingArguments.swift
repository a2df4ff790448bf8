import AQBert
import AQQuant
import Foundation

/// Hyper-parameters of a fine-tuning run; written to `training_args.json` so a run can be
/// reproduced. Defaults per task follow METHOD.md section 7 (BERT papers, Q-BERT's code).
public struct TrainingArguments: Codable, Sendable, Equatable {
    public var task: TaskName
    public var epochs: Int
    public var learningRate: Float
    public var batchSize: Int
    public var evalBatchSize: Int
    public var maxSeqLength: Int
    public var seed: UInt64
    /// Share of all updates spent in linear warm-up (then linear decay to 0).
    public var warmupRatio: Float
    /// AdamW decoupled weight decay, applied to every parameter except biases and LayerNorm.
    public var weightDecay: Float
    /// Global gradient-norm clipping (0 disables).
    public var maxGradNorm: Float
    /// SQuAD window stride and answer decoding.
    public var docStride: Int
    public var maxAnswerLength: Int
    public var nBestSize: Int
    /// A resumable checkpoint every this many updates (and at each epoch end); 0 = epoch ends only.
    public var saveSteps: Int
    public var threads: Int
    /// Distillation from the fp32 teacher (retrain --distill, `Distillation`): what it matches,
    /// alpha and T of the logit term, the weights of the hidden-state and attention-score terms.
    /// nil = off (and, for `distill` alone, the logits, as files written before the modes read).
    public var distillAlpha: Float? = nil
    public var distillTemperature: Float? = nil
    public var distill: DistillMode? = nil
    public var distillHiddenWeight: Float? = nil
    public var distillAttentionWeight: Float? = nil
    /// Quantization-aware training: min/max or learned weight ranges, where learned ones start,
    /// and their learning rate (nil: `learningRate`). nil = min/max (older files).
    public var ranges: RangeMode? = nil
    public var rangeInitialization: RangeInitialization? = nil
    public var rangeLearningRate: Float? = nil
    /// Batch order: `false` takes the training features in file order every epoch (to line a
    /// run up step by step with another trainer); nil or `true` shuffles them per epoch from the
    /// seed. Optional so that `training_args.json` files written before the flag still load.
    public var shuffle: Bool? = nil

    /// The distillation these arguments ask for, from `teacher`; nil when they ask for none.
    public func distillation(teacher: BertTaskModel) -> Distillation? {
        distillationSettings.map { Distillation(teacher: teacher, settings: $0) }
    }

    /// The distillation these arguments ask for; nil when they ask for none.
    public var distillationSettings: DistillationSettings? {
        guard distillAlpha != nil || distill != nil else { return nil }
        return DistillationSettings(mode: distill ?? .logits, alpha: distillAlpha ?? 0.5, temperature: distillTemperature ?? 2,
                                    hiddenWeight: distillHiddenWeight ?? 1, attentionWeight: distillAttentionWeight ?? 1)
    }

    /// Warm-up updates of a run of `totalSteps`: ceil(totalSteps * warmupRatio) as transformers'
    /// `get_warmup_steps` computes it in Python floats. The ratio is taken from its decimal text:
    /// the Float 0.1 widened to Double is 0.10000000149, whose product with a multiple of 10
    /// would round up one step too many.
    public func warmupSteps(totalSteps: Int) -> Int {
        let ratio = Double(String(warmupRatio)) ?? Double(warmupRatio)
        return Int((Double(totalSteps) * ratio).rounded(.up))
    }

    /// Whether each epoch's batch order is a seeded shuffle.
    public var shufflesBatches: Bool { shuffle ?? true }

    public static func defaults(for task: TaskName) -> TrainingArguments {
        var a = TrainingArguments(task: task, epochs: 3, learningRate: 2e-5, batchSize: 32, evalBatchSize: 64, maxSeqLength: 128,
                                  seed: 42, warmupRatio: 0.1, weightDecay: 0.01, maxGradNorm: 1.0, docStride: 128,
                                  maxAnswerLength: 30, nBestSize: 20, saveSteps: 500, threads: 0)
        switch task {
        case .sst2, .mnli: break
        case .conll2003: a.learningRate = 5e-5
        case .squad:
            a.epochs = 2
            a.learningRate = 3e-5
            a.batchSize = 12
            a.evalBatchSize = 32
            a.maxSeqLength = 384
        }
        return a
    }

    /// Checks ranges; the message says which flag to fix.
    public func validate() throws {
        if epochs < 1 { throw DataError("--epochs must be at least 1") }
        if !(learningRate > 0) { throw DataError("--lr must be positive") }
        if batchSize < 1 || evalBatchSize < 1 { throw DataError("--batch-size must be at least 1") }
        if maxSeqLength < 8 { throw DataError("--max-seq-length must be at least 8") }
        if !(warmupRatio >= 0 && warmupRatio < 1) { throw DataError("--warmup-ratio must be in [0, 1)") }
        if task == .squad {
            if docStride < 0 { throw DataError("--doc-stride must be 0 or more, got \(docStride)") }
            // A window holds [CLS] question [SEP] context [SEP] with at least docStride + 1
            // context tokens and one question token.
            if docStride + 4 > maxSeqLength {
                throw DataError("--doc-stride \(docStride) leaves no room for a window in --max-seq-length \(maxSeqLength): "
                                + "it must be at most \(maxSeqLength - 4)")
            }
        }
        do { try distillationSettings?.validate() } catch { throw DataError("\(error)") }
        if let r = rangeLearningRate, !(r > 0 && r.isFinite) { throw DataError("--range-lr must be positive") }
    }
}

import AQBert
import Foundation

/// Knowledge distillation from an fp32 teacher of the same architecture (Hinton et al. 2015
/// for the logits; TinyBERT, Jiao et al. 2020, and TernaryBERT, Zhang et al. 2020, for the
/// layers). The teacher runs in eval mode on a non-recording tape, so it keeps no graph and
/// its weights never receive a gradient. The loss of a batch is
///
///     L = CE                                           (mode layers)
///       | (1 - alpha) CE + alpha T^2 softCE            (modes logits, all)
///       + w_h sum_{l=0..L} MSE(h_s^l, h_t^l)           (modes layers, all)
///       + w_a sum_{l=1..L} MSE(A_s^l, A_t^l)
///
/// where h^0 is the embedding output and h^l layer l's output ([B, T, H], the MSE averaged over
/// real tokens and channels), A^l layer l's attention scores Q K^T / sqrt(D) before the softmax
/// ([B, NH, T, T], averaged over the heads and the (query, key) pairs of real tokens; padded
/// positions excluded on both sides).
public struct Distillation {
    public let teacher: BertTaskModel
    public var settings: DistillationSettings

    public init(teacher: BertTaskModel, settings: DistillationSettings) {
        self.teacher = teacher
        self.settings = settings
    }

    /// The distilled loss of `model` on `batch`, recorded on `tape`. [1] With `share` (data
    /// parallelism, `batch` a slice of a larger batch), this slice's part of the whole batch's
    /// loss: the task and logit terms weighted by the slice's share of their terms, the layer
    /// terms normalised by the whole batch's tokens and pairs, so that the parts sum to the loss
    /// of the whole batch.
    public func loss(of model: BertTaskModel, batch: FeatureBatch, tape: Tape, share: BatchShare? = nil) -> Tensor {
        let (mode, alpha, temperature) = (settings.mode, settings.alpha, settings.temperature)
        let (hiddenWeight, attentionWeight) = (settings.hiddenWeight, settings.attentionWeight)
        let layers = mode.matchesLayers && (hiddenWeight != 0 || attentionWeight != 0)
        let scores = layers && attentionWeight != 0
        let studentTrace = layers ? EncoderTrace(attentionScores: scores) : nil
        let logits = model.forward(batch.inputs, tape: tape, trace: studentTrace)
        let hard = model.taskLoss(logits, batch: batch, tape: tape)
        teacher.training = false
        let teacherTrace = layers ? EncoderTrace(attentionScores: scores) : nil
        let teacherLogits = teacher.forward(batch.inputs, tape: .inference, trace: teacherTrace)
        var total = hard
        if mode.matchesLogits {
            let soft = Self.logitLoss(student: logits, teacher: teacherLogits, architecture: model.architecture,
                                      labels: batch.labels, temperature: temperature, tape: tape)
            total = tape.add(tape.scale(hard, by: 1 - alpha), tape.scale(soft, by: alpha * temperature * temperature))
        }
        if let share { total = tape.scale(total, by: share.taskShare) }
        if let studentTrace, let teacherTrace {
            let counts = share.map { (tokens: $0.tokens, pairs: $0.pairs) } ?? Self.realTokensAndPairs(batch.inputs)
            total = tape.add(total, Self.layerLoss(student: studentTrace, teacher: teacherTrace, batch: batch.inputs,
                                                   heads: model.config.numAttentionHeads, hiddenWeight: hiddenWeight,
                                                   attentionWeight: attentionWeight, counts: counts, tape: tape))
        }
        return total
    }

    /// The real (unpadded) tokens of `batch` and the (query, key) pairs among each row's real
    /// tokens: the layer terms' normalisers.
    public static func realTokensAndPairs(_ batch: BertBatch) -> (tokens: Int, pairs: Int) {
        let t = batch.sequenceLength, mask = batch.attentionMask
        var tokens = 0, pairs = 0
        for i in 0..<batch.batchSize {
            let n = Int(mask[(i * t)..<((i + 1) * t)].reduce(0, +))
            tokens += n
            pairs += n * n
        }
        return (tokens, pairs)
    }

    /// `w_h sum_l MSE(h_s^l, h_t^l) + w_a sum_l MSE(A_s^l, A_t^l)` over real tokens (see the
    /// type), the sums of squares divided by `counts` (default: `batch`'s own). [1]
    public static func layerLoss(student: EncoderTrace, teacher: EncoderTrace, batch: BertBatch, heads: Int,
                                 hiddenWeight: Float, attentionWeight: Float, counts: (tokens: Int, pairs: Int)? = nil,
                                 tape: Tape) -> Tensor {
        let b = batch.batchSize, t = batch.sequenceLength
        let mask = batch.attentionMask
        let (tokens, pairs) = counts ?? realTokensAndPairs(batch)
        var terms: [Tensor] = []
        if hiddenWeight != 0, let width = student.hiddenStates.first?.shape.last {
            for (s, q) in zip(student.hiddenStates, teacher.hiddenStates) {
                terms.append(tape.squaredError(s, target: q, rowMask: mask, normalizer: Float(max(1, tokens * width)) / hiddenWeight))
            }
        }
        if attentionWeight != 0 {
            let keyMask = Tensor(shape: [b, t], values: mask)
            for l in 0..<min(student.queries.count, teacher.queries.count) {
                terms.append(tape.attentionScoreError(query: student.queries[l], key: student.keys[l], targetQuery: teacher.queries[l],
                                                      targetKey: teacher.keys[l], keyMask: keyMask, heads: heads,
                                                      normalizer: Float(max(1, pairs * heads)) / attentionWeight))
            }
        }
        guard var sum = terms.first else { return Tensor(zeros: [1]) }
        for term in terms.dropFirst() { sum = tape.add(sum, term) }
        return sum
    }

    /// softCE(student / T, softmax(teacher / T)) over the rows the hard loss uses: one row per
    /// sequence (classification), per labelled token (token classification: label != -100), and
    /// the start and the end distributions of each window (question answering), averaged. [1]
    public static func logitLoss(student: Tensor, teacher: Tensor, architecture: BertArchitecture, labels: [Int32]?,
                                 temperature t: Float, tape: Tape) -> Tensor {
        func soft(_ s: Tensor, _ q: Tensor, rows: [Bool]?) -> Tensor {
            let target = Tape.inference.softmax(q, scale: 1 / t).array
            return tape.softCrossEntropy(tape.scale(s, by: 1 / t), targets: target, rows: rows)
        }
        switch architecture {
        case .questionAnswering:
            let b = student.shape[0], n = student.shape[1]
            func side(_ x: Tensor, _ k: Int, _ tp: Tape) -> Tensor {
                tp.reshape(tp.slice(tp.reshape(x, [b * n, 2]), axis: 1, range: k..<(k + 1)), [b, n])
            }
            let start = soft(side(student, 0, tape), side(teacher, 0, .inference), rows: nil)
            let end = soft(side(student, 1, tape), side(teacher, 1, .inference), rows: nil)
            return tape.scale(tape.add(start, end), by: 0.5)
        case .tokenClassification:
            let l = student.shape.last ?? 1
            return soft(tape.reshape(student, [-1, l]), Tape.inference.reshape(teacher, [-1, l]), rows: labels?.map { $0 != -100 })
        default:
            return soft(student, teacher, rows: nil)
        }
    }
}

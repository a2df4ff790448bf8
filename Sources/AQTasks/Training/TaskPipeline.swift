import AQBert
import AQTokenizer
import Foundation

/// What the trainer needs from a task: its head, training rows, and how to score a model.
public protocol TaskPipeline {
    var task: TaskName { get }
    var architecture: BertArchitecture { get }
    /// Class or tag names in id order (written as `id2label`); nil for span extraction.
    var labelNames: [String]? { get }
    var trainFeatures: [Feature] { get }
    /// Examples scored by `evaluate` (sentences, pairs, questions).
    var evaluationExampleCount: Int { get }
    /// The metric that picks the best epoch.
    var primaryMetric: String { get }
    /// Metrics on the evaluation data, 0-100 scale.
    func evaluate(model: BertTaskModel, batchSize: Int) throws -> [String: Double]
}

/// Model outputs per feature, unpadded: [L] (sequence), [T_i * L] (token), [T_i * 2] (span).
public func featureLogits(model: BertTaskModel, features: [Feature], batchSize: Int, padId: Int,
                          progress: ((Int) -> Void)? = nil) throws -> [[Float]] {
    try validate(features, for: model.config)
    var out = [[Float]](repeating: [], count: features.count)
    // Length-sorted batches: little padding, same results (rows do not interact).
    let order = features.indices.sorted { features[$0].inputIds.count < features[$1].inputIds.count }
    var done = 0
    for start in stride(from: 0, to: order.count, by: max(1, batchSize)) {
        let idx = Array(order[start..<min(order.count, start + max(1, batchSize))])
        let batch = FeatureBatch(idx.map { features[$0] }, padId: padId)
        let logits = model.forward(batch.inputs, tape: .inference)
        let t = batch.inputs.sequenceLength
        let v = logits.values
        switch model.architecture {
        case .sequenceClassification:
            let l = logits.shape[1]
            for (row, i) in idx.enumerated() { out[i] = Array(v[(row * l)..<((row + 1) * l)]) }
        case .tokenClassification, .questionAnswering, .base:
            let l = logits.shape[2]
            for (row, i) in idx.enumerated() {
                let n = features[i].inputIds.count
                out[i] = Array(v[(row * t * l)..<((row * t + n) * l)])
            }
        }
        done += idx.count
        progress?(done)
    }
    return out
}

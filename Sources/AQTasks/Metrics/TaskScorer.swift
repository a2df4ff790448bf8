import Foundation

/// Scores a prediction file against a data file with the task's metric: the library side of
/// `aqbert score` (file formats in `PredictionFiles`).
public enum TaskScorer {
    public struct Result: Sendable {
        public var report: MetricReport
        /// Things the official scripts warn about (e.g. SQuAD questions without a prediction,
        /// scored 0), one line each, for stderr.
        public var warnings: [String]
    }

    public static func score(task: TaskName, data: URL, predictions: URL) throws -> Result {
        switch task {
        case .sst2, .mnli:
            let dataset = try TaskReaders.classification(task, data)
            let gold = dataset.examples.map(\.label)
            let labelled = gold.compactMap { $0 }.count
            guard labelled == gold.count else {
                throw DataError("\(data.path) has \(gold.count - labelled) unlabelled example\(gold.count - labelled == 1 ? "" : "s") (e.g. line \(dataset.examples.first { $0.label == nil }!.line)); score needs a labelled file such as dev.tsv")
            }
            let predicted = try PredictionFiles.classification(predictions, labels: dataset.labels, count: dataset.examples.count)
            let accuracy = Accuracy.score(predicted: predicted, gold: gold)
            return Result(report: .accuracy(task, examples: gold.count, accuracy: accuracy), warnings: [])

        case .conll2003:
            let dataset = try TaskReaders.conll2003(data)
            let predicted = try PredictionFiles.tags(predictions, matching: dataset)
            let scores = ConllEval.evaluate(gold: dataset.sentences.map(\.tags), predicted: predicted)
            return Result(report: .conll(scores, sentences: dataset.sentences.count), warnings: [])

        case .squad:
            let dataset = try TaskReaders.squad(data)
            let answers = try PredictionFiles.squad(predictions)
            let scores = SquadEval.evaluate(dataset.examples, predictions: answers)
            var warnings: [String] = []
            if !scores.missing.isEmpty {
                warnings.append("\(scores.missing.count) of \(scores.questions) questions have no prediction and score 0, as in the official script (first: \(scores.missing[0]))")
            }
            if !scores.unknownIDs.isEmpty {
                warnings.append("\(scores.unknownIDs.count) predictions are for ids not in \(data.lastPathComponent) and were ignored (first: \(scores.unknownIDs[0]))")
            }
            if dataset.skippedUnanswerable > 0 {
                warnings.append("\(dataset.skippedUnanswerable) unanswerable (SQuAD v2) questions skipped; scored as SQuAD v1.1 over the answerable ones")
            }
            return Result(report: .squad(scores), warnings: warnings)
        }
    }
}

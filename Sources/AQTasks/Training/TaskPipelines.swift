import AQBert
import AQTokenizer
import Foundation

/// A task's data turned into features, with evaluation and prediction writers. Built from
/// files; training data is optional (evaluate / predict read only the evaluation file).
public protocol RunnableTask: TaskPipeline {
    /// Metrics report (the `evaluate --json` object) of `model` on the evaluation data.
    func report(model: BertTaskModel, batchSize: Int) throws -> MetricReport
    /// Predictions in the task's output format (JSON Lines, CoNLL layout, predictions.json).
    func predictions(model: BertTaskModel, batchSize: Int, format: PredictionFormat) throws -> String
}

extension RunnableTask {
    public func evaluate(model: BertTaskModel, batchSize: Int) throws -> [String: Double] {
        Dictionary(uniqueKeysWithValues: try report(model: model, batchSize: batchSize).metrics.map { ($0.name, $0.value) })
    }
}

public enum PredictionFormat: String, Sendable, CaseIterable {
    /// sst2/mnli/conll2003: JSON Lines; squad: predictions.json.
    case json
    /// conll2003: the data file's layout with the predicted tag as last column (what `score` reads).
    case conll
}

public enum TaskPipelines {
    /// Reads `train` (optional) and `evaluation` for `task` and builds features.
    /// `modelLabels` (a fine-tuned model's `id2label`) fixes the class ids when given.
    public static func make(task: TaskName, tokenizer: BertTokenizer, arguments: TrainingArguments, train: URL?,
                            evaluation: URL, modelLabels: [String]? = nil) throws -> RunnableTask {
        switch task {
        case .sst2, .mnli:
            return try ClassificationTask(task: task, tokenizer: tokenizer, arguments: arguments, train: train,
                                          evaluation: evaluation, modelLabels: modelLabels)
        case .conll2003:
            return try TaggingTask(tokenizer: tokenizer, arguments: arguments, train: train, evaluation: evaluation,
                                   modelLabels: modelLabels)
        case .squad:
            return try SquadTask(tokenizer: tokenizer, arguments: arguments, train: train, evaluation: evaluation)
        }
    }

    /// Class ids of a model whose `id2label` names the dataset's labels (in any order);
    /// generic names (LABEL_0, ...) mean the dataset's order.
    static func labelOrder(dataset: [String], model: [String]?) throws -> [String] {
        guard let model, Set(model) != Set((0..<model.count).map { "LABEL_\($0)" }) else { return dataset }
        guard Set(dataset).isSubset(of: Set(model)) else {
            throw DataError("the model's labels \(model) do not cover the data's labels \(dataset): was it fine-tuned on this task?")
        }
        return model
    }
}

// MARK: - Sequence classification (SST-2, MNLI)

final class ClassificationTask: RunnableTask {
    let task: TaskName
    let architecture = BertArchitecture.sequenceClassification
    let labels: [String]
    let trainFeatures: [Feature]
    let evalData: ClassificationDataset
    let evalFeatures: [Feature]
    let padId: Int
    var labelNames: [String]? { labels }
    var evaluationExampleCount: Int { evalData.examples.count }
    var primaryMetric: String { task.primaryMetric }

    init(task: TaskName, tokenizer: BertTokenizer, arguments a: TrainingArguments, train: URL?, evaluation: URL,
         modelLabels: [String]?) throws {
        self.task = task
        padId = tokenizer.padTokenId
        evalData = try TaskReaders.classification(task, evaluation)
        let order = try TaskPipelines.labelOrder(dataset: evalData.labels, model: modelLabels)
        labels = order
        // Re-map dataset class ids onto the model's label order.
        func remap(_ d: ClassificationDataset) -> [SentenceExample] {
            d.examples.map { e in
                var e = e
                e.label = e.label.flatMap { order.firstIndex(of: d.labels[$0]) }
                return e
            }
        }
        if let train {
            let data = try TaskReaders.classification(task, train)
            trainFeatures = FeatureBuilder.classification(remap(data), tokenizer: tokenizer, maxLength: a.maxSeqLength)
            if trainFeatures.contains(where: { $0.label == nil }) {
                throw DataError("\(train.path) has unlabelled examples; training needs labels (train.tsv, not test.tsv)")
            }
        } else {
            trainFeatures = []
        }
        evalFeatures = FeatureBuilder.classification(remap(evalData), tokenizer: tokenizer, maxLength: a.maxSeqLength)
    }

    func logits(_ model: BertTaskModel, _ batchSize: Int) throws -> [[Float]] {
        try featureLogits(model: model, features: evalFeatures, batchSize: batchSize, padId: padId)
    }

    func report(model: BertTaskModel, batchSize: Int) throws -> MetricReport {
        let predicted = try logits(model, batchSize).map { l in l.indices.max { l[$0] < l[$1] } ?? 0 }
        let gold = evalFeatures.map { $0.label.map(Int.init) }
        guard gold.allSatisfy({ $0 != nil }) else {
            throw DataError("\(evalData.source) has unlabelled examples; evaluate needs a labelled file (use predict)")
        }
        return .accuracy(task, examples: gold.count, accuracy: Accuracy.score(predicted: predicted, gold: gold))
    }

    func predictions(model: BertTaskModel, batchSize: Int, format: PredictionFormat) throws -> String {
        var out = ""
        for (i, l) in try logits(model, batchSize).enumerated() {
            let p = Postprocess.classProbabilities(l, classes: l.count)[0]
            let best = p.indices.max { p[$0] < p[$1] } ?? 0
            out += PredictionFiles.classificationLine(index: i, label: labels[best], probabilities: p) + "\n"
        }
        return out
    }
}

// MARK: - Token classification (CoNLL-2003)

final class TaggingTask: RunnableTask {
    let task = TaskName.conll2003
    let architecture = BertArchitecture.tokenClassification
    let labels: [String]
    let trainFeatures: [Feature]
    let evalData: TaggingDataset
    let evalFeatures: [Feature]
    let evalAlignments: [WordAlignment]
    let padId: Int
    var labelNames: [String]? { labels }
    var evaluationExampleCount: Int { evalData.sentences.count }
    var primaryMetric: String { task.primaryMetric }

    init(tokenizer: BertTokenizer, arguments a: TrainingArguments, train: URL?, evaluation: URL, modelLabels: [String]?) throws {
        padId = tokenizer.padTokenId
        evalData = try TaskReaders.conll2003(evaluation)
        let trainData = try train.map { try TaskReaders.conll2003($0) }
        if let modelLabels {
            labels = modelLabels
        } else {
            // Train tags (sorted, "O" first) plus any tag only the evaluation file has.
            let base = trainData?.labels ?? evalData.labels
            labels = base + evalData.labels.filter { !base.contains($0) }
        }
        let ids = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, $0.offset) })
        if let trainData {
            trainFeatures = try FeatureBuilder.tokenClassification(trainData.sentences, labelIds: ids, tokenizer: tokenizer,
                                                                   maxLength: a.maxSeqLength).features
        } else {
            trainFeatures = []
        }
        // Evaluation tags unknown to the model are scored as gold but never fed as labels.
        var evalSentences = evalData.sentences
        for i in evalSentences.indices { evalSentences[i].tags = [] }
        (evalFeatures, evalAlignments) = try FeatureBuilder.tokenClassification(evalSentences, labelIds: ids, tokenizer: tokenizer,
                                                                                 maxLength: a.maxSeqLength)
    }

    func predictedTags(_ model: BertTaskModel, _ batchSize: Int) throws -> [[String]] {
        let logits = try featureLogits(model: model, features: evalFeatures, batchSize: batchSize, padId: padId)
        return Postprocess.wordTags(logits: logits, alignments: evalAlignments, labels: labels)
    }

    func report(model: BertTaskModel, batchSize: Int) throws -> MetricReport {
        let scores = ConllEval.evaluate(gold: evalData.sentences.map(\.tags), predicted: try predictedTags(model, batchSize))
        return .conll(scores, sentences: evalData.sentences.count)
    }

    func predictions(model: BertTaskModel, batchSize: Int, format: PredictionFormat) throws -> String {
        let tags = try predictedTags(model, batchSize)
        if format == .conll { return try PredictionFiles.conllText(data: evalData, predicted: tags) }
        var out = ""
        for (i, (s, t)) in zip(evalData.sentences, tags).enumerated() {
            let entities = ConllEval.chunks(t).map { c in
                "{\"type\":\(jsonString(c.type)),\"start\":\(c.start),\"end\":\(c.end),\"text\":\(jsonString(s.words[c.start..<c.end].joined(separator: " ")))}"
            }
            out += "{\"index\":\(i),\"tokens\":[\(s.words.map(jsonString).joined(separator: ","))],\"tags\":[\(t.map(jsonString).joined(separator: ","))],\"entities\":[\(entities.joined(separator: ","))]}\n"
        }
        return out
    }
}

// MARK: - Extractive QA (SQuAD v1.1)

final class SquadTask: RunnableTask {
    let task = TaskName.squad
    let architecture = BertArchitecture.questionAnswering
    let labelNames: [String]? = nil
    let trainFeatures: [Feature]
    let evalData: SquadDataset
    let evalFeatures: [SquadFeature]
    let padId: Int
    let arguments: TrainingArguments
    var evaluationExampleCount: Int { evalData.examples.count }
    var primaryMetric: String { task.primaryMetric }

    init(tokenizer: BertTokenizer, arguments a: TrainingArguments, train: URL?, evaluation: URL) throws {
        padId = tokenizer.padTokenId
        arguments = a
        evalData = try TaskReaders.squad(evaluation)
        if let train {
            let data = try TaskReaders.squad(train)
            trainFeatures = FeatureBuilder.squad(data.examples, tokenizer: tokenizer, maxLength: a.maxSeqLength,
                                                 docStride: a.docStride, training: true).map(\.feature)
        } else {
            trainFeatures = []
        }
        evalFeatures = FeatureBuilder.squad(evalData.examples, tokenizer: tokenizer, maxLength: a.maxSeqLength,
                                            docStride: a.docStride, training: false)
    }

    func answers(_ model: BertTaskModel, _ batchSize: Int) throws -> [String: String] {
        let logits = try featureLogits(model: model, features: evalFeatures.map(\.feature), batchSize: batchSize, padId: padId)
        let start = logits.map { row in stride(from: 0, to: row.count, by: 2).map { row[$0] } }
        let end = logits.map { row in stride(from: 1, to: row.count, by: 2).map { row[$0] } }
        return Postprocess.squadPredictions(examples: evalData.examples, features: evalFeatures, startLogits: start,
                                            endLogits: end, nBest: arguments.nBestSize, maxAnswerLength: arguments.maxAnswerLength)
    }

    func report(model: BertTaskModel, batchSize: Int) throws -> MetricReport {
        .squad(SquadEval.evaluate(evalData.examples, predictions: try answers(model, batchSize)))
    }

    func predictions(model: BertTaskModel, batchSize: Int, format: PredictionFormat) throws -> String {
        PredictionFiles.squadJSON(try answers(model, batchSize))
    }
}

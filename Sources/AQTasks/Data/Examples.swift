import Foundation

/// The tasks aqbert fine-tunes and evaluates (METHOD.md section 7).
public enum TaskName: String, Sendable, CaseIterable, Codable {
    case sst2, mnli, conll2003, squad

    /// The head a task needs.
    public var kind: TaskKind {
        switch self {
        case .sst2, .mnli: return .sequenceClassification
        case .conll2003: return .tokenClassification
        case .squad: return .questionAnswering
        }
    }

    /// The metric that ranks models on the task (the best epoch, the comparison tables):
    /// accuracy for SST-2 and MNLI, entity F1 for CoNLL-2003, F1 for SQuAD.
    public var primaryMetric: String {
        switch self {
        case .sst2, .mnli: return "accuracy"
        case .conll2003, .squad: return "f1"
        }
    }
}

public enum TaskKind: String, Sendable, Codable {
    case sequenceClassification, tokenClassification, questionAnswering
}

/// A user-facing data error; `description` is one line naming the file and line or id.
public struct DataError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One sentence (SST-2) or sentence pair (MNLI) with its gold label index, if labelled.
public struct SentenceExample: Sendable, Equatable {
    public var text: String
    public var pair: String?
    /// Index into the dataset's `labels`; nil for unlabelled data (e.g. GLUE test files).
    public var label: Int?
    /// 1-based line of the source file (for messages).
    public var line: Int

    public init(text: String, pair: String? = nil, label: Int?, line: Int) {
        self.text = text
        self.pair = pair
        self.label = label
        self.line = line
    }
}

/// SST-2 or MNLI examples with their label names (index = class id).
public struct ClassificationDataset: Sendable {
    public var task: TaskName
    /// Label names in class-id order: SST-2 ["negative", "positive"]; MNLI ["entailment", "neutral", "contradiction"].
    public var labels: [String]
    public var examples: [SentenceExample]
    public var source: String

    public init(task: TaskName, labels: [String], examples: [SentenceExample], source: String) {
        self.task = task
        self.labels = labels
        self.examples = examples
        self.source = source
    }
}

/// One CoNLL-2003 sentence: words and their tags (NER column), plus the source lines.
public struct TaggedSentence: Sendable, Equatable {
    public var words: [String]
    public var tags: [String]
    /// The other columns of each word line, kept for writing predictions in the data layout.
    public var columns: [[String]]
    /// 1-based source line of each word.
    public var lines: [Int]

    public init(words: [String], tags: [String], columns: [[String]] = [], lines: [Int] = []) {
        self.words = words
        self.tags = tags
        self.columns = columns
        self.lines = lines
    }
}

/// Tag scheme of a CoNLL file's chunk tags.
public enum TagScheme: String, Sendable, Codable { case iob1, iob2 }

public struct TaggingDataset: Sendable {
    public var sentences: [TaggedSentence]
    /// Every tag seen, sorted with "O" first (the id order a model is trained with).
    public var labels: [String]
    public var scheme: TagScheme
    public var source: String

    public init(sentences: [TaggedSentence], labels: [String], scheme: TagScheme, source: String) {
        self.sentences = sentences
        self.labels = labels
        self.scheme = scheme
        self.source = source
    }
}

/// One SQuAD question with its context and gold answers (character offsets into `context`).
public struct SquadExample: Sendable, Equatable {
    public struct Answer: Sendable, Equatable {
        public var text: String
        /// Offset of the answer in `context`, in Unicode scalars (Python `str` indices, as in the JSON).
        public var start: Int
        public init(text: String, start: Int) {
            self.text = text
            self.start = start
        }
    }

    public var id: String
    public var title: String
    public var context: String
    public var question: String
    public var answers: [Answer]

    public init(id: String, title: String, context: String, question: String, answers: [Answer]) {
        self.id = id
        self.title = title
        self.context = context
        self.question = question
        self.answers = answers
    }
}

public struct SquadDataset: Sendable {
    public var examples: [SquadExample]
    /// Article titles in file order (for article-based splits).
    public var titles: [String]
    /// SQuAD v2 questions marked impossible: reported and skipped.
    public var skippedUnanswerable: Int
    public var version: String
    public var source: String

    public init(examples: [SquadExample], titles: [String], skippedUnanswerable: Int, version: String, source: String) {
        self.examples = examples
        self.titles = titles
        self.skippedUnanswerable = skippedUnanswerable
        self.version = version
        self.source = source
    }
}

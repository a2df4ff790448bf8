/// SQuAD v1.1 exact match and F1, as the official `evaluate-v1.1.py` computes them
/// (rajpurkar.github.io/SQuAD-explorer; the copy in `Scripts/fixtures/make_metric_fixtures.py`
/// is the oracle): answers are normalised (lower-case, drop `string.punctuation`, replace the
/// words a/an/the by a space, split on whitespace), F1 is the token F1 with multiset
/// intersection, both are maxed over the gold answers and averaged over all questions, a
/// question without a prediction scoring 0.
public enum SquadEval {
    /// `normalize_answer`: the normalised tokens (joined by one space, the normalised string).
    public static func normalizedTokens(_ s: String) -> [String] {
        tokens(s).map { String(String.UnicodeScalarView($0)) }
    }

    /// `normalize_answer(s)`.
    public static func normalize(_ s: String) -> String {
        normalizedTokens(s).joined(separator: " ")
    }

    /// `exact_match_score`: the normalised strings are equal, code point by code point.
    public static func exactMatch(prediction: String, groundTruth: String) -> Bool {
        tokens(prediction) == tokens(groundTruth)
    }

    /// `f1_score` in 0...1; 0 when no token is shared (also when both normalise to nothing).
    public static func f1(prediction: String, groundTruth: String) -> Double {
        f1(tokens(prediction), tokens(groundTruth))
    }

    /// Scores of a set of predictions.
    public struct Scores: Sendable, Equatable {
        /// 100 * (sum of per-question max EM) / questions.
        public var exactMatch: Double
        /// 100 * (sum of per-question max F1) / questions.
        public var f1: Double
        /// Questions scored (all questions of the data, answered or not).
        public var questions: Int
        /// Questions without a prediction (scored 0, as the official script does with a warning).
        public var missing: [String]
        /// Predictions whose id is not a question of the data (ignored).
        public var unknownIDs: [String]
    }

    /// `evaluate(dataset, predictions)`: `predictions` maps question id to answer text.
    /// Sums are accumulated in question order, as the script does.
    public static func evaluate(_ examples: [SquadExample], predictions: [String: String]) -> Scores {
        var em = 0
        var f1Sum = 0.0
        var missing: [String] = []
        var ids = Set<String>()
        for example in examples {
            ids.insert(example.id)
            guard let prediction = predictions[example.id] else {
                missing.append(example.id)
                continue
            }
            let p = tokens(prediction)
            let golds = example.answers.map { tokens($0.text) }
            if golds.contains(p) { em += 1 }
            f1Sum += golds.map { f1(p, $0) }.max() ?? 0
        }
        let n = Double(examples.count)
        let unknown = predictions.keys.filter { !ids.contains($0) }.sorted()
        return Scores(exactMatch: examples.isEmpty ? 0 : 100.0 * Double(em) / n,
                      f1: examples.isEmpty ? 0 : 100.0 * f1Sum / n,
                      questions: examples.count, missing: missing, unknownIDs: unknown)
    }

    // MARK: Implementation on Unicode scalars

    typealias Token = [Unicode.Scalar]

    /// lower -> remove punctuation -> remove articles -> split, on scalars.
    static func tokens(_ s: String) -> [Token] {
        var text = PythonText.lower(Array(s.unicodeScalars))
        text.removeAll(where: PythonText.isASCIIPunctuation)
        text = removeArticles(text)
        return text.split(whereSeparator: PythonText.isSpace).map(Array.init)
    }

    /// `re.sub(r'\b(a|an|the)\b', ' ', text)`: with `\b` on both sides, a match is a maximal
    /// run of word characters that is exactly "a", "an" or "the"; it becomes one space.
    static func removeArticles(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        var i = 0
        while i < text.count {
            guard PythonText.isWord(text[i]) else {
                out.append(text[i])
                i += 1
                continue
            }
            var j = i
            while j < text.count && PythonText.isWord(text[j]) { j += 1 }
            let run = text[i..<j]
            if run.elementsEqual(["a"]) || run.elementsEqual(["a", "n"]) || run.elementsEqual(["t", "h", "e"]) {
                out.append(" ")
            } else {
                out.append(contentsOf: run)
            }
            i = j
        }
        return out
    }

    /// Token F1 with `Counter` intersection.
    static func f1(_ prediction: [Token], _ truth: [Token]) -> Double {
        var counts: [Token: Int] = [:]
        for t in truth { counts[t, default: 0] += 1 }
        var same = 0
        for t in prediction {
            if let c = counts[t], c > 0 {
                same += 1
                counts[t] = c - 1
            }
        }
        if same == 0 { return 0 }
        let precision = 1.0 * Double(same) / Double(prediction.count)
        let recall = 1.0 * Double(same) / Double(truth.count)
        return (2 * precision * recall) / (precision + recall)
    }
}

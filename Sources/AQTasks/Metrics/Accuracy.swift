/// Sentence-classification accuracy (SST-2, MNLI) on the 0-100 scale.
public enum Accuracy {
    /// `100 * correct / count`, over the examples that have a gold label (nil = unlabelled, not
    /// counted). `predicted` and `gold` are class ids in the same order.
    public static func score(predicted: [Int], gold: [Int?]) -> Double {
        precondition(predicted.count == gold.count, "one prediction per example")
        var correct = 0, total = 0
        for (p, g) in zip(predicted, gold) {
            guard let g else { continue }
            total += 1
            if p == g { correct += 1 }
        }
        return total == 0 ? 0 : 100.0 * Double(correct) / Double(total)
    }
}

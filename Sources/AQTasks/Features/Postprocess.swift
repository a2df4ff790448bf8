import Foundation

/// Turns model outputs back into task predictions.
public enum Postprocess {
    /// Row-wise softmax of `[N, classes]` logits (row-major, flattened): `[N][classes]`
    /// probabilities, computed as `exp(x - max) / sum` in Double.
    /// - Precondition: `classes > 0` and `logits.count` is a multiple of it.
    public static func classProbabilities(_ logits: [Float], classes: Int) -> [[Float]] {
        precondition(classes > 0 && logits.count % classes == 0,
                     "\(logits.count) logits are not rows of \(classes) classes")
        return stride(from: 0, to: logits.count, by: classes).map { lo in
            let row = logits[lo..<(lo + classes)]
            let top = Double(row.max()!)
            let exps = row.map { exp(Double($0) - top) }
            let sum = exps.reduce(0, +)
            return exps.map { Float($0 / sum) }
        }
    }

    /// Row-wise argmax of `[N, classes]` logits: `[N]` class ids (the first maximum on ties, as
    /// `numpy.argmax`).
    /// - Precondition: `classes > 0` and `logits.count` is a multiple of it.
    public static func predictedClasses(_ logits: [Float], classes: Int) -> [Int] {
        precondition(classes > 0 && logits.count % classes == 0,
                     "\(logits.count) logits are not rows of \(classes) classes")
        return stride(from: 0, to: logits.count, by: classes).map { argmax(logits[$0..<($0 + classes)]) }
    }

    /// Word-level tags, as run_ner's predictions (argmax over labels, kept on the positions that
    /// carry a label, i.e. the first piece of each word).
    ///
    /// - Parameters:
    ///   - logits: per feature, `[T, L]` row-major (flattened), `L = labels.count`; `T` may
    ///     include padding.
    ///   - alignments: the alignments returned with the features, in the same order.
    /// - Returns: per sentence, one tag per word; a word without a token (empty, or truncated
    ///   away) gets "O". (run_ner drops such words from its prediction list instead, which
    ///   misaligns the rest of the sentence for seqeval.)
    public static func wordTags(logits: [[Float]], alignments: [WordAlignment], labels: [String]) -> [[String]] {
        precondition(logits.count == alignments.count, "\(logits.count) logit rows for \(alignments.count) alignments")
        let width = labels.count
        precondition(width > 0, "no labels")
        return zip(logits, alignments).map { rows, alignment in
            alignment.firstToken.map { token in
                guard let token, (token + 1) * width <= rows.count else { return "O" }
                return labels[argmax(rows[(token * width)..<((token + 1) * width)])]
            }
        }
    }

    /// Index (relative to the slice) of the first maximum; NaN counts as the maximum, as in
    /// `numpy.argmax`.
    static func argmax(_ values: ArraySlice<Float>) -> Int {
        var best = values.startIndex
        for i in values.indices {
            if values[best].isNaN { break }
            if values[i].isNaN || values[i] > values[best] { best = i }
        }
        return best - values.startIndex
    }
}

extension Postprocess {
    /// Best answer text per example id, as `postprocess_qa_predictions` of transformers
    /// `examples/pytorch/question-answering/utils_qa.py` with `version_2_with_negative=False`:
    ///
    /// for every window of the example, the `nBest` highest start logits and the `nBest` highest
    /// end logits (over all positions, so `[CLS]`, question and padding positions use up slots
    /// too); every (start, end) pair with both tokens in the context, `start <= end` and
    /// `end - start + 1 <= maxAnswerLength` scores `startLogit + endLogit` (Float); the best
    /// score over all windows wins, the earliest candidate (window, then start rank, then end rank)
    /// on ties (Python's stable sort); the answer is `context[offsets[start].start ..<
    /// offsets[end].end]` in Unicode scalars. No candidate at all gives the literal text "empty"
    /// (utils_qa's fallback), as does a single candidate with an empty text.
    ///
    /// utils_qa ignores `token_is_max_context` unless a feature carries it (run_qa's never do);
    /// `requireMaxContext: true` applies it, as the original BERT `run_squad.py` does, skipping
    /// starts whose `tokenIsMaxContext` is false.
    ///
    /// - Parameters:
    ///   - examples: the examples the features were built from (`Feature.exampleIndex` indexes
    ///     this array).
    ///   - startLogits, endLogits: per feature, the logits of its `T` tokens, or of the padded
    ///     row; positions past the feature's tokens count as outside the context. For exact parity
    ///     with run_qa pass the padded rows its model saw (`max_length` positions): the padding
    ///     positions take part in the top-`nBest` selection. Ties between equal logits rank the
    ///     later position first (a stable ascending sort, reversed); numpy's unstable `argsort`
    ///     leaves that order unspecified.
    public static func squadPredictions(examples: [SquadExample], features: [SquadFeature], startLogits: [[Float]],
                                        endLogits: [[Float]], nBest: Int = 20, maxAnswerLength: Int = 30,
                                        requireMaxContext: Bool = false) -> [String: String] {
        precondition(startLogits.count == features.count && endLogits.count == features.count,
                     "\(startLogits.count) start and \(endLogits.count) end logit rows for \(features.count) features")
        var featuresOf = [[Int]](repeating: [], count: examples.count)
        for (f, feature) in features.enumerated() {
            let e = feature.feature.exampleIndex
            precondition(e >= 0 && e < examples.count, "feature \(f) refers to example \(e) of \(examples.count)")
            featuresOf[e].append(f)
        }
        var predictions: [String: String] = [:]
        predictions.reserveCapacity(examples.count)
        for (e, example) in examples.enumerated() {
            var best: (score: Float, start: Int, end: Int)?
            var candidates = 0
            for f in featuresOf[e] {
                let feature = features[f]
                let starts = topIndices(startLogits[f], count: nBest)
                let ends = topIndices(endLogits[f], count: nBest)
                let n = feature.offsets.count
                for s in starts where s < n {
                    guard let startOffset = feature.offsets[s] else { continue }
                    if requireMaxContext && !feature.tokenIsMaxContext[s] { continue }
                    for t in ends where t < n && t >= s && t - s + 1 <= maxAnswerLength {
                        guard let endOffset = feature.offsets[t] else { continue }
                        let score = startLogits[f][s] + endLogits[f][t]
                        candidates += 1
                        if best == nil || score > best!.score {
                            best = (score, startOffset.start, endOffset.end)
                        }
                    }
                }
            }
            var text = "empty"
            if let best {
                let answer = substring(example.context, best.start, best.end)
                if !(answer.isEmpty && min(candidates, nBest) == 1) { text = answer }
            }
            predictions[example.id] = text
        }
        return predictions
    }

    /// Indices of the `count` largest values, largest first: `numpy.argsort(v)[-1:-count-1:-1]`
    /// with ties ranked as a stable sort would (later index first); NaN ranks above everything,
    /// as numpy sorts it last.
    static func topIndices(_ values: [Float], count: Int) -> [Int] {
        guard count > 0 else { return [] }
        @inline(__always) func above(_ i: Int, _ j: Int) -> Bool {
            let a = values[i], b = values[j]
            if a.isNaN || b.isNaN { return a.isNaN && (!b.isNaN || i > j) }
            return a > b || (a == b && i > j)
        }
        var top: [Int] = []
        top.reserveCapacity(count + 1)
        for i in values.indices {
            if top.count == count && !above(i, top[count - 1]) { continue }
            var k = top.count
            while k > 0 && above(i, top[k - 1]) { k -= 1 }
            top.insert(i, at: k)
            if top.count > count { top.removeLast() }
        }
        return top
    }

    /// Python `context[start:end]` (Unicode scalar indices, clamped, empty when `end <= start`).
    static func substring(_ context: String, _ start: Int, _ end: Int) -> String {
        let scalars = context.unicodeScalars
        let n = scalars.count
        let lo = max(0, min(start, n)), hi = max(0, min(end, n))
        guard lo < hi else { return "" }
        let a = scalars.index(scalars.startIndex, offsetBy: lo)
        let b = scalars.index(a, offsetBy: hi - lo)
        return String(scalars[a..<b])
    }
}

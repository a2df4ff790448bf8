import AQTokenizer

extension FeatureBuilder {
    /// SQuAD windows, as run_qa's `prepare_train_features` / `prepare_validation_features`
    /// (transformers `examples/pytorch/question-answering/run_qa.py`):
    /// `tokenizer(question.lstrip(), context, truncation="only_second", max_length=maxLength,
    /// stride=docStride, return_overflowing_tokens=True, return_offsets_mapping=True)`.
    ///
    /// Windows (tokenizers `Encoding::truncate` with a stride): a context of `C` tokens after a
    /// question of `Q` tokens is kept whole when `Q + C + 3 <= maxLength`; otherwise each window
    /// holds `W = maxLength - Q - 3` context tokens, windows start at `0, W - docStride,
    /// 2(W - docStride), ...` (consecutive windows share `docStride` tokens) and the last one is
    /// the first that reaches the end of the context (it may be shorter).
    ///
    /// Questions are not truncated, as in run_qa (the original BERT `run_squad.py` cuts them to
    /// `max_query_length` 64 tokens). Where run_qa would fail instead, because the question
    /// leaves no more than `docStride` context tokens per window (tokenizers asserts
    /// `stride < max_len`), the question is cut to `maxQueryLength` tokens, and further if still
    /// needed, so that windows hold `docStride + 1` context tokens.
    ///
    /// Training targets (`training == true`) follow run_qa on the first gold answer's character
    /// span `[start, start + count)` (Unicode scalars): the start token is the last context token
    /// starting at or before `start`, the end token the first context token ending at or after
    /// the span's end; (0, 0) (`[CLS]`) when the span is not inside the window's context or the
    /// example has no answer. Validation rows (`training == false`) leave both nil. One deliberate
    /// difference: when the answer starts in the window's last context token, run_qa's scan runs
    /// past the context ("edge case" in its comments) and labels the start on `[SEP]` (or the last
    /// padding token when padding to max length), after the end; here it is that last context
    /// token.
    ///
    /// Meant for `0 <= docStride` and `docStride + 4 <= maxLength` (what `TrainingArguments.validate`
    /// enforces); outside that, windows still hold one context token and advance by one, so the
    /// cost stays linear in the context.
    public static func squad(_ examples: [SquadExample], tokenizer: BertTokenizer, maxLength: Int = 384,
                             docStride: Int = 128, maxQueryLength: Int = 64, training: Bool) -> [SquadFeature] {
        let settings = SquadWindowing(maxLength: maxLength, docStride: docStride, maxQueryLength: maxQueryLength)
        // Questions about one paragraph are adjacent in SQuAD files: chunks of 32 examples reuse
        // the previous context's tokens.
        let chunk = 32
        let perChunk: [[SquadFeature]] = parallelMap((examples.count + chunk - 1) / chunk, chunk: 1) { c in
            var out: [SquadFeature] = []
            var previous: (text: String, encoding: Encoding)?
            for i in (c * chunk)..<min(examples.count, (c + 1) * chunk) {
                let example = examples[i]
                let context: Encoding
                if let previous, previous.text == example.context {
                    context = previous.encoding
                } else {
                    context = tokenizer.encode(example.context, addSpecialTokens: false)
                    previous = (example.context, context)
                }
                out += squadFeatures(example, context: context, index: i, tokenizer: tokenizer, settings: settings,
                                     training: training)
            }
            return out
        }
        return perChunk.flatMap { $0 }
    }

    /// The windows of one example, given its context's tokens (`encode(context, addSpecialTokens: false)`).
    static func squadFeatures(_ example: SquadExample, context: Encoding, index: Int, tokenizer: BertTokenizer,
                              settings: SquadWindowing, training: Bool) -> [SquadFeature] {
        let question = tokenizer.encode(leftStripped(example.question), addSpecialTokens: false).ids
        let (questionCount, windows) = settings.windows(questionTokens: question.count, contextTokens: context.count)
        let q = Array(question.prefix(questionCount))
        let lead = [tokenizer.clsTokenId] + q + [tokenizer.sepTokenId]

        var target: (start: Int, end: Int)?
        if training, let answer = example.answers.first {
            target = (answer.start, answer.start + answer.text.unicodeScalars.count)
        }
        let maxContextWindow = maxContextWindows(windows, contextTokens: context.count)
        var features: [SquadFeature] = []
        features.reserveCapacity(windows.count)
        for (w, window) in windows.enumerated() {
            let ids = lead + context.ids[window] + [tokenizer.sepTokenId]
            let contextTokens = lead.count..<(lead.count + window.count)
            var offsets = [TokenOffset?](repeating: nil, count: ids.count)
            var maxContext = [Bool](repeating: false, count: ids.count)
            for k in 0..<window.count {
                offsets[lead.count + k] = context.offsets[window.lowerBound + k]
                maxContext[lead.count + k] = maxContextWindow[window.lowerBound + k] == w
            }
            var feature = Feature(inputIds: ids,
                                  typeIds: [Int](repeating: 0, count: lead.count)
                                      + [Int](repeating: 1, count: window.count + 1),
                                  exampleIndex: index)
            if training {
                let (start, end) = target.map { answerTokens($0.start, $0.end, offsets: offsets, context: contextTokens) } ?? (0, 0)
                feature.startPosition = Int32(start)
                feature.endPosition = Int32(end)
            }
            features.append(SquadFeature(feature: feature, offsets: offsets, tokenIsMaxContext: maxContext, window: w,
                                         contextStart: window.lowerBound, contextTokens: contextTokens,
                                         exampleId: example.id))
        }
        return features
    }

    /// run_qa's labelling loop for a character span `[startChar, endChar)`; see `squad`.
    static func answerTokens(_ startChar: Int, _ endChar: Int, offsets: [TokenOffset?],
                             context: Range<Int>) -> (Int, Int) {
        guard let first = context.first, let last = context.last,
              let firstOffset = offsets[first], let lastOffset = offsets[last],
              firstOffset.start <= startChar && lastOffset.end >= endChar else { return (0, 0) }
        var start = first
        // run_qa scans on through [SEP] and padding here; stopping at the context is the fix.
        while start <= last, let o = offsets[start], o.start <= startChar { start += 1 }
        var end = last
        while end >= first, let o = offsets[end], o.end >= endChar { end -= 1 }
        return (start - 1, end + 1)
    }

    /// `_check_is_max_context` of the original BERT `run_squad.py` for every context token at
    /// once: the window where the token has the most context, scored min(left, right) + 0.01 x
    /// window length (ties: the earlier window). One pass over the windows' tokens, so the cost is
    /// the size of the features themselves (asking per token and window would cost windows^2 x
    /// width for a long context whose windows move by a few tokens).
    static func maxContextWindows(_ windows: [Range<Int>], contextTokens: Int) -> [Int] {
        var best = [Int](repeating: -1, count: contextTokens)
        var bestScore = [Double](repeating: -Double.infinity, count: contextTokens)
        for (w, window) in windows.enumerated() {
            for position in window {
                let left = position - window.lowerBound
                let right = window.upperBound - 1 - position
                let score = Double(min(left, right)) + 0.01 * Double(window.count)
                if best[position] < 0 || score > bestScore[position] {
                    bestScore[position] = score
                    best[position] = w
                }
            }
        }
        return best
    }

    /// Python `str.lstrip()`: drops leading characters for which `str.isspace()` holds (Unicode
    /// White_Space plus the separators U+001C...U+001F).
    static func leftStripped(_ s: String) -> String {
        let scalars = s.unicodeScalars
        guard let i = scalars.firstIndex(where: { !($0.properties.isWhitespace || (0x1C...0x1F).contains($0.value)) }) else {
            return ""
        }
        return String(scalars[i...])
    }
}

/// How SQuAD contexts are cut into windows (see `FeatureBuilder.squad`).
struct SquadWindowing: Sendable {
    var maxLength: Int
    var docStride: Int
    var maxQueryLength: Int

    /// The number of question tokens kept and the context token ranges of the windows.
    func windows(questionTokens: Int, contextTokens: Int) -> (Int, [Range<Int>]) {
        var q = questionTokens
        if q + contextTokens + 3 > maxLength && maxLength - 3 - q <= docStride {
            // run_qa would fail here (stride >= window, or a question longer than max length).
            q = min(q, maxQueryLength)
            if maxLength - 3 - q <= docStride { q = maxLength - 4 - docStride }
        }
        q = max(q, 0)
        if q + contextTokens + 3 <= maxLength { return (q, [0..<contextTokens]) }
        // At least one context token per window and one token of progress per window, whatever
        // the settings (`TrainingArguments.validate` refuses settings that would need this).
        let width = max(maxLength - 3 - q, 1)
        let step = max(width - docStride, 1)
        var windows: [Range<Int>] = []
        var start = 0
        while true {
            let stop = min(start + width, contextTokens)
            windows.append(start..<stop)
            if stop == contextTokens { break }
            start += step
        }
        return (q, windows)
    }
}

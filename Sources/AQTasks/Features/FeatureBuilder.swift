import Foundation
import AQTokenizer

/// Turns task examples into model rows the way the Hugging Face example scripts do
/// (transformers `examples/pytorch/text-classification/run_glue.py`,
/// `token-classification/run_ner.py`, `question-answering/run_qa.py`), with a
/// `BertTokenizerFast`-equivalent tokenizer. Rows are unpadded; batching pads them.
public enum FeatureBuilder {
    /// Sentence or sentence-pair rows, as run_glue's `preprocess_function`:
    /// `tokenizer(text, pair, truncation=True, max_length=maxLength)`, i.e. `longest_first`
    /// truncation of the pair.
    ///
    /// run_glue tokenizes batches, where an empty `pair` still counts as a pair
    /// (`[CLS] A [SEP] [SEP]`); `BertTokenizer.encode` follows the single-call convention
    /// (empty pair = no pair), so an empty pair is passed as a blank one here.
    public static func classification(_ examples: [SentenceExample], tokenizer: BertTokenizer,
                                      maxLength: Int) -> [Feature] {
        parallelMap(examples.count) { i in
            let example = examples[i]
            let pair = example.pair.map { $0.isEmpty ? " " : $0 }
            let encoding = tokenizer.encode(example.text, pair: pair, maxLength: maxLength, truncation: .longestFirst)
            return Feature(inputIds: encoding.ids, typeIds: encoding.typeIds, label: example.label.map { Int32($0) },
                           exampleIndex: i)
        }
    }

    /// Token-classification rows, as run_ner's `tokenize_and_align_labels` with
    /// `label_all_tokens=False`: `tokenizer(words, is_split_into_words=True, truncation=True,
    /// max_length=maxLength)`. Each word is tokenized on its own (so a word holding a space or
    /// punctuation becomes several pieces of the same word); the word's tag id goes on its first
    /// piece, `Feature.ignoredLabel` on the others and on `[CLS]`/`[SEP]`; pieces beyond
    /// `maxLength - 2` are cut.
    ///
    /// Sentences without tags (unlabelled data) get `tokenLabels == nil`.
    /// - Throws: `DataError` naming the line for a tag missing from `labelIds`, or when a
    ///   sentence's tag count differs from its word count.
    public static func tokenClassification(_ sentences: [TaggedSentence], labelIds: [String: Int],
                                           tokenizer: BertTokenizer,
                                           maxLength: Int) throws -> (features: [Feature], alignments: [WordAlignment]) {
        // Labels first, so errors come out in file order.
        var tagIds: [[Int32]?] = []
        tagIds.reserveCapacity(sentences.count)
        for (s, sentence) in sentences.enumerated() {
            if sentence.tags.isEmpty {
                tagIds.append(nil)
                continue
            }
            guard sentence.tags.count == sentence.words.count else {
                throw DataError("\(location(sentence, s, 0)): \(sentence.tags.count) tags for \(sentence.words.count) words")
            }
            var ids: [Int32] = []
            ids.reserveCapacity(sentence.tags.count)
            for (w, tag) in sentence.tags.enumerated() {
                guard let id = labelIds[tag] else {
                    throw DataError("\(location(sentence, s, w)): tag \(tag) is not one of the model's labels (\(labelIds.keys.sorted().joined(separator: ", ")))")
                }
                ids.append(Int32(id))
            }
            tagIds.append(ids)
        }

        let rows: [(Feature, WordAlignment)] = parallelMap(sentences.count) { s in
            taggedRow(sentences[s], tags: tagIds[s], index: s, tokenizer: tokenizer, maxLength: maxLength)
        }
        return (rows.map { $0.0 }, rows.map { $0.1 })
    }

    static func taggedRow(_ sentence: TaggedSentence, tags: [Int32]?, index: Int, tokenizer: BertTokenizer,
                          maxLength: Int) -> (Feature, WordAlignment) {
        var pieces: [Int] = []
        var pieceWord: [Int] = []
        for (w, word) in sentence.words.enumerated() {
            let ids = tokenizer.encode(word, addSpecialTokens: false).ids
            pieces += ids
            pieceWord += repeatElement(w, count: ids.count)
        }
        // `truncate_encodings` with one sequence: keep `maxLength - 2`; a negative budget
        // wraps around in Hugging Face's unsigned arithmetic and means no truncation.
        let budget = maxLength - tokenizer.numberOfSpecialTokens(pair: false)
        if budget >= 0 && pieces.count > budget {
            pieces.removeSubrange(budget...)
            pieceWord.removeSubrange(budget...)
        }
        let ids = [tokenizer.clsTokenId] + pieces + [tokenizer.sepTokenId]
        var firstToken = [Int?](repeating: nil, count: sentence.words.count)
        var labels: [Int32] = [Feature.ignoredLabel]
        var previous = -1
        for (k, w) in pieceWord.enumerated() {
            if w != previous {
                firstToken[w] = k + 1
                labels.append(tags?[w] ?? Feature.ignoredLabel)
            } else {
                labels.append(Feature.ignoredLabel)
            }
            previous = w
        }
        labels.append(Feature.ignoredLabel)
        let feature = Feature(inputIds: ids, typeIds: [Int](repeating: 0, count: ids.count),
                              tokenLabels: tags == nil ? nil : labels, exampleIndex: index)
        return (feature, WordAlignment(firstToken: firstToken))
    }

    private static func location(_ sentence: TaggedSentence, _ s: Int, _ w: Int) -> String {
        if w < sentence.lines.count { return "line \(sentence.lines[w])" }
        return "sentence \(s + 1)"
    }

    /// `(0..<count).map(transform)`, in parallel chunks for large inputs; results in order.
    static func parallelMap<T>(_ count: Int, chunk: Int = 128, _ transform: (Int) -> T) -> [T] {
        if count <= chunk { return (0..<count).map(transform) }
        let chunks = (count + chunk - 1) / chunk
        let box = ChunkBox<T>(count: chunks)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * chunk, hi = min(count, lo + chunk)
            box.set(c, (lo..<hi).map(transform))
        }
        return box.flattened()
    }
}

/// Per-chunk results of `parallelMap` (each slot written by one iteration, under a lock).
final class ChunkBox<T>: @unchecked Sendable {
    private var slots: [[T]]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: [], count: count) }

    func set(_ index: Int, _ values: [T]) {
        lock.lock()
        slots[index] = values
        lock.unlock()
    }

    func flattened() -> [T] {
        lock.lock()
        defer { lock.unlock() }
        return slots.flatMap { $0 }
    }
}

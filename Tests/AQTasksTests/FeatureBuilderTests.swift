import XCTest
import AQTokenizer
@testable import AQTasks

/// Sequence- and token-classification rows against run_glue / run_ner preprocessing.
final class FeatureBuilderTests: XCTestCase {
    func testClassificationMatchesRunGlue() throws {
        let fixture = try FeatureFixtures.load("classification.json", as: FeatureFixtures.Classification.self)
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 50)
        var truncatedPairs = 0
        for (i, c) in fixture.cases.enumerated() {
            let example = SentenceExample(text: c.text, pair: c.pair, label: c.label, line: i + 1)
            let features = FeatureBuilder.classification([example], tokenizer: FeatureFixtures.tokenizer,
                                                         maxLength: c.max_length)
            XCTAssertEqual(features.count, 1)
            let f = features[0]
            XCTAssertEqual(f.inputIds, c.input_ids, "case \(i) at \(c.max_length): \(c.text)")
            XCTAssertEqual(f.typeIds, FeatureFixtures.typeIds(count: c.input_ids.count, type0: c.type0), "case \(i)")
            XCTAssertEqual(f.label, c.label.map { Int32($0) }, "case \(i)")
            XCTAssertEqual(f.exampleIndex, 0)
            XCTAssertNil(f.tokenLabels)
            XCTAssertNil(f.startPosition)
            if c.pair != nil && c.input_ids.count == c.max_length { truncatedPairs += 1 }
        }
        XCTAssertGreaterThan(truncatedPairs, 5, "the fixture should exercise longest_first")
    }

    func testClassificationBatchKeepsOrder() throws {
        let fixture = try FeatureFixtures.load("classification.json", as: FeatureFixtures.Classification.self)
        // Enough rows to take the parallel path; all at one length.
        let cases = Array(repeating: fixture.cases.filter { $0.max_length == 128 }, count: 6).joined()
        let examples = cases.enumerated().map { SentenceExample(text: $1.text, pair: $1.pair, label: $1.label, line: $0) }
        let features = FeatureBuilder.classification(examples, tokenizer: FeatureFixtures.tokenizer, maxLength: 128)
        XCTAssertGreaterThan(features.count, 128)
        for (i, (f, c)) in zip(features, cases).enumerated() {
            XCTAssertEqual(f.inputIds, c.input_ids, "row \(i)")
            XCTAssertEqual(f.exampleIndex, i)
        }
    }

    func testTokenClassificationMatchesRunNer() throws {
        let fixture = try FeatureFixtures.load("tagging.json", as: FeatureFixtures.Tagging.self)
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 50)
        let labelIds = Dictionary(uniqueKeysWithValues: fixture.labels.enumerated().map { ($1, $0) })
        var truncated = 0, wordless = 0
        for (i, c) in fixture.cases.enumerated() {
            let sentence = TaggedSentence(words: c.words, tags: c.tags)
            let (features, alignments) = try FeatureBuilder.tokenClassification(
                [sentence], labelIds: labelIds, tokenizer: FeatureFixtures.tokenizer, maxLength: c.max_length)
            let f = features[0]
            XCTAssertEqual(f.inputIds, c.input_ids, "case \(i): \(c.words)")
            XCTAssertEqual(f.tokenLabels, c.labels, "case \(i): \(c.words)")
            XCTAssertEqual(f.typeIds, [Int](repeating: 0, count: c.input_ids.count))
            let expected: [Int?] = c.words.indices.map { w in c.word_ids.firstIndex(of: w) }
            XCTAssertEqual(alignments[0].firstToken, expected, "case \(i): \(c.words)")
            if c.input_ids.count == c.max_length { truncated += 1 }
            let lastWord = c.word_ids.compactMap { $0 }.max() ?? -1
            if expected.prefix(max(0, lastWord)).contains(where: { $0 == nil }) { wordless += 1 }
        }
        XCTAssertGreaterThan(truncated, 3, "the fixture should truncate some sentences")
        XCTAssertGreaterThan(wordless, 1, "the fixture should hold words without tokens")
    }

    func testTokenClassificationBatchAndUnlabelled() throws {
        let fixture = try FeatureFixtures.load("tagging.json", as: FeatureFixtures.Tagging.self)
        let labelIds = Dictionary(uniqueKeysWithValues: fixture.labels.enumerated().map { ($1, $0) })
        let cases = fixture.cases.filter { $0.max_length == 128 }
        var sentences = Array(repeating: cases.map { TaggedSentence(words: $0.words, tags: $0.tags) }, count: 5)
            .flatMap { $0 }
        sentences[1].tags = []
        let (features, alignments) = try FeatureBuilder.tokenClassification(
            sentences, labelIds: labelIds, tokenizer: FeatureFixtures.tokenizer, maxLength: 128)
        XCTAssertEqual(features.count, sentences.count)
        XCTAssertEqual(alignments.count, sentences.count)
        for (i, f) in features.enumerated() {
            let c = cases[i % cases.count]
            XCTAssertEqual(f.inputIds, c.input_ids, "row \(i)")
            XCTAssertEqual(f.exampleIndex, i)
            XCTAssertEqual(f.tokenLabels, i == 1 ? nil : c.labels, "row \(i)")
        }
    }

    func testTokenClassificationErrorsNameTheLine() {
        let tokenizer = FeatureFixtures.tokenizer
        let unknown = TaggedSentence(words: ["Paris", "is"], tags: ["B-LOC", "O"], lines: [7, 8])
        XCTAssertThrowsError(try FeatureBuilder.tokenClassification([unknown], labelIds: ["O": 0], tokenizer: tokenizer,
                                                                    maxLength: 16)) { error in
            XCTAssertEqual((error as? DataError)?.description, "line 7: tag B-LOC is not one of the model's labels (O)")
        }
        let short = TaggedSentence(words: ["a", "b"], tags: ["O"])
        XCTAssertThrowsError(try FeatureBuilder.tokenClassification([short], labelIds: ["O": 0], tokenizer: tokenizer,
                                                                    maxLength: 16)) { error in
            XCTAssertEqual((error as? DataError)?.description, "sentence 1: 1 tags for 2 words")
        }
    }

    func testTokenClassificationTinyMaxLength() throws {
        let tokenizer = FeatureFixtures.tokenizer
        let sentence = TaggedSentence(words: ["hello", "world"], tags: ["O", "O"])
        // maxLength 2 leaves no word; below the special-token count nothing is cut (Hugging Face).
        let (two, twoAlign) = try FeatureBuilder.tokenClassification([sentence], labelIds: ["O": 0], tokenizer: tokenizer,
                                                                     maxLength: 2)
        XCTAssertEqual(two[0].inputIds, [tokenizer.clsTokenId, tokenizer.sepTokenId])
        XCTAssertEqual(twoAlign[0].firstToken, [nil, nil])
        let (one, _) = try FeatureBuilder.tokenClassification([sentence], labelIds: ["O": 0], tokenizer: tokenizer,
                                                              maxLength: 1)
        XCTAssertEqual(one[0].count, 4)
    }
}

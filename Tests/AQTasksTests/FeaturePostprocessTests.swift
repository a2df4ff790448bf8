import XCTest
import AQTokenizer
@testable import AQTasks

/// Argmax, softmax, word tags and the SQuAD span helpers.
final class FeaturePostprocessTests: XCTestCase {
    func testClassProbabilities() {
        let p = Postprocess.classProbabilities([0, 0, 1000, 1001, -3, 2], classes: 2)
        XCTAssertEqual(p.count, 3)
        XCTAssertEqual(p[0], [0.5, 0.5])
        XCTAssertEqual(p[1][0], Float(1 / (1 + exp(1.0))), accuracy: 1e-7)
        XCTAssertEqual(p[1][1], Float(exp(1.0) / (1 + exp(1.0))), accuracy: 1e-7)
        XCTAssertEqual(p[2][1], Float(1 / (1 + exp(-5.0))), accuracy: 1e-7)
        for row in p { XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-6) }
    }

    func testPredictedClassesTakeTheFirstMaximum() {
        XCTAssertEqual(Postprocess.predictedClasses([1, 3, 3, 0, -1, -2, 5, 5, 5], classes: 3), [1, 0, 0])
        XCTAssertEqual(Postprocess.predictedClasses([1, .nan, 3], classes: 3), [1])
        XCTAssertEqual(Postprocess.predictedClasses([], classes: 3), [])
    }

    func testWordTags() {
        let labels = ["O", "B-PER", "I-PER"]
        // Feature 0: [CLS] w0 w0## w1 [SEP] [PAD]; word 2 truncated away.
        let rows: [[Float]] = [
            [9, 0, 0,  0, 5, 1,  0, 0, 7,  0, 1, 3,  9, 0, 0,  0, 9, 0],
            [1, 0, 0,  0, 0, 2],
        ]
        let alignments = [WordAlignment(firstToken: [1, 3, nil]), WordAlignment(firstToken: [nil, 1, 7])]
        XCTAssertEqual(Postprocess.wordTags(logits: rows, alignments: alignments, labels: labels),
                       [["B-PER", "I-PER", "O"], ["O", "I-PER", "O"]])
    }

    func testTopIndicesMirrorReversedArgsort() {
        XCTAssertEqual(Postprocess.topIndices([0.5, 2, -1, 2, 7, 0.5], count: 3), [4, 3, 1])
        XCTAssertEqual(Postprocess.topIndices([0.5, 2, -1, 2, 7, 0.5], count: 10), [4, 3, 1, 5, 0, 2])
        XCTAssertEqual(Postprocess.topIndices([1, .nan, 3], count: 2), [1, 2])
        XCTAssertEqual(Postprocess.topIndices([1, 2], count: 0), [])
        // Against a full sort on a larger row.
        var logits = FixtureLogits(seed: 7)
        let row = logits.row(384)
        let sorted = row.indices.sorted { row[$0] > row[$1] }
        XCTAssertEqual(Postprocess.topIndices(row, count: 20), Array(sorted.prefix(20)))
    }

    func testSubstringUsesScalarIndices() {
        let context = "e\u{301}t\u{E9} 🇫🇷 café"
        XCTAssertEqual(Postprocess.substring(context, 0, 2), "e\u{301}")
        XCTAssertEqual(Postprocess.substring(context, 5, 7), "🇫🇷")
        XCTAssertEqual(Postprocess.substring(context, 8, 100), "café")
        XCTAssertEqual(Postprocess.substring(context, 4, 4), "")
        XCTAssertEqual(Postprocess.substring(context, 6, 3), "")
    }

    func testSquadPredictionsRulesAndFallback() {
        let example = SquadExample(id: "a", title: "t", context: "alpha beta gamma", question: "q?", answers: [])
        // [CLS] q ? [SEP] alpha beta gamma [SEP]
        let offsets: [TokenOffset?] = [nil, nil, nil, nil, TokenOffset(0, 5), TokenOffset(6, 10), TokenOffset(11, 16), nil]
        let feature = SquadFeature(feature: Feature(inputIds: Array(repeating: 1, count: 8), typeIds: Array(repeating: 0, count: 8),
                                                    exampleIndex: 0),
                                   offsets: offsets, tokenIsMaxContext: offsets.map { $0 != nil && $0!.start > 0 },
                                   window: 0, contextStart: 0, contextTokens: 4..<7, exampleId: "a")
        func predict(_ s: [Float], _ e: [Float], nBest: Int = 20, maxAnswer: Int = 30, maxContext: Bool = false) -> String? {
            Postprocess.squadPredictions(examples: [example], features: [feature], startLogits: [s], endLogits: [e],
                                         nBest: nBest, maxAnswerLength: maxAnswer, requireMaxContext: maxContext)["a"]
        }
        let s: [Float] = [9, 8, 0, 0, 5, 1, 0, 0]
        let e: [Float] = [9, 0, 0, 0, 0, 1, 4, 0]
        XCTAssertEqual(predict(s, e), "alpha beta gamma")
        XCTAssertEqual(predict(s, e, maxAnswer: 2), "alpha beta")
        XCTAssertEqual(predict(s, e, maxContext: true), "beta gamma")
        // The top-2 starts are [CLS] and a question token: nothing valid.
        XCTAssertEqual(predict(s, e, nBest: 2), "empty")
        // End before start only.
        XCTAssertEqual(predict([0, 0, 0, 0, 0, 0, 9, 0], [0, 0, 0, 0, 9, 0, 0, 0], nBest: 1), "empty")
        // Equal scores keep the first candidate in start-rank order: (6, 6) before (4, 4).
        XCTAssertEqual(predict([0, 0, 0, 0, 2, 0, 3, 0], [0, 0, 0, 0, 3, 0, 2, 0]), "gamma")
        XCTAssertEqual(predict([0, 0, 0, 0, 3, 0, 2, 0], [0, 0, 0, 0, 2, 0, 3, 0]), "alpha beta gamma")
        // Logits shorter than the row (unpadded) and longer (padded) are both accepted.
        XCTAssertEqual(predict(Array(s.prefix(6)), Array(e.prefix(7))), "alpha beta gamma")
        XCTAssertEqual(predict(s + [100], e + [100]), "alpha beta gamma")
    }
}

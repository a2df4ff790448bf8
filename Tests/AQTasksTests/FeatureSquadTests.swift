import XCTest
import AQTokenizer
@testable import AQTasks

/// SQuAD windows, labels, offsets and post-processing against run_qa / utils_qa.
final class FeatureSquadTests: XCTestCase {
    typealias Fixtures = FeatureFixtures

    private func build(_ config: FeatureFixtures.SquadConfig, training: Bool) -> ([SquadExample], [SquadFeature]) {
        let all = Fixtures.squad.examples
        let examples = config.examples.map { all[$0].example }
        let features = FeatureBuilder.squad(examples, tokenizer: Fixtures.tokenizer, maxLength: config.max_length,
                                            docStride: config.stride, training: training)
        return (examples, features)
    }

    func testTrainFeaturesMatchRunQa() {
        var windows = 0, edges = 0, labelled = 0
        for config in Fixtures.squad.configs {
            let (_, features) = build(config, training: true)
            XCTAssertEqual(features.count, config.features.count, "\(config.max_length)/\(config.stride)")
            for (i, (ours, hf)) in zip(features, config.features).enumerated() {
                let f = ours.feature
                let what = "\(config.max_length)/\(config.stride) feature \(i)"
                XCTAssertEqual(config.examples[f.exampleIndex], hf.example, what)
                XCTAssertEqual(f.inputIds, hf.input_ids, what)
                XCTAssertEqual(f.typeIds, Fixtures.typeIds(count: hf.input_ids.count, type0: hf.type0), what)
                XCTAssertEqual(ours.window, hf.window, what)
                XCTAssertEqual(f.endPosition, hf.end, what)
                if hf.edge == true {
                    // run_qa's start runs past the context onto [SEP]/padding; ours stops on the
                    // last context token, where the answer starts.
                    XCTAssertGreaterThanOrEqual(Int(hf.start), hf.input_ids.count - 1, what)
                    XCTAssertEqual(f.startPosition, Int32(hf.input_ids.count - 2), what)
                    edges += 1
                } else {
                    XCTAssertEqual(f.startPosition, hf.start, what)
                }
                if hf.start != 0 { labelled += 1 }
                XCTAssertNil(f.label)
                XCTAssertNil(f.tokenLabels)
            }
            windows += features.filter { $0.window > 0 }.count
        }
        XCTAssertGreaterThan(windows, 40, "fixtures should hold many overflow windows")
        XCTAssertGreaterThanOrEqual(edges, 1)
        XCTAssertGreaterThan(labelled, 40)
    }

    func testValidationFeaturesMatchRunQa() {
        let contextOffsets = Fixtures.squad.context_offsets
        for config in Fixtures.squad.configs {
            let (examples, features) = build(config, training: false)
            XCTAssertEqual(features.count, config.features.count)
            for (i, (ours, hf)) in zip(features, config.features).enumerated() {
                let what = "\(config.max_length)/\(config.stride) feature \(i)"
                XCTAssertEqual(ours.feature.inputIds, hf.input_ids, what)
                XCTAssertNil(ours.feature.startPosition, what)
                XCTAssertNil(ours.feature.endPosition, what)
                XCTAssertEqual(ours.exampleId, examples[ours.feature.exampleIndex].id, what)
                // offset_mapping: None except on the context, which is a slice of the context's
                // own tokenization starting at `ctx`.
                let n = hf.input_ids.count
                XCTAssertEqual(ours.contextTokens, hf.type0..<(n - 1), what)
                XCTAssertEqual(ours.contextStart, hf.ctx, what)
                let flat = contextOffsets[hf.example]
                let expected: [TokenOffset?] = (0..<n).map { k in
                    guard ours.contextTokens.contains(k) else { return nil }
                    let j = hf.ctx + k - hf.type0
                    return TokenOffset(flat[2 * j], flat[2 * j + 1])
                }
                XCTAssertEqual(ours.offsets, expected, what)
                let maxContext = Set(hf.max_context)
                XCTAssertEqual(ours.tokenIsMaxContext, (0..<n).map { maxContext.contains($0) }, what)
            }
        }
    }

    func testPostprocessMatchesUtilsQa() {
        var checked = 0, empty = 0
        for config in Fixtures.squad.configs {
            let (examples, features) = build(config, training: false)
            for run in config.postprocess {
                var logits = FixtureLogits(seed: run.seed)
                var starts: [[Float]] = [], ends: [[Float]] = []
                for _ in features {
                    starts.append(logits.row(config.max_length))
                    ends.append(logits.row(config.max_length))
                }
                let ours = Postprocess.squadPredictions(examples: examples, features: features, startLogits: starts,
                                                        endLogits: ends, nBest: run.n_best,
                                                        maxAnswerLength: run.max_answer_length,
                                                        requireMaxContext: run.max_context)
                XCTAssertEqual(ours.count, run.predictions.count)
                for (id, text) in run.predictions {
                    XCTAssertEqual(ours[id], text, "\(config.max_length)/\(config.stride) n_best \(run.n_best) "
                                   + "max_answer \(run.max_answer_length) max_context \(run.max_context): \(id)")
                    checked += 1
                    if text == "empty" { empty += 1 }
                }
            }
        }
        XCTAssertGreaterThan(checked, 200)
        XCTAssertGreaterThan(empty, 10, "the fixture should reach utils_qa's 'empty' fallback")
        XCTAssertLessThan(empty, checked / 2)
    }

    func testPostprocessUnpaddedLogitsAndRealAnswer() {
        // Logits peaked on the gold answer's tokens recover the gold text from any window.
        let config = Fixtures.squad.configs[1]
        let (examples, features) = build(config, training: true)
        var starts: [[Float]] = [], ends: [[Float]] = []
        for f in features {
            var s = [Float](repeating: 0, count: f.feature.count), e = s
            if let a = f.feature.startPosition, let b = f.feature.endPosition, a > 0 {
                s[Int(a)] = 10
                e[Int(b)] = 10
            }
            starts.append(s)
            ends.append(e)
        }
        let predictions = Postprocess.squadPredictions(examples: examples, features: features, startLogits: starts,
                                                       endLogits: ends)
        var matched = 0
        for example in examples {
            let answer = example.answers[0]
            let gold = Postprocess.substring(example.context, answer.start, answer.start + answer.text.unicodeScalars.count)
            // Word pieces cover whole words: the prediction contains the gold span.
            if let p = predictions[example.id], p.contains(gold) { matched += 1 }
        }
        XCTAssertGreaterThan(matched, examples.count * 9 / 10)
    }

    // MARK: - Windowing rules

    func testWindowsFollowTokenizersStride() {
        let w = SquadWindowing(maxLength: 20, docStride: 4, maxQueryLength: 64)
        // Question 5 tokens: windows of 20 - 3 - 5 = 12 context tokens stepping by 8.
        XCTAssertEqual(w.windows(questionTokens: 5, contextTokens: 12).1, [0..<12])
        XCTAssertEqual(w.windows(questionTokens: 5, contextTokens: 13).1, [0..<12, 8..<13])
        XCTAssertEqual(w.windows(questionTokens: 5, contextTokens: 20).1, [0..<12, 8..<20])
        XCTAssertEqual(w.windows(questionTokens: 5, contextTokens: 21).1, [0..<12, 8..<20, 16..<21])
        XCTAssertEqual(w.windows(questionTokens: 5, contextTokens: 0).1, [0..<0])
    }

    /// The per-token max-context window (one pass) is run_squad's `_check_is_max_context`
    /// asked for every token and window, and a long context costs time linear in its length.
    func testMaxContextWindowsMatchThePerTokenRule() {
        func bruteForce(_ windows: [Range<Int>], _ current: Int, _ position: Int) -> Bool {
            var bestScore = -Double.infinity, best = -1
            for (w, window) in windows.enumerated() where window.contains(position) {
                let score = Double(min(position - window.lowerBound, window.upperBound - 1 - position)) + 0.01 * Double(window.count)
                if best < 0 || score > bestScore { (bestScore, best) = (score, w) }
            }
            return best == current
        }
        for (maxLength, stride, question, context) in [(20, 4, 5, 21), (32, 8, 20, 30), (32, 20, 40, 50), (64, 0, 3, 200), (24, 7, 2, 5)] {
            let (_, windows) = SquadWindowing(maxLength: maxLength, docStride: stride, maxQueryLength: 64)
                .windows(questionTokens: question, contextTokens: context)
            let best = FeatureBuilder.maxContextWindows(windows, contextTokens: context)
            for (w, window) in windows.enumerated() {
                for p in window { XCTAssertEqual(best[p] == w, bruteForce(windows, w, p), "window \(w) token \(p)") }
            }
        }
        // A question that leaves one token of progress per window over a 20,000-token context:
        // 20,000 windows, built here in well under a second (the per-pair rule needed ~10^10 steps).
        let (_, windows) = SquadWindowing(maxLength: 40, docStride: 20, maxQueryLength: 64).windows(questionTokens: 16, contextTokens: 20_000)
        XCTAssertEqual(windows.count, 19_980)
        let best = FeatureBuilder.maxContextWindows(windows, contextTokens: 20_000)
        XCTAssertEqual(best.count, 20_000)
        XCTAssertFalse(best.contains(-1), "every token has a window")
        // Settings outside what validation admits still make progress (no endless loop).
        XCTAssertEqual(SquadWindowing(maxLength: 10, docStride: 30, maxQueryLength: -5).windows(questionTokens: 3, contextTokens: 50).1.count, 44)
    }

    func testLongQuestionsAreCutOnlyWhereRunQaFails() {
        let w = SquadWindowing(maxLength: 32, docStride: 8, maxQueryLength: 10)
        // Fits without truncation: the question stays whole even beyond maxQueryLength.
        XCTAssertEqual(w.windows(questionTokens: 20, contextTokens: 9).0, 20)
        // Window 32 - 3 - 20 = 9 > stride 8: run_qa works, the question stays whole.
        let (q, windows) = w.windows(questionTokens: 20, contextTokens: 30)
        XCTAssertEqual(q, 20)
        XCTAssertEqual(windows, [0..<9, 1..<10, 2..<11, 3..<12, 4..<13, 5..<14, 6..<15, 7..<16, 8..<17, 9..<18,
                                 10..<19, 11..<20, 12..<21, 13..<22, 14..<23, 15..<24, 16..<25, 17..<26, 18..<27,
                                 19..<28, 20..<29, 21..<30])
        // Window 8 <= stride: run_qa fails; cut to maxQueryLength (window 19).
        let cut = w.windows(questionTokens: 21, contextTokens: 30)
        XCTAssertEqual(cut.0, 10)
        XCTAssertEqual(cut.1, [0..<19, 11..<30])
        // maxQueryLength not enough: cut to leave stride + 1 context tokens.
        let tight = SquadWindowing(maxLength: 32, docStride: 20, maxQueryLength: 64)
        let tightCut = tight.windows(questionTokens: 40, contextTokens: 50)
        XCTAssertEqual(tightCut.0, 8)
        XCTAssertEqual(tightCut.1.count, 30)
        XCTAssertEqual(tightCut.1.first, 0..<21)
        XCTAssertEqual(tightCut.1.last, 29..<50)
    }

    func testLongQuestionBuildsFeatures() {
        let tokenizer = Fixtures.tokenizer
        let question = Array(repeating: "why", count: 40).joined(separator: " ")
        let context = Array(repeating: "the answer is here", count: 20).joined(separator: " ")
        let example = SquadExample(id: "q", title: "t", context: context, question: "  \n" + question,
                                   answers: [.init(text: "answer", start: 4)])
        // 40 question tokens leave 64 - 43 = 21 <= stride 24 context tokens: run_qa fails; cut to 30.
        let features = FeatureBuilder.squad([example], tokenizer: tokenizer, maxLength: 64, docStride: 24,
                                            maxQueryLength: 30, training: true)
        XCTAssertGreaterThan(features.count, 2)
        for f in features {
            XCTAssertLessThanOrEqual(f.feature.count, 64)
            XCTAssertEqual(f.feature.inputIds.prefix(32), [tokenizer.clsTokenId] + [Int](repeating: tokenizer.id(of: "why")!, count: 30) + [tokenizer.sepTokenId])
        }
        XCTAssertEqual(features[0].feature.startPosition, 33)
        XCTAssertEqual(features[0].feature.endPosition, 33)
        XCTAssertEqual(features[1].feature.startPosition, 0)
    }

    func testAnswerLabelEdgeCases() {
        // Context tokens at 3..<6 with offsets (0,3) (4,7) (8,11); [CLS] q [SEP] ... [SEP].
        let offsets: [TokenOffset?] = [nil, nil, nil, TokenOffset(0, 3), TokenOffset(4, 7), TokenOffset(8, 11), nil]
        let context = 3..<6
        XCTAssertEqual(FeatureBuilder.answerTokens(4, 7, offsets: offsets, context: context).0, 4)
        XCTAssertEqual(FeatureBuilder.answerTokens(4, 7, offsets: offsets, context: context).1, 4)
        XCTAssertTrue(FeatureBuilder.answerTokens(0, 11, offsets: offsets, context: context) == (3, 5))
        // Answer starting in the last context token: run_qa would say 6 ([SEP]).
        XCTAssertTrue(FeatureBuilder.answerTokens(8, 11, offsets: offsets, context: context) == (5, 5))
        XCTAssertTrue(FeatureBuilder.answerTokens(9, 10, offsets: offsets, context: context) == (5, 5))
        // Partly outside the window.
        XCTAssertTrue(FeatureBuilder.answerTokens(8, 12, offsets: offsets, context: context) == (0, 0))
        XCTAssertTrue(FeatureBuilder.answerTokens(8, 11, offsets: offsets, context: 3..<3) == (0, 0))
    }

    func testNoAnswerTrainsOnCLS() {
        let example = SquadExample(id: "x", title: "t", context: "Some context here.", question: "What?", answers: [])
        let features = FeatureBuilder.squad([example], tokenizer: Fixtures.tokenizer, training: true)
        XCTAssertEqual(features.count, 1)
        XCTAssertEqual(features[0].feature.startPosition, 0)
        XCTAssertEqual(features[0].feature.endPosition, 0)
        XCTAssertEqual(features[0].tokenIsMaxContext, features[0].offsets.map { $0 != nil })
    }

    func testLeftStripMatchesPython() {
        XCTAssertEqual(FeatureBuilder.leftStripped(" \t\n\u{1C}\u{1F}\u{85}\u{A0}\u{3000}x y "), "x y ")
        XCTAssertEqual(FeatureBuilder.leftStripped("   "), "")
        XCTAssertEqual(FeatureBuilder.leftStripped("\u{200B}x"), "\u{200B}x")  // not whitespace in Python
    }
}

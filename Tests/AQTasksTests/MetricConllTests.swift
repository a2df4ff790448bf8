import AQCore
import XCTest

@testable import AQTasks

/// Entity-level scores against seqeval 1.2.2 (default mode) on `tag_sequences_synthetic.json`, and the
/// set-based scorer against the port of conlleval's streaming counter.
final class MetricConllTests: XCTestCase {
    struct Fixture: Decodable {
        struct Case: Decodable {
            var name: String
            var scheme: String
            var gold: [[String]]
            var predicted: [[String]]
            var seqeval: Seqeval
        }
        struct Seqeval: Decodable {
            var micro: [String: Double]
            var per_type: [String: [String: Double]]
            var counts: Counts
        }
        struct Counts: Decodable {
            var total: [Int]
            var per_type: [String: [Int]]
        }
        var cases: [Case]
    }

    func testMatchesSeqevalOnEverySyntheticCase() throws {
        let fixture = try MetricFixtures.decode(Fixture.self, "tag_sequences_synthetic.json")
        XCTAssertGreaterThan(fixture.cases.count, 25)
        for c in fixture.cases {
            let scores = ConllEval.evaluate(gold: c.gold, predicted: c.predicted)
            let o = scores.overall
            XCTAssertEqual([o.gold, o.predicted, o.correct], c.seqeval.counts.total, c.name)
            assertMetric(o.precision, 100 * c.seqeval.micro["precision"]!, "\(c.name) precision")
            assertMetric(o.recall, 100 * c.seqeval.micro["recall"]!, "\(c.name) recall")
            assertMetric(o.f1, 100 * c.seqeval.micro["f1"]!, "\(c.name) f1")
            XCTAssertEqual(scores.types, c.seqeval.per_type.keys.sorted(), c.name)
            for (type, expected) in c.seqeval.per_type {
                let t = try XCTUnwrap(scores.perType[type], "\(c.name) \(type)")
                XCTAssertEqual([t.gold, t.predicted, t.correct], c.seqeval.counts.per_type[type], "\(c.name) \(type)")
                assertMetric(t.precision, 100 * expected["precision"]!, "\(c.name) \(type) precision")
                assertMetric(t.recall, 100 * expected["recall"]!, "\(c.name) \(type) recall")
                assertMetric(t.f1, 100 * expected["f1"]!, "\(c.name) \(type) f1")
            }
            XCTAssertEqual(ConllEval.evaluateReference(gold: c.gold, predicted: c.predicted), scores, "reference vs set-based: \(c.name)")
        }
    }

    func testChunkRules() {
        typealias C = ConllEval.Chunk
        // IOB1: I- after O starts a chunk; B- separates two chunks of one type.
        XCTAssertEqual(ConllEval.chunks(["O", "I-PER", "I-PER", "B-PER", "O"]),
                       [C(type: "PER", start: 1, end: 3), C(type: "PER", start: 3, end: 4)])
        // A type change ends a chunk and starts another.
        XCTAssertEqual(ConllEval.chunks(["B-PER", "I-LOC", "I-LOC"]),
                       [C(type: "PER", start: 0, end: 1), C(type: "LOC", start: 1, end: 3)])
        // Single-token B chunks; a chunk at the end of the sentence.
        XCTAssertEqual(ConllEval.chunks(["B-ORG", "B-ORG", "O", "B-MISC", "I-MISC"]),
                       [C(type: "ORG", start: 0, end: 1), C(type: "ORG", start: 1, end: 2), C(type: "MISC", start: 3, end: 5)])
        XCTAssertEqual(ConllEval.chunks([]), [])
        XCTAssertEqual(ConllEval.chunks(["O", "O"]), [])
        // Types keep their hyphens (conlleval 2004-01-26).
        XCTAssertEqual(ConllEval.chunks(["B-WORK-OF-ART", "I-WORK-OF-ART"]), [C(type: "WORK-OF-ART", start: 0, end: 2)])
    }

    func testSentenceBoundaryEndsChunks() {
        // The same tags as one sentence would be one chunk; split in two sentences they are two.
        let one = ConllEval.evaluate(gold: [["I-PER", "I-PER"]], predicted: [["I-PER", "I-PER"]])
        let two = ConllEval.evaluate(gold: [["I-PER"], ["I-PER"]], predicted: [["I-PER"], ["I-PER"]])
        XCTAssertEqual(one.overall.gold, 1)
        XCTAssertEqual(two.overall.gold, 2)
        XCTAssertEqual(two.overall.correct, 2)
    }

    func testZeroDivisionsAreZero() {
        let noPredictions = ConllEval.evaluate(gold: [["B-PER"]], predicted: [["O"]])
        XCTAssertEqual(noPredictions.overall.precision, 0)
        XCTAssertEqual(noPredictions.overall.recall, 0)
        XCTAssertEqual(noPredictions.overall.f1, 0)
        let nothing = ConllEval.evaluate(gold: [[]], predicted: [[]])
        XCTAssertEqual(nothing.overall, ConllEval.Counts())
        XCTAssertEqual(nothing.overall.f1, 0)
        XCTAssertTrue(nothing.perType.isEmpty)
    }

    /// The streaming port and the set-based scorer agree on seeded random sequences over every
    /// prefix conlleval knows (B, I, O, E, and typeless tags), well beyond the fixture's alphabet.
    func testReferenceAgreesOnRandomSequences() {
        var rng = MetricRNG(seed: 7)
        let alphabet = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG", "E-PER", "B", "I", "E-LOC", "I-A-B"]
        for trial in 0..<300 {
            var gold: [[String]] = [], predicted: [[String]] = []
            for _ in 0..<Int(rng.next() % 6) {
                let n = Int(rng.next() % 12)
                gold.append((0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
                predicted.append((0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
            }
            XCTAssertEqual(ConllEval.evaluateReference(gold: gold, predicted: predicted),
                           ConllEval.evaluate(gold: gold, predicted: predicted), "trial \(trial): \(gold) vs \(predicted)")
        }
    }
}

/// A tiny deterministic generator for test data (SplitMix64).
struct MetricRNG {
    var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(state: seed) }
    mutating func next() -> UInt64 { generator.next() }
}

import XCTest

@testable import AQTasks

/// SQuAD v1.1 EM/F1 against the official `evaluate-v1.1.py` (`squad_synthetic.json`), and the
/// Python `str` semantics it relies on (`python_text.json`).
final class MetricSquadTests: XCTestCase {
    struct Fixture: Decodable {
        struct Normalized: Decodable { var text: String; var normalized: String }
        struct Pair: Decodable { var prediction: String; var gold: String; var em: Bool; var f1: Double }
        struct Question: Decodable { var id: String; var answers: [String] }
        struct Dataset: Decodable {
            var questions: [Question]
            var predictions: [String: String]
            var exact_match: Double
            var f1: Double
            var unanswered: [String]
        }
        var normalized: [Normalized]
        var pairs: [Pair]
        var dataset: Dataset
    }

    func testNormalizeAnswerMatchesTheOfficialScript() throws {
        let fixture = try MetricFixtures.decode(Fixture.self, "squad_synthetic.json")
        XCTAssertGreaterThan(fixture.normalized.count, 200)
        for n in fixture.normalized {
            // Compare code points: Swift's == would equate "é" and "e\u{301}", Python's does not.
            XCTAssertEqual(Array(SquadEval.normalize(n.text).unicodeScalars), Array(n.normalized.unicodeScalars),
                           "normalize_answer(\(n.text.unicodeScalars.map { String($0.value, radix: 16) }))")
        }
    }

    func testExactMatchAndF1PerPair() throws {
        let fixture = try MetricFixtures.decode(Fixture.self, "squad_synthetic.json")
        for p in fixture.pairs {
            XCTAssertEqual(SquadEval.exactMatch(prediction: p.prediction, groundTruth: p.gold), p.em, "EM \(p.prediction) / \(p.gold)")
            assertMetric(SquadEval.f1(prediction: p.prediction, groundTruth: p.gold), p.f1, "F1 \(p.prediction) / \(p.gold)")
        }
    }

    func testEvaluateMatchesTheOfficialScript() throws {
        let d = try MetricFixtures.decode(Fixture.self, "squad_synthetic.json").dataset
        let examples = d.questions.map {
            SquadExample(id: $0.id, title: "synthetic", context: "", question: "", answers: $0.answers.map { .init(text: $0, start: 0) })
        }
        let scores = SquadEval.evaluate(examples, predictions: d.predictions)
        assertMetric(scores.exactMatch, d.exact_match, "exact_match")
        assertMetric(scores.f1, d.f1, "f1")
        XCTAssertEqual(scores.questions, d.questions.count)
        XCTAssertEqual(scores.missing, d.unanswered)
        XCTAssertEqual(scores.unknownIDs, ["not-a-question"])
    }

    func testOfficialQuirks() {
        // An answer that normalises to nothing: exact match, yet F1 0 (no shared token).
        XCTAssertTrue(SquadEval.exactMatch(prediction: "", groundTruth: "The"))
        XCTAssertEqual(SquadEval.f1(prediction: "", groundTruth: "The"), 0)
        // Articles go only as whole words; Unicode punctuation stays.
        XCTAssertEqual(SquadEval.normalize("Theatre of the Absurd!"), "theatre of absurd")
        XCTAssertEqual(SquadEval.normalize("\u{201C}the\u{201D} end"), "\u{201C} \u{201D} end")
        // Counter intersection: repeated tokens count up to their multiplicity.
        XCTAssertEqual(SquadEval.f1(prediction: "cat cat dog", groundTruth: "cat dog dog"), 2.0 / 3.0, accuracy: 1e-15)
    }

    struct PythonTextFixture: Decodable {
        struct Sigma: Decodable { var text: String; var lower: String }
        var unicode_version: String
        var assigned: [[UInt32]]
        var word: [[UInt32]]
        var space: [UInt32]
        var lower: [String: [UInt32]]
        var sigma: [Sigma]
    }

    /// Python's `str.lower()`, `\w` and `str.isspace()` over every code point assigned in Python's
    /// Unicode version (code points Swift's newer Unicode assigned later are not compared).
    func testPythonStringSemanticsOverAllCodePoints() throws {
        let f = try MetricFixtures.decode(PythonTextFixture.self, "python_text.json")
        func set(_ ranges: [[UInt32]]) -> Set<UInt32> {
            var s = Set<UInt32>()
            for r in ranges { s.formUnion(r[0]...r[1]) }
            return s
        }
        let assigned = set(f.assigned), word = set(f.word), space = Set(f.space)
        var mismatches: [String] = []
        for v in assigned.sorted() {
            guard let c = Unicode.Scalar(v) else { continue }
            if PythonText.isWord(c) != word.contains(v) { mismatches.append("\\w U+\(String(v, radix: 16))") }
            if PythonText.isSpace(c) != space.contains(v) { mismatches.append("isspace U+\(String(v, radix: 16))") }
            let expected = f.lower[String(v)] ?? [v]
            if PythonText.lower([c]).map(\.value) != expected { mismatches.append("lower U+\(String(v, radix: 16))") }
        }
        XCTAssertEqual(mismatches, [], "Python \(f.unicode_version) vs Swift: \(mismatches.prefix(20))")
        for s in f.sigma {
            XCTAssertEqual(PythonText.lower(Array(s.text.unicodeScalars)), Array(s.lower.unicodeScalars), "lower(\(s.text))")
        }
    }
}

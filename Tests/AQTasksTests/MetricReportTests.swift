import XCTest

@testable import AQTasks

/// The report object `score` and `evaluate` print, and the `score` command end to end on the
/// small reader fixtures (no real data needed).
final class MetricReportTests: XCTestCase {
    func reader(_ name: String) -> String {
        MetricFixtures.root.appendingPathComponent("readers").appendingPathComponent(name).path
    }

    func testJSONObjectShape() {
        XCTAssertEqual(MetricReport.accuracy(.sst2, examples: 872, accuracy: 91.2).json,
                       #"{"task": "sst2", "examples": 872, "metrics": {"accuracy": 91.2}}"#)
        let squad = MetricReport.squad(.init(exactMatch: 80.5, f1: 100.0 / 3, questions: 3, missing: [], unknownIDs: []))
        XCTAssertEqual(squad.json, #"{"task": "squad", "examples": 3, "metrics": {"exact_match": 80.5, "f1": 33.333333333333336}}"#)
        let conll = MetricReport.conll(ConllEval.evaluate(gold: [["B-PER", "O"]], predicted: [["B-PER", "B-LOC"]]), sentences: 1)
        XCTAssertEqual(conll.json, #"{"task": "conll2003", "examples": 1, "metrics": {"precision": 50.0, "recall": 100.0, "f1": 66.66666666666666}}"#)
        // Full precision: the printed number parses back to the same double.
        let x = 100.0 * 7 / 9
        let object = try? JSONSerialization.jsonObject(with: Data(MetricReport.accuracy(.mnli, examples: 9, accuracy: x).json.utf8)) as? [String: Any]
        XCTAssertEqual((object?["metrics"] as? [String: Double])?["accuracy"], x)
    }

    func testTable() {
        let conll = MetricReport.conll(ConllEval.evaluate(gold: [["B-PER", "O"]], predicted: [["B-PER", "B-LOC"]]), sentences: 1)
        XCTAssertEqual(conll.table, """
            conll2003: 1 sentences
              precision    50.00
              recall      100.00
              f1           66.67

              type   precision    recall        f1      gold predicted   correct
              LOC         0.00      0.00      0.00         0         1         0
              PER       100.00    100.00    100.00         1         1         1

            """)
        XCTAssertEqual(MetricReport.accuracy(.sst2, examples: 2, accuracy: 50).table, "sst2: 2 examples\n  accuracy     50.00\n")
    }

    // MARK: The command

    func testScoreCommandOnFixtures() throws {
        let dir = try MetricFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sst2 = try MetricFixtures.write(
            [0, 0, 1].enumerated().map { PredictionFiles.classificationLine(index: $0.offset, label: TaskReaders.sst2Labels[$0.element]) }
                .joined(separator: "\n") + "\n", "sst2.jsonl", in: dir)
        let r = try ScoreCLI.run(["score", "--task", "sst2", "--data", reader("sst2_dev.tsv"), "--predictions", sst2.path, "--json"])
        XCTAssertEqual(r.stdout, "{\"task\": \"sst2\", \"examples\": 3, \"metrics\": {\"accuracy\": \(100.0 * 2 / 3)}}\n")
        XCTAssertEqual(r.stderr, "")

        let mnli = try MetricFixtures.write(["contradiction", "entailment", "neutral", "neutral"].enumerated()
            .map { PredictionFiles.classificationLine(index: $0.offset, label: $0.element, probabilities: [0.2, 0.3, 0.5]) }
            .joined(separator: "\n"), "mnli.jsonl", in: dir)
        let m = try ScoreCLI.run(["score", "--task", "mnli", "--data", reader("mnli_dev_matched.tsv"), "--predictions", mnli.path])
        XCTAssertEqual(m.status, 1)
        XCTAssertTrue(m.stderr.hasPrefix("error: ") && m.stderr.contains("mnli.jsonl:4: more predictions than the 3 examples of the data"), m.stderr)
        XCTAssertEqual(m.stderr.split(separator: "\n").count, 1)

        let squad = try MetricFixtures.write(#"{"q1": "Zurich", "q2": "Technische Hochschule", "q3": "42."}"#, "p.json", in: dir)
        let s = try ScoreCLI.json(try ScoreCLI.run(["score", "--task", "squad", "--data", reader("squad_v11.json"), "--predictions", squad.path, "--json"]))
        XCTAssertEqual(s["examples"] as? Int, 3)
        XCTAssertEqual((s["metrics"] as? [String: Double])?["exact_match"], 100.0 * 2 / 3)
        XCTAssertEqual((s["metrics"] as? [String: Double])?["f1"], 100.0 * 2 / 3)
    }

    func testScoreCommandErrorsAreOneLine() throws {
        let tagged = try TaggedFixtures.url("tagged_iob1.txt").path
        for args in [
            ["score", "--task", "conll2003", "--data", reader("sst2_dev.tsv"), "--predictions", reader("sst2_dev.tsv")],
            ["score", "--task", "sst2", "--data", tagged, "--predictions", reader("sst2_dev.tsv")],
            ["score", "--task", "squad", "--data", reader("squad_v11.json"), "--predictions", "/nonexistent/p.json"],
            ["score", "--task", "squad", "--data", reader(""), "--predictions", reader("squad_v11.json")],
        ] {
            let r = try ScoreCLI.run(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stderr)")
            XCTAssertEqual(r.stdout, "")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
            XCTAssertTrue(r.stderr.hasPrefix("error: "), r.stderr)
        }
        let bad = try ScoreCLI.run(["score", "--task", "glue", "--data", "x", "--predictions", "y"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("sst2"), bad.stderr)
    }
}

import XCTest

@testable import AQTasks

/// Prediction files: what `aqbert score` reads and `evaluate` writes.
final class ReadersPredictionsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try MetricFixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func reader(_ name: String) -> URL {
        MetricFixtures.root.appendingPathComponent("readers").appendingPathComponent(name)
    }

    func assertError(_ body: () throws -> Void, _ needles: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("no error", file: file, line: line)
        } catch {
            let text = "\(error)"
            XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
            for n in needles { XCTAssertTrue(text.contains(n), "\"\(text)\" lacks \"\(n)\"", file: file, line: line) }
        }
    }

    // MARK: classification

    func testClassificationRoundTrip() throws {
        let lines = [
            PredictionFiles.classificationLine(index: 0, label: "positive", probabilities: [0.25, 0.75]),
            PredictionFiles.classificationLine(index: 1, label: "negative"),
            PredictionFiles.classificationLine(index: 2, label: "negative", probabilities: [1, 0]),
        ]
        XCTAssertEqual(lines[0], #"{"index": 0, "label": "positive", "probabilities": [0.25, 0.75]}"#)
        let url = try MetricFixtures.write(lines.joined(separator: "\n") + "\n", "p.jsonl", in: dir)
        XCTAssertEqual(try PredictionFiles.classification(url, labels: TaskReaders.sst2Labels, count: 3), [1, 0, 0])
        let result = try TaskScorer.score(task: .sst2, data: reader("sst2_dev.tsv"), predictions: url)
        XCTAssertEqual(result.report, .accuracy(.sst2, examples: 3, accuracy: 100.0 * 2 / 3))
    }

    func testClassificationErrors() throws {
        let labels = TaskReaders.mnliLabels
        func check(_ text: String, _ needles: [String], count: Int = 2, line: UInt = #line) throws {
            let url = try MetricFixtures.write(text, "p.jsonl", in: dir)
            assertError({ _ = try PredictionFiles.classification(url, labels: labels, count: count) }, needles, line: line)
        }
        try check(#"{"index": 0, "label": "neutral"}"# + "\n", ["p.jsonl has 1 predictions, the data has 2 examples"])
        try check(#"{"index": 1, "label": "neutral"}"# + "\n", ["p.jsonl:1: index 1 where 0 was expected"])
        try check(#"{"index": 0, "label": "Neutral"}"# + "\n", ["p.jsonl:1: unknown label \"Neutral\"; labels are entailment, neutral, contradiction"])
        try check(#"{"index": 0, "label": 1}"# + "\n", ["p.jsonl:1: no string \"label\""])
        try check(#"{"index": 0, "label": "neutral", "probabilities": [0.5, 0.5]}"# + "\n", ["p.jsonl:1: \"probabilities\" must be an array of 3 numbers"])
        try check(#"{"index": 0, "label": "neutral"}"# + "\n{\"index\": 1,\n", ["p.jsonl:2: bad JSON"])
        try check(#"{"label": "neutral"}"# + "\n", ["p.jsonl:1: no integer \"index\""])
        try check(#"{"index": 0, "label": "neutral"}"# + "\n" + #"{"index": 1, "label": "neutral"}"# + "\n", ["more predictions than the 1 examples"], count: 1)
        try check("index\tlabel\n0\tneutral\n", ["p.jsonl:1: looks like a TSV file"])
    }

    func testUnlabelledDataCannotBeScored() throws {
        let url = try MetricFixtures.write(#"{"index": 0, "label": "negative"}"# + "\n" + #"{"index": 1, "label": "negative"}"# + "\n", "p.jsonl", in: dir)
        assertError({ _ = try TaskScorer.score(task: .sst2, data: self.reader("sst2_test.tsv"), predictions: url) },
                    ["sst2_test.tsv has 2 unlabelled examples (e.g. line 2); score needs a labelled file"])
    }

    // MARK: conll2003

    /// The IOB1 fixture with predicted tags: 4 data columns + the prediction (conlleval layout).
    func conllPrediction(_ replace: [Int: String] = [:]) throws -> (TaggingDataset, String) {
        let data = try TaskReaders.conll2003(TaggedFixtures.url("tagged_iob1.txt"))
        var predicted = data.sentences.map(\.tags)
        predicted[1][1] = "I-PER"  // Kari Ola merged into one chunk: one PER missed, one wrong
        var text = try PredictionFiles.conllText(data: data, predicted: predicted)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for (k, v) in replace { lines[k - 1] = v }
        text = lines.joined(separator: "\n")
        return (data, text)
    }

    func testConllPredictionFile() throws {
        let (data, text) = try conllPrediction()
        XCTAssertTrue(text.hasPrefix("-DOCSTART- -X- O O\n\nAnna NNP I-NP I-PER I-PER\n"), text)
        let url = try MetricFixtures.write(text, "pred.txt", in: dir)
        let tags = try PredictionFiles.tags(url, matching: data)
        XCTAssertEqual(tags[1], ["I-PER", "I-PER", "O", "I-ORG", "I-ORG"])
        // Gold: Anna Berg (PER), Oslo (LOC), Kari (PER), Ola (PER), Acme Corp (ORG) = 5 chunks;
        // predicted: the same with Kari Ola as one PER = 4 chunks, 3 correct.
        let r = try TaskScorer.score(task: .conll2003, data: TaggedFixtures.url("tagged_iob1.txt"), predictions: url).report
        XCTAssertEqual(r["precision"], 75)
        XCTAssertEqual(r["recall"], 60)
        XCTAssertEqual(r["f1"]!, 2 * 0.75 * 0.6 / 1.35 * 100, accuracy: 1e-12)
        XCTAssertEqual(r.perType.map(\.type), ["LOC", "ORG", "PER"])
        XCTAssertEqual(r.perType[2].counts, ConllEval.Counts(gold: 3, predicted: 2, correct: 1))
        // Two columns (word + tag) are enough; blank and -DOCSTART- lines must line up.
        let short = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let f = line.split(separator: " ")
            return f.count == 5 ? "\(f[0]) \(f[4])" : String(line)
        }.joined(separator: "\n")
        let url2 = try MetricFixtures.write(short, "short.txt", in: dir)
        XCTAssertEqual(try PredictionFiles.tags(url2, matching: data), try PredictionFiles.tags(url, matching: data))
    }

    func testConllPredictionMisalignment() throws {
        let data = try TaskReaders.conll2003(TaggedFixtures.url("tagged_iob1.txt"))
        func check(_ replace: [Int: String], _ needles: [String], line: UInt = #line) throws {
            let (_, text) = try conllPrediction(replace)
            let url = try MetricFixtures.write(text, "pred.txt", in: dir)
            assertError({ _ = try PredictionFiles.tags(url, matching: data) }, needles, line: line)
        }
        try check([4: "Berk NNP I-NP I-PER I-PER"], ["pred.txt:4: word \"Berk\" where", "tagged_iob1.txt:4 has \"Berg\""])
        try check([4: ""], ["pred.txt:4: blank line where", "tagged_iob1.txt:4 has the word \"Berg\""])
        try check([8: "Extra NN O O O"], ["pred.txt:8: word \"Extra\" where", "tagged_iob1.txt:8 has no word"])
        try check([4: "Berg"], ["pred.txt:4: no predicted tag after \"Berg\""])
        try check([4: "Berg\tI-PER"], ["pred.txt:4: tab character"])
        let (_, text) = try conllPrediction()
        let cut = text.split(separator: "\n", omittingEmptySubsequences: false).prefix(10).joined(separator: "\n")
        let url = try MetricFixtures.write(cut, "cut.txt", in: dir)
        assertError({ _ = try PredictionFiles.tags(url, matching: data) }, ["cut.txt ends at line 10 but", "continues (word \"met\" at line 11)"])
    }

    // MARK: squad

    func testSquadPredictions() throws {
        let predictions = ["q1": "Zürich", "q2": "the ETH \"Zurich\"\n", "extra": "x"]
        let text = PredictionFiles.squadJSON(predictions)
        let url = try MetricFixtures.write(text, "predictions.json", in: dir)
        XCTAssertEqual(try PredictionFiles.squad(url), predictions)
        let result = try TaskScorer.score(task: .squad, data: reader("squad_v11.json"), predictions: url)
        // q1 exact; q2 F1 vs "Technische Hochschule" etc. is 0; q3 missing.
        XCTAssertEqual(result.report["exact_match"]!, 100.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(result.report.examples, 3)
        XCTAssertEqual(result.warnings.count, 2, "\(result.warnings)")
        XCTAssertTrue(result.warnings[0].hasPrefix("1 of 3 questions have no prediction and score 0"))
        XCTAssertTrue(result.warnings[1].hasPrefix("1 predictions are for ids not in squad_v11.json"))
    }

    func testSquadPredictionErrors() throws {
        func check(_ text: String, _ needles: [String], line: UInt = #line) throws {
            let url = try MetricFixtures.write(text, "predictions.json", in: dir)
            assertError({ _ = try PredictionFiles.squad(url) }, needles, line: line)
        }
        try check(#"{"q1": 3}"#, ["prediction for question q1 is not a string"])
        try check(#"["a"]"#, ["predictions.json: not a JSON object"])
        try check("{\"q1\": \"a\",\n\"q2\" \"b\"}", ["predictions.json:2: bad JSON"])
        try check("{\"index\": 0, \"label\": \"a\"}\n{\"index\": 1, \"label\": \"b\"}\n", ["looks like a JSON Lines file; squad predictions must be"])
    }
}

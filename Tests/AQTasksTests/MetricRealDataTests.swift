import XCTest

@testable import AQTasks

/// The real dev sets scored with predictions synthesised by the fixture script
/// (`real_data.json`): the numbers must equal the reference implementations' (official SQuAD
/// script, seqeval), through the library and through `aqbert score`. Skipped without the data.
final class MetricRealDataTests: XCTestCase {
    struct Fixture: Decodable {
        struct Squad: Decodable {
            var predictions: [String: String]
            var exact_match: Double
            var f1: Double
            var unanswered: Int
            var questions: Int
            var article_questions: [String: Int]
        }
        struct Conll: Decodable {
            struct Seqeval: Decodable {
                var micro: [String: Double]
                var per_type: [String: [String: Double]]
                var counts: Counts
            }
            struct Counts: Decodable { var total: [Int]; var per_type: [String: [Int]] }
            var rule: String
            var changed: Int
            var sentences: Int
            var seqeval: Seqeval
        }
        struct SST2: Decodable { var predictions: String; var examples: Int; var accuracy: Double }
        struct MNLI: Decodable {
            var examples: Int
            var seed: UInt64
            var percent: Int
            var held_out: [Int]
            var predictions: String
            var accuracy: Double
        }
        var data_sha256: [String: String]
        var squad_dev: Squad
        var conll_valid: Conll
        var sst2_dev: SST2
        var mnli_dev_matched: MNLI
    }

    var fixture: Fixture!
    var data: URL!

    override func setUpWithError() throws {
        data = try MetricFixtures.dataDirectory()
        fixture = try MetricFixtures.decode(Fixture.self, "real_data.json")
    }

    // MARK: SQuAD v1.1 dev

    func testSquadDev() throws {
        let url = data.appendingPathComponent("squad11/dev-v1.1.json")
        let dev = try TaskReaders.squad(url)
        let f = fixture.squad_dev
        XCTAssertEqual(dev.examples.count, f.questions)
        XCTAssertEqual(dev.version, "1.1")
        XCTAssertEqual(dev.skippedUnanswerable, 0)
        XCTAssertEqual(dev.titles.count, f.article_questions["articles"])
        XCTAssertEqual(dev.articles(first: 5).examples.count, f.article_questions["first5"])
        XCTAssertEqual(dev.articles(last: 5).examples.count, f.article_questions["last5"])

        let scores = SquadEval.evaluate(dev.examples, predictions: f.predictions)
        assertMetric(scores.exactMatch, f.exact_match, "exact_match")
        assertMetric(scores.f1, f.f1, "f1")
        XCTAssertEqual(scores.missing.count, f.unanswered)
        XCTAssertEqual(scores.unknownIDs, [])

        // Through the scorer and the command, from a predictions.json file.
        let dir = try MetricFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let predictions = try MetricFixtures.write(PredictionFiles.squadJSON(f.predictions), "predictions.json", in: dir)
        let result = try TaskScorer.score(task: .squad, data: url, predictions: predictions)
        XCTAssertEqual(result.report["exact_match"], scores.exactMatch)
        XCTAssertEqual(result.report["f1"], scores.f1)
        XCTAssertTrue(result.warnings.contains { $0.hasPrefix("\(f.unanswered) of \(f.questions) questions have no prediction") }, "\(result.warnings)")

        let cli = try ScoreCLI.run(["score", "--task", "squad", "--data", url.path, "--predictions", predictions.path, "--json"])
        let object = try ScoreCLI.json(cli)
        XCTAssertEqual(object["task"] as? String, "squad")
        XCTAssertEqual(object["examples"] as? Int, f.questions)
        let metrics = try XCTUnwrap(object["metrics"] as? [String: Double])
        XCTAssertEqual(Set(metrics.keys), ["exact_match", "f1"])
        assertMetric(metrics["exact_match"]!, f.exact_match, "CLI exact_match")
        assertMetric(metrics["f1"]!, f.f1, "CLI f1")
        XCTAssertTrue(cli.stderr.contains("questions have no prediction"), cli.stderr)
    }

    // MARK: CoNLL-2003 valid

    func testConllValid() throws {
        let url = data.appendingPathComponent("conll2003/valid.txt")
        let valid = try TaskReaders.conll2003(url)
        let f = fixture.conll_valid
        XCTAssertEqual(valid.sentences.count, f.sentences)
        XCTAssertEqual(valid.scheme, .iob2)
        XCTAssertEqual(valid.labels, ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"])

        // The fixture's rule (make_metric_fixtures.py conll_prediction): no CoNLL-derived data is stored.
        let labels = valid.labels
        XCTAssertTrue(f.rule.hasPrefix("token t of sentence s: h = splitmix64(2026 ^ (s << 16) ^ t); if h % 100 < 6"), f.rule)
        let predicted = valid.sentences.enumerated().map { s, sentence in
            sentence.tags.enumerated().map { t, tag -> String in
                let h = DataSplits.splitmix64(2026 ^ (UInt64(s) << 16) ^ UInt64(t))
                guard h % 100 < 6, let i = labels.firstIndex(of: tag) else { return tag }
                return labels[(i + 1 + Int((h / 100) % 8)) % 9]
            }
        }
        XCTAssertEqual(zip(predicted.flatMap { $0 }, valid.sentences.flatMap(\.tags)).filter { $0 != $1 }.count, f.changed,
                       "the rule changes as many tags as when the fixture was made")
        let scores = ConllEval.evaluate(gold: valid.sentences.map(\.tags), predicted: predicted)
        check(scores, f.seqeval, "library")
        XCTAssertEqual(ConllEval.evaluateReference(gold: valid.sentences.map(\.tags), predicted: predicted), scores)

        // A prediction file in the data layout (word POS chunk gold predicted), via scorer and CLI.
        let dir = try MetricFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try MetricFixtures.write(try PredictionFiles.conllText(data: valid, predicted: predicted), "valid.pred.txt", in: dir)
        let result = try TaskScorer.score(task: .conll2003, data: url, predictions: file)
        XCTAssertEqual(result.report.examples, f.sentences)
        assertMetric(result.report["precision"]!, 100 * f.seqeval.micro["precision"]!, "scorer precision")
        assertMetric(result.report["recall"]!, 100 * f.seqeval.micro["recall"]!, "scorer recall")
        assertMetric(result.report["f1"]!, 100 * f.seqeval.micro["f1"]!, "scorer f1")
        XCTAssertEqual(result.report.perType.map(\.type), ["LOC", "MISC", "ORG", "PER"])

        let cli = try ScoreCLI.run(["score", "--task", "conll2003", "--data", url.path, "--predictions", file.path, "--json"])
        let object = try ScoreCLI.json(cli)
        XCTAssertEqual(object["task"] as? String, "conll2003")
        XCTAssertEqual(object["examples"] as? Int, f.sentences)
        let metrics = try XCTUnwrap(object["metrics"] as? [String: Double])
        XCTAssertEqual(Set(metrics.keys), ["precision", "recall", "f1"])
        for k in ["precision", "recall", "f1"] { assertMetric(metrics[k]!, 100 * f.seqeval.micro[k]!, "CLI \(k)") }

        let table = try ScoreCLI.run(["score", "--task", "conll2003", "--data", url.path, "--predictions", file.path])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains(String(format: "%.2f", 100 * f.seqeval.micro["f1"]!)), table.stdout)
        for type in ["LOC", "MISC", "ORG", "PER"] { XCTAssertTrue(table.stdout.contains("  \(type) "), table.stdout) }
    }

    private func check(_ scores: ConllEval.Scores, _ expected: Fixture.Conll.Seqeval, _ what: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        let o = scores.overall
        XCTAssertEqual([o.gold, o.predicted, o.correct], expected.counts.total, what, file: file, line: line)
        assertMetric(o.precision, 100 * expected.micro["precision"]!, "\(what) precision", file: file, line: line)
        assertMetric(o.recall, 100 * expected.micro["recall"]!, "\(what) recall", file: file, line: line)
        assertMetric(o.f1, 100 * expected.micro["f1"]!, "\(what) f1", file: file, line: line)
        XCTAssertEqual(scores.types, expected.per_type.keys.sorted(), what, file: file, line: line)
        for (type, e) in expected.per_type {
            guard let t = scores.perType[type] else { XCTFail("\(what): no \(type)", file: file, line: line); continue }
            XCTAssertEqual([t.gold, t.predicted, t.correct], expected.counts.per_type[type], "\(what) \(type)", file: file, line: line)
            assertMetric(t.f1, 100 * e["f1"]!, "\(what) \(type) f1", file: file, line: line)
            assertMetric(t.precision, 100 * e["precision"]!, "\(what) \(type) precision", file: file, line: line)
            assertMetric(t.recall, 100 * e["recall"]!, "\(what) \(type) recall", file: file, line: line)
        }
    }

    // MARK: SST-2 and MNLI

    func testSST2Dev() throws {
        let url = data.appendingPathComponent("sst2/dev.tsv")
        let dev = try TaskReaders.sst2(url)
        let f = fixture.sst2_dev
        XCTAssertEqual(dev.examples.count, f.examples)
        XCTAssertEqual(dev.labels, ["negative", "positive"])
        let predicted = f.predictions.map { $0 == "1" ? 1 : 0 }
        assertMetric(Accuracy.score(predicted: predicted, gold: dev.examples.map(\.label)), f.accuracy, "accuracy")

        let dir = try MetricFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lines = predicted.enumerated().map {
            PredictionFiles.classificationLine(index: $0.offset, label: dev.labels[$0.element], probabilities: $0.element == 1 ? [0.25, 0.75] : [0.75, 0.25])
        }
        let file = try MetricFixtures.write(lines.joined(separator: "\n") + "\n", "predictions.jsonl", in: dir)
        let cli = try ScoreCLI.run(["score", "--task", "sst2", "--data", url.path, "--predictions", file.path, "--json"])
        XCTAssertEqual(cli.stdout, "{\"task\": \"sst2\", \"examples\": \(f.examples), \"metrics\": {\"accuracy\": \(f.accuracy)}}\n")
        let table = try ScoreCLI.run(["score", "--task", "sst2", "--data", url.path, "--predictions", file.path])
        XCTAssertEqual(table.stdout, "sst2: \(f.examples) examples\n  accuracy   " + String(format: "%7.2f", f.accuracy) + "\n")
    }

    func testMNLIDevMatchedSplit() throws {
        let url = data.appendingPathComponent("mnli/dev_matched.jsonl")
        let dev = try TaskReaders.mnli(url)
        let f = fixture.mnli_dev_matched
        XCTAssertEqual(dev.examples.count, f.examples)
        XCTAssertEqual(dev.labels, ["entailment", "neutral", "contradiction"])
        let (kept, held) = dev.split(heldOutPercent: f.percent, seed: f.seed)
        XCTAssertEqual(held.examples.map { $0.line - 1 }, f.held_out, "held-out examples (file has no blank lines: index = line - 1)")
        XCTAssertEqual(kept.examples.count + held.examples.count, dev.examples.count)
        let predicted = f.predictions.map { ["e": 0, "n": 1, "c": 2][$0]! }
        assertMetric(Accuracy.score(predicted: predicted, gold: held.examples.map(\.label)), f.accuracy, "held-out accuracy")
    }

    func testDataFilesAreTheOnesTheFixturesWereMadeFrom() throws {
        // A different copy of a data file would make the expected numbers meaningless.
        let sumsURL = data.appendingPathComponent("SHA256SUMS")
        guard let sums = try? String(contentsOf: sumsURL, encoding: .utf8) else {
            throw XCTSkip("no SHA256SUMS in \(data.path)")
        }
        for (relative, sha) in fixture.data_sha256 {
            XCTAssertTrue(sums.contains("\(sha)  \(relative)"), "\(relative) sha256 \(sha) not in \(sumsURL.path)")
        }
    }
}

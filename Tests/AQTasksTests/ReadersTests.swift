import XCTest

@testable import AQTasks

/// The readers on the small hand-written files of `Fixtures/readers`.
final class ReadersTests: XCTestCase {
    func url(_ name: String) -> URL {
        MetricFixtures.root.appendingPathComponent("readers").appendingPathComponent(name)
    }

    func testSST2Dev() throws {
        let d = try TaskReaders.sst2(url("sst2_dev.tsv"))
        XCTAssertEqual(d.task, .sst2)
        XCTAssertEqual(d.labels, ["negative", "positive"])
        XCTAssertEqual(d.examples, [
            SentenceExample(text: "a gentle , funny film . ", label: 1, line: 2),
            SentenceExample(text: "flat and lifeless ", label: 0, line: 3),
            SentenceExample(text: "the cast is wonderful", label: 1, line: 5),
        ])
    }

    func testSST2TestFileHasNoLabels() throws {
        let d = try TaskReaders.sst2(url("sst2_test.tsv"))
        XCTAssertEqual(d.examples.map(\.text), ["an odd little movie .", "nothing works here ."])
        XCTAssertEqual(d.examples.map(\.label), [nil, nil])
    }

    func testMNLIGlueTSVFindsColumnsByName() throws {
        let d = try TaskReaders.mnli(url("mnli_dev_matched.tsv"))
        XCTAssertEqual(d.labels, ["entailment", "neutral", "contradiction"])
        XCTAssertEqual(d.examples.count, 3)
        // Quotes are text: GLUE TSVs are read without quoting.
        XCTAssertEqual(d.examples[0], SentenceExample(text: "The cat sat \"on\" the mat.", pair: "A cat was sitting.", label: 0, line: 2))
        XCTAssertEqual(d.examples.map(\.label), [0, 2, 1])
        let test = try TaskReaders.mnli(url("mnli_test_matched.tsv"))
        XCTAssertEqual(test.examples, [SentenceExample(text: "She smiled.", pair: "She was happy.", label: nil, line: 2)])
    }

    func testMNLIJSONLines() throws {
        let d = try TaskReaders.mnli(url("mnli.jsonl"))
        XCTAssertEqual(d.examples.map(\.label), [2, 0, 1, nil])
        XCTAssertEqual(d.examples.map(\.line), [1, 2, 4, 5])
        XCTAssertEqual(d.examples[0].text, "The new rules are simple.")
        XCTAssertEqual(d.examples[0].pair, "The rules are complicated.")
        XCTAssertEqual(try TaskReaders.classification(.mnli, url("mnli.jsonl")).examples.count, 4)
    }

    func testCoNLLIOB1() throws {
        let d = try TaskReaders.conll2003(TaggedFixtures.url("tagged_iob1.txt"))
        XCTAssertEqual(d.scheme, .iob1)
        XCTAssertEqual(d.sentences.map(\.words), [["Anna", "Berg", "visited", "Oslo", "."], ["Kari", "Ola", "met", "Acme", "Corp"], ["Rain"]])
        XCTAssertEqual(d.sentences[1].tags, ["I-PER", "B-PER", "O", "I-ORG", "I-ORG"])
        XCTAssertEqual(d.sentences[1].lines, [9, 10, 11, 12, 13])
        XCTAssertEqual(d.sentences[0].columns[0], ["NNP", "I-NP"])
        XCTAssertEqual(d.labels, ["O", "B-PER", "I-LOC", "I-ORG", "I-PER"])
        // conlleval reads IOB1 as it is: Kari | Ola are two PER chunks.
        XCTAssertEqual(ConllEval.chunks(d.sentences[1].tags).map(\.type), ["PER", "PER", "ORG"])
    }

    func testCoNLLIOB2() throws {
        let d = try TaskReaders.conll2003(TaggedFixtures.url("tagged_iob2.txt"))
        XCTAssertEqual(d.scheme, .iob2)
        XCTAssertEqual(d.sentences.count, 2)
        XCTAssertEqual(d.sentences[1].tags, ["B-PER", "B-PER"])
        XCTAssertEqual(TaskReaders.detectScheme([["O", "I-PER"]]), .iob1)
        XCTAssertEqual(TaskReaders.detectScheme([["B-PER", "I-LOC"]]), .iob1)
        XCTAssertEqual(TaskReaders.detectScheme([["B-PER", "I-PER", "B-LOC"], []]), .iob2)
    }

    func testSquadV11OffsetsAreUnicodeScalars() throws {
        // The context has an emoji (one scalar, two UTF-16 units) before the answers.
        let d = try TaskReaders.squad(url("squad_v11.json"))
        XCTAssertEqual(d.version, "1.1")
        XCTAssertEqual(d.titles, ["Zurich", "Second"])
        XCTAssertEqual(d.examples.map(\.id), ["q1", "q2", "q3"])
        XCTAssertEqual(d.examples[0].answers.first, .init(text: "Z\u{FC}rich", start: 7))
        XCTAssertEqual(d.examples[1].answers.first?.start, 29)
        XCTAssertEqual(d.skippedUnanswerable, 0)
        XCTAssertEqual(d.articles(first: 1).examples.map(\.id), ["q1", "q2"])
        XCTAssertEqual(d.articles(last: 1).examples.map(\.id), ["q3"])
        XCTAssertEqual(d.articles(first: 0).examples.count, 0)
    }

    func testSquadV2SkipsUnanswerable() throws {
        let d = try TaskReaders.squad(url("squad_v2.json"))
        XCTAssertEqual(d.version, "v2.0")
        XCTAssertEqual(d.examples.map(\.id), ["a"])
        XCTAssertEqual(d.skippedUnanswerable, 1)
    }

    func testClassificationSplitIsTheHeldOutRule() throws {
        let d = try TaskReaders.mnli(url("mnli.jsonl"))
        let (kept, held) = d.split(heldOutPercent: 50, seed: 3)
        let expected = (0..<4).filter { DataSplits.heldOut(index: $0, seed: 3, percent: 50) }
        XCTAssertEqual(held.examples, expected.map { d.examples[$0] })
        XCTAssertEqual(kept.examples.count + held.examples.count, 4)
        XCTAssertEqual(d.split(heldOutPercent: 0, seed: 3).heldOut.examples.count, 0)
        XCTAssertEqual(d.split(heldOutPercent: 100, seed: 3).kept.examples.count, 0)
    }

    /// Files saved with Windows line endings read as the same examples, line numbers included,
    /// and split into the same examples (written back with LF).
    func testCRLFFilesReadLikeLFFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-crlf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func crlf(_ source: URL) throws -> URL {
            let text = try String(contentsOf: source, encoding: .utf8)
            XCTAssertFalse(text.contains("\r"), "the fixture \(source.lastPathComponent) is LF")
            let out = dir.appendingPathComponent(source.lastPathComponent)
            try Data(text.replacingOccurrences(of: "\n", with: "\r\n").utf8).write(to: out)
            return out
        }
        for (task, name) in [(TaskName.sst2, "sst2_dev.tsv"), (.mnli, "mnli_dev_matched.tsv"), (.mnli, "mnli.jsonl")] {
            let lf = try TaskReaders.classification(task, url(name)), windows = try TaskReaders.classification(task, try crlf(url(name)))
            XCTAssertFalse(lf.examples.isEmpty)
            XCTAssertEqual(windows.examples, lf.examples, name)
            XCTAssertEqual(windows.labels, lf.labels, name)
        }
        let conll = try TaggedFixtures.url("tagged_iob1.txt")
        let lf = try TaskReaders.conll2003(conll), windows = try TaskReaders.conll2003(try crlf(conll))
        XCTAssertEqual(windows.sentences, lf.sentences)
        XCTAssertEqual(windows.scheme, lf.scheme)
        for (task, source) in [(TaskName.sst2, url("sst2_dev.tsv")), (.conll2003, conll)] {
            var files: [[String]] = []
            for input in [source, try crlf(source)] {
                let train = dir.appendingPathComponent("train-\(files.count)"), dev = dir.appendingPathComponent("dev-\(files.count)")
                _ = try DataSplits.split(task: task, data: input, seed: 3, heldOutPercent: 50, trainArticles: nil, train: train, dev: dev)
                files.append([try String(contentsOf: train, encoding: .utf8), try String(contentsOf: dev, encoding: .utf8)])
            }
            XCTAssertEqual(files[1], files[0], "\(task)")
        }
    }

    /// The held-out rule equals the Python definition (`splits.json`).
    func testHeldOutRuleMatchesPython() throws {
        let f = try MetricFixtures.json("splits.json")
        for v in try XCTUnwrap(f["splitmix64"] as? [[String: String]]) {
            XCTAssertEqual(DataSplits.splitmix64(UInt64(v["x"]!)!), UInt64(v["z"]!)!, "splitmix64(\(v["x"]!))")
        }
        for c in try XCTUnwrap(f["cases"] as? [[String: Any]]) {
            let seed = UInt64(c["seed"] as! String)!, percent = c["percent"] as! Int, count = c["count"] as! Int
            let held = (0..<count).filter { DataSplits.heldOut(index: $0, seed: seed, percent: percent) }
            XCTAssertEqual(held, c["held_out"] as! [Int], "seed \(seed) percent \(percent)")
        }
    }
}

extension ReadersTests {
    func testFileShapeSniffing() {
        XCTAssertEqual(FileShape.sniff(["-DOCSTART- -X- -X- O"]), .conll)
        XCTAssertEqual(FileShape.sniff(["", "{ ( O O"]), .conll, "a CoNLL word line starting with a brace")
        XCTAssertEqual(FileShape.sniff([#"{"premise": "a", "label": "O"}  "#]), .jsonLines)
        XCTAssertEqual(FileShape.sniff(["{", #"  "data": []"#]), .json)
        XCTAssertEqual(FileShape.sniff(["sentence\tlabel"]), .tsv)
        XCTAssertEqual(FileShape.sniff(["just some text"]), .unknown)
    }
}

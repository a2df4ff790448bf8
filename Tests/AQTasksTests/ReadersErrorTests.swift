import XCTest

@testable import AQTasks

/// Malformed input: one-line `DataError`s that name the file and line (or question id) and say
/// what to do.
final class ReadersErrorTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try MetricFixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// Writes `text` to `name`, runs `read`, and checks the error contains every needle.
    func assertError<T>(_ name: String, _ text: String, _ needles: [String], _ read: (URL) throws -> T,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try MetricFixtures.write(text, name, in: dir)
        do {
            _ = try read(url)
            XCTFail("no error for \(name)", file: file, line: line)
        } catch let error as DataError {
            XCTAssertFalse(error.description.contains("\n"), "one line: \(error.description)", file: file, line: line)
            for n in needles {
                XCTAssertTrue(error.description.contains(n), "\"\(error.description)\" lacks \"\(n)\"", file: file, line: line)
            }
        }
    }

    // MARK: Files

    func testMissingFileDirectoryAndEmptyFile() throws {
        for read in [{ try TaskReaders.sst2($0) }, { try TaskReaders.mnli($0) }, { _ = try TaskReaders.conll2003($0) }, { _ = try TaskReaders.squad($0) }] as [(URL) throws -> Any] {
            XCTAssertThrowsError(try read(dir.appendingPathComponent("nope.txt"))) {
                XCTAssertTrue("\($0)".contains("nope.txt: no such file; expected"), "\($0)")
            }
            XCTAssertThrowsError(try read(dir)) { XCTAssertTrue("\($0)".contains("is a directory; pass the file itself"), "\($0)") }
        }
        try MetricFixtures.write("x", "dev.tsv", in: dir)
        XCTAssertThrowsError(try TaskReaders.sst2(dir)) { XCTAssertTrue("\($0)".contains("(found \(self.dir.path)/dev.tsv)"), "\($0)") }
        try assertError("empty.tsv", "", ["empty.tsv is empty; expected a GLUE SST-2 TSV"], TaskReaders.sst2)
        try assertError("blank.txt", "\n\n  \n", ["blank.txt is empty"], TaskReaders.conll2003)
        try assertError("empty.json", "", ["empty.json is empty"], TaskReaders.squad)
    }

    func testInvalidUTF8NamesTheLine() throws {
        let url = dir.appendingPathComponent("bad.tsv")
        try Data("sentence\tlabel\nok\t1\nbad \u{FF}".utf8.map { $0 } .dropLast(2) + [0xFF, 0x0A]).write(to: url)
        XCTAssertThrowsError(try TaskReaders.sst2(url)) { XCTAssertTrue("\($0)".contains("bad.tsv:3: not valid UTF-8"), "\($0)") }
    }

    // MARK: GLUE

    func testSST2Errors() throws {
        try assertError("dev.tsv", "sentence\tlabel\ngood\t1\ntoo\tmany\tcolumns\n",
                        ["dev.tsv:3: 3 tab-separated columns, the header has 2"], TaskReaders.sst2)
        try assertError("dev.tsv", "sentence\tlabel\ngood\tpositive\n",
                        ["dev.tsv:2: unknown SST-2 label \"positive\"; labels are 0 (negative) and 1 (positive)"], TaskReaders.sst2)
        try assertError("dev.tsv", "text\tlabel\ngood\t1\n",
                        ["dev.tsv:1: header lacks column `sentence`", "sentence<TAB>label"], TaskReaders.sst2)
        try assertError("dev.tsv", "sentence\tlabel\n", ["has a header but no examples"], TaskReaders.sst2)
        // A CoNLL file passed as SST-2.
        try assertError("valid.txt", "-DOCSTART- -X- -X- O\n\nAcme NNP B-NP B-ORG\n",
                        ["valid.txt:1: looks like a CoNLL file", "sst2 expects a GLUE SST-2 TSV"], TaskReaders.sst2)
        try assertError("valid.txt", "Anna NNP B-NP B-PER\n", ["looks like a CoNLL file"], TaskReaders.sst2)
        try assertError("dev.jsonl", "{\"sentence\": \"x\", \"label\": 1}\n", ["looks like a JSON Lines file; sst2 expects"], TaskReaders.sst2)
    }

    func testMNLIErrors() throws {
        try assertError("dev_matched.tsv", "sentence1\tsentence2\tgold_label\na\tb\t-\n",
                        ["dev_matched.tsv:2: unknown MNLI gold_label \"-\"; labels are entailment, neutral, contradiction"], TaskReaders.mnli)
        try assertError("dev_matched.tsv", "sentence1\tgold_label\na\tneutral\n",
                        ["dev_matched.tsv:1: header lacks column `sentence2`"], TaskReaders.mnli)
        try assertError("dev_matched.tsv", "sentence1\tsentence2\tgold_label\na\tneutral\n",
                        ["dev_matched.tsv:2: 2 tab-separated columns, the header has 3"], TaskReaders.mnli)
        try assertError("dev.jsonl", "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"neutral\"}\n{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"neutral\"\n",
                        ["dev.jsonl:2: bad JSON"], TaskReaders.mnli)
        try assertError("dev.jsonl", "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"maybe\"}\n",
                        ["dev.jsonl:1: unknown MNLI label \"maybe\""], TaskReaders.mnli)
        try assertError("dev.jsonl", "{\"premise\": \"a\", \"label\": \"neutral\"}\n",
                        ["dev.jsonl:1: missing string field \"hypothesis\""], TaskReaders.mnli)
        try assertError("dev.jsonl", "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": 3}\n",
                        ["dev.jsonl:1: MNLI label 3 out of range"], TaskReaders.mnli)
        try assertError("dev.jsonl", "{\"premise\": \"a\", \"hypothesis\": \"b\", \"label\": \"neutral\"}\n[1, 2]\n",
                        ["dev.jsonl:2: a JSON value that is not an object"], TaskReaders.mnli)
    }

    // MARK: CoNLL

    func testCoNLLErrors() throws {
        // A TSV passed as CoNLL.
        try assertError("dev.tsv", "sentence\tlabel\ngood film\t1\n",
                        ["dev.tsv:1: looks like a TSV file; conll2003 expects", "`word POS chunk NER`"], TaskReaders.conll2003)
        try assertError("train.txt", "Acme NNP B-NP B-ORG\nsells VBZ B-VP\n",
                        ["train.txt:2: 3 columns; conll2003 expects 4 space-separated columns `word POS chunk NER`"], TaskReaders.conll2003)
        try assertError("train.txt", "Acme NNP B-NP ORG\n",
                        ["train.txt:1: NER tag \"ORG\" is not O, B-TYPE or I-TYPE"], TaskReaders.conll2003)
        try assertError("train.txt", "Acme NNP B-NP B-ORG\nAcme\tNNP B-NP B-ORG\n",
                        ["train.txt:2: tab character"], TaskReaders.conll2003)
        try assertError("train.txt", "-DOCSTART- -X- -X- O\n\n", ["train.txt has no sentences"], TaskReaders.conll2003)
        try assertError("dev.jsonl", "{\"a\": 1}\n", ["looks like a JSON Lines file; conll2003 expects"], TaskReaders.conll2003)
    }

    // MARK: SQuAD

    func squadJSON(context: String = "Bern is the capital.", answers: String) -> String {
        """
        {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": \(jsonString(context)), "qas": [
          {"id": "q7", "question": "?", "answers": \(answers)}]}]}]}
        """
    }

    func testSquadErrors() throws {
        try assertError("dev.json", squadJSON(answers: #"[{"text": "capital", "answer_start": 30}]"#),
                        ["dev.json: question q7: answer 0 \"capital\" at answer_start 30 runs outside the context"], TaskReaders.squad)
        try assertError("dev.json", squadJSON(answers: #"[{"text": "capital", "answer_start": 3}]"#),
                        ["dev.json: question q7: answer 0 \"capital\" is not at answer_start 3 (the context has \"n is th\" there); fix answer_start or the answer text"],
                        TaskReaders.squad)
        try assertError("dev.json", squadJSON(answers: #"[{"text": "capital", "answer_start": -1}]"#),
                        ["question q7: answer 0", "runs outside the context"], TaskReaders.squad)
        try assertError("dev.json", squadJSON(answers: #"[{"text": "capital"}]"#),
                        ["question q7: answer 0 needs a string \"text\" and an integer \"answer_start\""], TaskReaders.squad)
        try assertError("dev.json", squadJSON(answers: "[]"), ["question q7: no answers"], TaskReaders.squad)
        try assertError("dev.json", "{\"version\": \"1.1\",\n \"data\": [\n  {\"title\": x}]}",
                        ["dev.json:3: bad JSON"], TaskReaders.squad)
        try assertError("dev.json", "{\"version\": \"1.1\"}", ["dev.json: no \"data\" array"], TaskReaders.squad)
        try assertError("dev.tsv", "sentence\tlabel\nx\t1\n", ["looks like a TSV file; squad expects"], TaskReaders.squad)
        let duplicate = """
            {"data": [{"title": "T", "paragraphs": [{"context": "ab", "qas": [
              {"id": "d", "question": "?", "answers": [{"text": "a", "answer_start": 0}]},
              {"id": "d", "question": "?", "answers": [{"text": "b", "answer_start": 1}]}]}]}]}
            """
        try assertError("dev.json", duplicate, ["question d: duplicate question id"], TaskReaders.squad)
    }

    func testSquadOffsetsCountScalarsNotUTF16() throws {
        // "😀" is one Python character: "x" starts at 2, not at 3 (UTF-16) or 5 (UTF-8).
        let url = try MetricFixtures.write(squadJSON(context: "\u{1F600} x", answers: #"[{"text": "x", "answer_start": 2}]"#), "ok.json", in: dir)
        XCTAssertEqual(try TaskReaders.squad(url).examples[0].answers[0].start, 2)
        try assertError("bad.json", squadJSON(context: "\u{1F600} x", answers: #"[{"text": "x", "answer_start": 3}]"#),
                        ["runs outside the context (3 characters)"], TaskReaders.squad)
    }
}

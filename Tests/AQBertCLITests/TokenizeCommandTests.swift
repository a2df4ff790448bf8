import Foundation
import XCTest

/// The `tokenize` contract: one JSON object per input line, in order; only "\n" ends a line;
/// empty lines are empty texts; [CLS]/[SEP] included; truncation only with --max-length.
final class TokenizeCommandTests: XCTestCase {
    struct Line: Decodable {
        let input_ids: [Int]
        let tokens: [String]
        let offsets: [[Int]]
    }

    func decode(_ text: String) throws -> [Line] {
        try text.split(separator: "\n").map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
    }

    func testLinesEmptyTextsCarriageReturnsAndStdio() throws {
        // The MiniLM (bert-base-uncased) vocabulary and configs committed with the tokenizer tests.
        let model = Scratch.tokenizerFixture.path
        let input = "Hello, world!\n\nCafé\r\nlast line without newline"
        let r = try CLI.run(["tokenize", "--model", model, "--input", "-", "--output", "-"], stdin: input)
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = try decode(r.stdout)
        XCTAssertEqual(lines.count, 4)
        XCTAssertEqual(lines[0].tokens, ["[CLS]", "hello", ",", "world", "!", "[SEP]"])
        XCTAssertEqual(lines[0].input_ids, [101, 7592, 1010, 2088, 999, 102])
        XCTAssertEqual(lines[0].offsets, [[0, 0], [0, 5], [5, 6], [7, 12], [12, 13], [0, 0]])
        XCTAssertEqual(lines[1].tokens, ["[CLS]", "[SEP]"])  // empty line = empty text
        XCTAssertEqual(lines[2].tokens, ["[CLS]", "cafe", "[SEP]"])  // "\r" is whitespace inside the text
        XCTAssertEqual(lines[2].offsets[1], [0, 4])
        XCTAssertEqual(lines[3].tokens.first, "[CLS]")

        // A trailing "\n" does not add a text; files work like stdin; output is written to a file.
        let dir = try Scratch.directory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let inFile = dir.appendingPathComponent("in.txt"), outFile = dir.appendingPathComponent("out.jsonl")
        try "one two three four\n".write(to: inFile, atomically: true, encoding: .utf8)
        XCTAssertEqual(try CLI.run(["tokenize", "--model", model, "--input", inFile.path, "--output", outFile.path]).status, 0)
        XCTAssertEqual(try decode(String(contentsOf: outFile, encoding: .utf8)).map(\.tokens),
                       [["[CLS]", "one", "two", "three", "four", "[SEP]"]])
        // --max-length counts [CLS] and [SEP].
        let t = try CLI.run(["tokenize", "--model", model, "--input", inFile.path, "--output", "-", "--max-length", "4"])
        XCTAssertEqual(try decode(t.stdout).map(\.tokens), [["[CLS]", "one", "two", "[SEP]"]])
    }

    func testErrors() throws {
        let model = Scratch.tokenizerFixture.path
        assertUserError(try CLI.run(["tokenize", "--model", model, "--input", "/nonexistent/x.txt", "--output", "-"]),
                        contains: "/nonexistent/x.txt")
        assertUserError(try CLI.run(["tokenize", "--model", "/nonexistent-model", "--input", "-", "--output", "-"], stdin: "a"),
                        contains: "/nonexistent-model")
        assertUserError(try CLI.run(["tokenize", "--model", model, "--input", model, "--output", "-"]), contains: "directory")
        assertUserError(try CLI.run(["tokenize", "--model", model, "--input", "-", "--output", "/nonexistent/dir/out.jsonl"], stdin: "a"),
                        contains: "/nonexistent/dir")
    }
}

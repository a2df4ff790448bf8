import Foundation
import XCTest
import AQTokenizer

/// The pieces of the `aqbert tokenize` contract that live in the library.
final class TokenizerIOTests: XCTestCase {
    static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static let miniLM: BertTokenizer = try! BertTokenizer(directory: fixtures)

    func testSplitLines() throws {
        func split(_ s: String) throws -> [String] { try TokenizerIO.splitLines(Data(s.utf8), source: "t") }
        XCTAssertEqual(try split(""), [])
        XCTAssertEqual(try split("\n"), [""])
        XCTAssertEqual(try split("a"), ["a"])
        XCTAssertEqual(try split("a\n"), ["a"])
        XCTAssertEqual(try split("a\n\nb"), ["a", "", "b"])
        XCTAssertEqual(try split("a\n\n"), ["a", ""])
        // Only \n ends a line: \r stays (compare scalars; "\r\n" is one Character in Swift).
        let lines = try split("a\r\nb\rc\u{2028}d\n")
        XCTAssertEqual(lines.map { Array($0.unicodeScalars) },
                       ["a\r", "b\rc\u{2028}d"].map { Array($0.unicodeScalars) })
        XCTAssertThrowsError(try TokenizerIO.splitLines(Data([0x61, 0x0A, 0xFF, 0x0A]), source: "in.txt")) { error in
            XCTAssertEqual((error as? TokenizerError)?.description, "in.txt is not valid UTF-8 (line 2)")
        }
    }

    func testJSONLinesMatchPythonByteForByte() throws {
        // Expected bytes from json.dumps(..., ensure_ascii=False, separators=(",", ":")) of
        // BertTokenizerFast output (see Scripts/fixtures/make_tokenizer_fixtures.py).
        let expected = #"""
        {"input_ids":[101,2002,2056,1000,7632,1000,1032,7929,1057,1746,102],"tokens":["[CLS]","he","said","\"","hi","\"","\\","ok","u","中","[SEP]"],"offsets":[[0,0],[0,2],[3,7],[8,9],[9,11],[11,12],[13,14],[15,17],[18,19],[20,21],[0,0]]}
        {"input_ids":[101,102],"tokens":["[CLS]","[SEP]"],"offsets":[[0,0],[0,0]]}

        """#
        let data = TokenizerIO.jsonLines([#"He said "hi" \ ok ü 中"#, ""], tokenizer: TokenizerIOTests.miniLM)
        XCTAssertEqual(String(decoding: data, as: UTF8.self), expected)
        // Control characters in a token are escaped like Python does.
        var out: [UInt8] = []
        TokenizerIO.appendJSONString("a\u{1}\t\n\r\u{8}\u{C}\u{7F}é", to: &out)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), #""a\u0001\t\n\r\b\f"# + "\u{7F}é\"")
    }

    func testJSONLinesOrderAndTruncationAcrossChunks() throws {
        let lines = (0..<2000).map { "line number \($0) with a few more words" }
        let data = TokenizerIO.jsonLines(lines, tokenizer: TokenizerIOTests.miniLM, maxLength: 5)
        let outLines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        XCTAssertEqual(outLines.count, 2000)
        for (i, line) in outLines.enumerated() where i % 97 == 0 {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let ids = object["input_ids"] as! [Int]
            XCTAssertEqual(ids.count, 5)
            XCTAssertEqual(ids, TokenizerIOTests.miniLM.encode(lines[i], maxLength: 5).ids)
        }
    }

    func testWriteAtomically() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aqtok-io-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out.jsonl").path
        try TokenizerIO.writeAtomically(Data("one\n".utf8), toPath: path)
        try TokenizerIO.writeAtomically(Data("two\n".utf8), toPath: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "two\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["out.jsonl"])
        XCTAssertThrowsError(try TokenizerIO.writeAtomically(Data(), toPath: dir.path)) { error in
            XCTAssertTrue("\(error)".contains("is a directory"), "\(error)")
        }
        XCTAssertThrowsError(try TokenizerIO.writeAtomically(Data(), toPath: dir.appendingPathComponent("no/x.jsonl").path)) { error in
            XCTAssertTrue("\(error)".contains("does not exist"), "\(error)")
        }
    }
}

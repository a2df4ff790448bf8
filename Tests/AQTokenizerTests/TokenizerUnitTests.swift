import Foundation
import XCTest
import AQTokenizer

final class TokenizerUnitTests: XCTestCase {
    static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static let miniLM: BertTokenizer = try! BertTokenizer(directory: fixtures)

    var tok: BertTokenizer { TokenizerUnitTests.miniLM }

    // MARK: - Basics

    func testSpecialIdsAndLookup() {
        XCTAssertEqual(tok.padTokenId, 0)
        XCTAssertEqual(tok.unkTokenId, 100)
        XCTAssertEqual(tok.clsTokenId, 101)
        XCTAssertEqual(tok.sepTokenId, 102)
        XCTAssertEqual(tok.maskTokenId, 103)
        XCTAssertEqual(tok.vocabulary.count, 30522)
        XCTAssertEqual(tok.id(of: "hello"), 7592)
        XCTAssertNil(tok.id(of: "definitely-not-a-token"))
        XCTAssertEqual(tok.token(of: 7592), "hello")
        XCTAssertNil(tok.token(of: -1))
        XCTAssertNil(tok.token(of: 1_000_000))
        XCTAssertEqual(tok.options.lowercase, true)
        XCTAssertNil(tok.options.stripAccents)
        XCTAssertEqual(tok.options.modelMaxLength, 512)
        XCTAssertEqual(tok.specialTokenIds, [0, 100, 101, 102, 103])
    }

    func testSingleAndPair() {
        let e = tok.encode("Hello, world!")
        XCTAssertEqual(e.tokens, ["[CLS]", "hello", ",", "world", "!", "[SEP]"])
        XCTAssertEqual(e.offsetPairs.map { [$0.0, $0.1] }, [[0, 0], [0, 5], [5, 6], [7, 12], [12, 13], [0, 0]])
        XCTAssertEqual(e.wordIds, [nil, 0, 1, 2, 3, nil])
        XCTAssertEqual(e.specialTokensMask, [1, 0, 0, 0, 0, 1])

        let p = tok.encode("Who?", pair: "Me.")
        XCTAssertEqual(p.tokens, ["[CLS]", "who", "?", "[SEP]", "me", ".", "[SEP]"])
        XCTAssertEqual(p.typeIds, [0, 0, 0, 0, 1, 1, 1])
        XCTAssertEqual(p.sequenceIds, [nil, 0, 0, nil, 1, 1, nil])
        XCTAssertEqual(p.wordIds, [nil, 0, 1, nil, 0, 1, nil])
        XCTAssertEqual(p.tokenRange(ofSequence: 1), 4..<6)
        XCTAssertEqual(p.token(forCharacter: 1, inSequence: 1), 4)
    }

    func testOffsetsAreScalarIndicesOfTheOriginal() {
        // Precomposed é is one scalar; decomposed e + U+0301 two; emoji one scalar each.
        let text = "café cafe\u{301} 👍🏽x"
        let e = tok.encode(text)
        let scalars = Array(text.unicodeScalars)
        let pieces = e.offsets.dropFirst().dropLast().map { String(String.UnicodeScalarView(scalars[$0.start..<$0.end])) }
        XCTAssertEqual(e.tokens, ["[CLS]", "cafe", "cafe", "[UNK]", "[SEP]"])
        // The stripped accent is not part of the second token (as in Hugging Face); compare scalars
        // because Swift String equality is canonical equivalence.
        XCTAssertEqual(pieces.map { Array($0.unicodeScalars) }, ["café", "cafe", "👍🏽x"].map { Array($0.unicodeScalars) })
        XCTAssertEqual(e.offsets[2], TokenOffset(5, 9))
    }

    func testLiteralSpecialTokensAreMatchedOnTheOriginalText() {
        let e = tok.encode("a[MASK]b [cls]")
        XCTAssertEqual(e.tokens, ["[CLS]", "a", "[MASK]", "b", "[", "cl", "##s", "]", "[SEP]"])
        XCTAssertEqual(e.wordIds, [nil, 0, 1, 2, 3, 4, 4, 5, nil])
    }

    func testLongWords() {
        XCTAssertEqual(tok.tokenize(String(repeating: "a", count: 101)), ["[UNK]"])
        XCTAssertNotEqual(tok.tokenize(String(repeating: "a", count: 100)), ["[UNK]"])
        let e = tok.encode("x " + String(repeating: "b", count: 150))
        XCTAssertEqual(e.offsets[2], TokenOffset(2, 152))
    }

    // MARK: - Truncation

    func testTruncationStrategies() throws {
        let a = "a b c d e f g", b = "h i j"
        XCTAssertEqual(tok.encode(a, pair: b, maxLength: 8).tokens,
                       ["[CLS]", "a", "b", "c", "[SEP]", "h", "i", "[SEP]"])
        XCTAssertEqual(tok.encode(a, pair: b, maxLength: 9, truncation: .onlyFirst).tokens,
                       ["[CLS]", "a", "b", "c", "[SEP]", "h", "i", "j", "[SEP]"])
        XCTAssertEqual(tok.encode(b, pair: a, maxLength: 9, truncation: .onlySecond).tokens,
                       ["[CLS]", "h", "i", "j", "[SEP]", "a", "b", "c", "[SEP]"])
        XCTAssertEqual(tok.encode(a, maxLength: 4).tokens, ["[CLS]", "a", "b", "[SEP]"])
        XCTAssertEqual(tok.encode(a, maxLength: 2).tokens, ["[CLS]", "[SEP]"])
        // Below the number of special tokens Hugging Face does not truncate at all.
        XCTAssertEqual(tok.encode(a, maxLength: 1).count, 9)
        XCTAssertEqual(tok.encode(a, addSpecialTokens: false, maxLength: 3).tokens, ["a", "b", "c"])
        // Every strategy respects maxLength when it can.
        for strategy in TruncationStrategy.allCases {
            let e = tok.encode("one two three four five", pair: "six seven eight nine ten", maxLength: 9, truncation: strategy)
            XCTAssertEqual(e.count, 9, "\(strategy)")
        }
    }

    func testTruncationErrorsLikeHuggingFace() {
        XCTAssertThrowsError(try tok.tryEncode("hello world how are you", maxLength: 4, truncation: .onlySecond)) { error in
            XCTAssertEqual((error as? TokenizerError)?.kind, .truncation)
        }
        XCTAssertThrowsError(try tok.tryEncode("hello world how are you", pair: "ok", maxLength: 5, truncation: .onlySecond))
        // The non-throwing variant falls back to longest_first and still fits.
        XCTAssertEqual(tok.encode("hello world how are you", maxLength: 4, truncation: .onlySecond).count, 4)
        XCTAssertEqual(tok.encode("hello world how are you", pair: "ok", maxLength: 5, truncation: .onlySecond).count, 5)
    }

    // MARK: - Options

    func testCasedAndAccentOptions() throws {
        var options = tok.options
        options.lowercase = false
        let cased = try BertTokenizer(vocabulary: tok.vocabulary, options: options)
        XCTAssertEqual(cased.tokenize("hello Hello"), ["hello", "[UNK]"])
        XCTAssertEqual(cased.tokenize("café"), ["[UNK]"])  // strip_accents follows lower-casing: off
        options.stripAccents = false
        let keep = try BertTokenizer(vocabulary: tok.vocabulary, options: options)
        XCTAssertEqual(keep.tokenize("é"), ["[UNK]"])
        options.stripAccents = true
        let strip = try BertTokenizer(vocabulary: tok.vocabulary, options: options)
        XCTAssertEqual(strip.tokenize("é"), ["e"])
        options = tok.options
        options.tokenizeChineseChars = false
        let noCJK = try BertTokenizer(vocabulary: tok.vocabulary, options: options)
        XCTAssertEqual(noCJK.tokenize("中文"), ["中", "##文"])
        XCTAssertEqual(tok.tokenize("中文"), ["中", "文"])
    }

    func testConfigOverridesLikeTransformers() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: TokenizerUnitTests.fixtures.appendingPathComponent("vocab.txt"),
                                         to: dir.appendingPathComponent("vocab.txt"))
        // No config: transformers defaults (lower-case, strip accents).
        XCTAssertEqual(try BertTokenizer(directory: dir).tokenize("Héllo"), ["hello"])
        // tokenizer_config.json wins over tokenizer.json's normalizer block, as in transformers 5.
        try FileManager.default.copyItem(at: TokenizerUnitTests.fixtures.appendingPathComponent("tokenizer.json"),
                                         to: dir.appendingPathComponent("tokenizer.json"))
        try #"{"do_lower_case": false, "strip_accents": null, "model_max_length": 1000000000000000019884624838656}"#
            .write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        let t = try BertTokenizer(directory: dir)
        XCTAssertEqual(t.tokenize("Héllo hello"), ["[UNK]", "hello"])
        XCTAssertNil(t.options.modelMaxLength)
        XCTAssertEqual(t.tokenize("[CLS]"), ["[CLS]"])
    }

    func testVocabularyFileParsing() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("[PAD]\r\n[UNK]\r[CLS]\n[SEP]\n[MASK]\nhello\n##s\nworld".utf8).write(to: dir.appendingPathComponent("vocab.txt"))
        let t = try BertTokenizer(directory: dir)
        XCTAssertEqual(t.vocabulary, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "##s", "world"])
        XCTAssertEqual(t.encode("Hellos world!").tokens, ["[CLS]", "hello", "##s", "world", "[UNK]", "[SEP]"])
    }

    func testMissingPadAndMaskAreAppended() throws {
        let t = try BertTokenizer(vocabulary: ["[UNK]", "[CLS]", "[SEP]", "a"], options: .init())
        XCTAssertEqual(t.padTokenId, 4)
        XCTAssertEqual(t.maskTokenId, 5)
        XCTAssertEqual(t.vocabulary.count, 6)
        XCTAssertEqual(t.encode("a [MASK]").ids, [1, 3, 5, 2])
    }

    func testCanonicallyEquivalentVocabularyEntriesStayDistinct() throws {
        // Swift String equality is canonical equivalence; the vocabulary must compare scalars.
        var options = BertTokenizer.Options()
        options.lowercase = false
        options.stripAccents = false
        let t = try BertTokenizer(vocabulary: ["[UNK]", "[CLS]", "[SEP]", "\u{E9}", "e\u{301}"], options: options)
        XCTAssertEqual(t.id(of: "\u{E9}"), 3)
        XCTAssertEqual(t.id(of: "e\u{301}"), 4)
        XCTAssertEqual(t.encode("\u{E9} e\u{301}").ids, [1, 3, 4, 2])
    }

    func testAddedTokenOptions() throws {
        var options = BertTokenizer.Options()
        options.addedTokens = [AddedToken("<ent>", special: false, normalized: true, singleWord: true, lstrip: true, rstrip: true)]
        let t = try BertTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"], options: options)
        let e = t.encode("a <ENT> b a<ent>")
        // "a<ent>" is not a single word: it goes through WordPiece ("<", "ent", ">" are unknown).
        XCTAssertEqual(e.ids, [2, 5, 7, 6, 5, 1, 1, 1, 3])
        XCTAssertEqual(e.tokens[2], " <ent> ")
        XCTAssertEqual(e.offsets[2], TokenOffset(1, 8))
    }

    // MARK: - Decode, pad, batch

    func testDecode() {
        let e = tok.encode("Hello, world! It's tokenization.")
        // As transformers 5 (the WordPiece decoder cleans up token by token only).
        XCTAssertEqual(tok.decode(e.ids), "hello, world! it ' s tokenization.")
        XCTAssertEqual(tok.decode(e.ids, skipSpecialTokens: false), "[CLS] hello, world! it ' s tokenization. [SEP]")
    }

    func testPadAndBatch() {
        let e = tok.pad(tok.encode("hi"), to: 6)
        XCTAssertEqual(e.ids, [101, 7632, 102, 0, 0, 0])
        XCTAssertEqual(e.attentionMask, [1, 1, 1, 0, 0, 0])
        XCTAssertEqual(e.wordIds, [nil, 0, nil, nil, nil, nil])
        let texts = (0..<1000).map { "sentence number \($0) with some words, punctuation & ünïcödé" }
        XCTAssertEqual(tok.encodeBatch(texts, maxLength: 12), texts.map { tok.encode($0, maxLength: 12) })
    }

    func testSpeedOnSST2Dev() throws {
        let content = try String(contentsOf: TokenizerUnitTests.fixtures.appendingPathComponent("sst2_dev.jsonl"), encoding: .utf8)
        let texts = try content.split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any])["text"] as! String
        }
        let start = Date()
        var total = 0
        for t in texts { total += tok.encode(t).count }
        let seconds = Date().timeIntervalSince(start)
        print("SST-2 dev: \(texts.count) sentences, \(total) tokens in \(String(format: "%.3f", seconds)) s")
        XCTAssertGreaterThan(total, 10_000)
        XCTAssertLessThan(seconds, 5.0)  // generous for debug builds; release is far faster
    }

    // MARK: - Errors

    func testErrorMissingVocab() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        assertError(try BertTokenizer(directory: dir), kind: .missingFile, mentions: "vocab.txt")
    }

    func testErrorVocabIsADirectory() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("vocab.txt"), withIntermediateDirectories: false)
        assertError(try BertTokenizer(directory: dir), kind: .notAFile, mentions: "vocab.txt")
    }

    func testErrorDirectoryIsAFileOrMissing() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("vocab.txt")
        try Data("[UNK]\n".utf8).write(to: file)
        assertError(try BertTokenizer(directory: file), kind: .notADirectory, mentions: "vocab.txt")
        assertError(try BertTokenizer(directory: dir.appendingPathComponent("nope")), kind: .missingFile, mentions: "nope")
    }

    func testErrorBadJSON() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: TokenizerUnitTests.fixtures.appendingPathComponent("vocab.txt"),
                                         to: dir.appendingPathComponent("vocab.txt"))
        let config = dir.appendingPathComponent("tokenizer_config.json")
        try Data("{\"do_lower_case\": tru".utf8).write(to: config)
        assertError(try BertTokenizer(directory: dir), kind: .invalidJSON, mentions: "line 1, column 19")
        try Data("{\"do_lower_case\": true, \"do_lower_case\": false}".utf8).write(to: config)
        assertError(try BertTokenizer(directory: dir), kind: .invalidJSON, mentions: "duplicate key \"do_lower_case\"")
        try Data("{\"added_tokens_decoder\": {\"x\": {\"content\": \"[A]\"}}}".utf8).write(to: config)
        assertError(try BertTokenizer(directory: dir), kind: .invalidJSON, mentions: "added_tokens_decoder[\"x\"]")
        try Data("[1, 2]".utf8).write(to: config)
        assertError(try BertTokenizer(directory: dir), kind: .invalidJSON, mentions: "tokenizer_config.json")
        try Data("{\"do_lower_case\": \"yes\"}".utf8).write(to: config)
        assertError(try BertTokenizer(directory: dir), kind: .invalidJSON, mentions: "do_lower_case")
        try FileManager.default.removeItem(at: config)
        try Data("not json".utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        assertError(try BertTokenizer(directory: dir), kind: .invalidJSON, mentions: "tokenizer.json")
        // Malformed added tokens are errors (skipping one would tokenize differently).
        for (text, needle) in [("{\"added_tokens\": 5}", "\"added_tokens\" must be an array"),
                               ("{\"added_tokens\": [{\"id\": true, \"content\": \"[A]\"}]}", "added_tokens[0]"),
                               ("{\"added_tokens\": [{\"id\": 3, \"content\": \"\"}]}", "added_tokens[0]"),
                               ("{\"added_tokens\": [{\"id\": 0, \"content\": \"[PAD]\"}, {\"id\": 1.5, \"content\": \"x\"}]}", "added_tokens[1]")] {
            try Data(text.utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
            assertError(try BertTokenizer(directory: dir), kind: .invalidJSON, mentions: needle)
        }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("tokenizer.json"))
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("special_tokens_map.json"), withIntermediateDirectories: false)
        assertError(try BertTokenizer(directory: dir), kind: .notAFile, mentions: "special_tokens_map.json")
    }

    func testErrorBadVocabularies() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let vocab = dir.appendingPathComponent("vocab.txt")
        try Data().write(to: vocab)
        assertError(try BertTokenizer(directory: dir), kind: .invalidVocabulary, mentions: "vocab.txt")
        try Data([0x5B, 0xFF, 0xFE, 0x0A]).write(to: vocab)
        assertError(try BertTokenizer(directory: dir), kind: .invalidVocabulary, mentions: "UTF-8")
        try Data("[PAD]\n[CLS]\n[SEP]\n".utf8).write(to: vocab)
        assertError(try BertTokenizer(directory: dir), kind: .missingToken, mentions: "[UNK]")
        try Data("[PAD]\n[UNK]\n[SEP]\n".utf8).write(to: vocab)
        assertError(try BertTokenizer(directory: dir), kind: .missingToken, mentions: "[CLS]")
        try Data("[PAD]\n[UNK]\n[CLS]\n".utf8).write(to: vocab)
        assertError(try BertTokenizer(directory: dir), kind: .missingToken, mentions: "[SEP]")
        assertError(try BertTokenizer(vocabulary: [], options: .init()), kind: .invalidVocabulary, mentions: "empty")
        var options = BertTokenizer.Options()
        options.maxInputCharsPerWord = -1
        assertError(try BertTokenizer(vocabulary: ["[UNK]", "[CLS]", "[SEP]"], options: options), kind: .invalidOption,
                    mentions: "maxInputCharsPerWord")
    }

    // MARK: - Helpers

    func makeTempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aqtok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    func assertError<T>(_ body: @autoclosure () throws -> T, kind: TokenizerError.Kind, mentions: String,
                        file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try body()
            XCTFail("expected a \(kind) error", file: file, line: line)
        } catch let error as TokenizerError {
            XCTAssertEqual(error.kind, kind, error.description, file: file, line: line)
            XCTAssertTrue(error.description.contains(mentions), "\(error.description) should mention \(mentions)", file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }
}

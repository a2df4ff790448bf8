import Foundation
import XCTest
import AQTokenizer

/// Exact parity with Hugging Face `BertTokenizerFast` on the recorded fixtures
/// (see Fixtures/FIXTURES.md and Scripts/fixtures/make_tokenizer_fixtures.py).
final class FixtureParityTests: XCTestCase {
    static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!

    /// Tokenizers by configuration name (configs.json holds the transformers kwargs).
    static let tokenizers: [String: BertTokenizer] = {
        let base = try! BertTokenizer(directory: fixtures)
        var result = ["uncased": base]
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("configs.json"))
        let configs = try! JSONSerialization.jsonObject(with: data) as! [String: [String: Any]]
        for (name, kwargs) in configs where name != "uncased" {
            var options = base.options
            for (key, value) in kwargs {
                switch key {
                case "do_lower_case": options.lowercase = value as! Bool
                case "strip_accents": options.stripAccents = value is NSNull ? nil : (value as! Bool)
                case "tokenize_chinese_chars": options.tokenizeChineseChars = value as! Bool
                default: fatalError("unknown config key \(key)")
                }
            }
            result[name] = try! BertTokenizer(vocabulary: base.vocabulary, options: options)
        }
        return result
    }()

    struct Mismatch: CustomStringConvertible {
        var line: Int
        var field: String
        var text: String
        var expected: String
        var actual: String
        var description: String {
            "line \(line) [\(field)] text=\(text.debugDescription.prefix(120))\n  expected \(expected.prefix(400))\n  actual   \(actual.prefix(400))"
        }
    }

    /// One fixture line. Decoded with JSONDecoder: JSONSerialization on Linux drops a leading
    /// U+FEFF from string values, which would corrupt the "\u{FEFF}start" case.
    struct Case: Decodable {
        var config: String
        var text: String
        var pair: String?
        var max_length: Int?
        var truncation: String?
        var add_special_tokens: Bool?
        var input_ids: [Int]?
        var tokens: [String]?
        var token_type_ids: [Int]?
        var offsets: [[Int]]?
        var word_ids: [Int?]?
        var sequence_ids: [Int?]?
        var decoded: String?
        /// Set instead of the outputs where Hugging Face raises (truncation errors).
        var error: String?
    }

    static func loadCases(_ name: String) throws -> [Case] {
        let url = FixtureParityTests.fixtures.appendingPathComponent(name)
        let content = try String(contentsOf: url, encoding: .utf8)
        let decoder = JSONDecoder()
        return try content.split(separator: "\n", omittingEmptySubsequences: true).map {
            try decoder.decode(Case.self, from: Data($0.utf8))
        }
    }

    func runFixture(_ name: String, minimumCases: Int) throws {
        var mismatches: [Mismatch] = []
        var cases = 0
        for (index, c) in try FixtureParityTests.loadCases(name).enumerated() {
            cases += 1
            guard let tokenizer = FixtureParityTests.tokenizers[c.config] else {
                XCTFail("unknown config \(c.config)")
                continue
            }
            let text = c.text
            let truncation = c.truncation.flatMap(TruncationStrategy.init(rawValue:)) ?? .longestFirst
            if let error = c.error {
                XCTAssertThrowsError(try tokenizer.tryEncode(text, pair: c.pair, addSpecialTokens: c.add_special_tokens ?? true,
                                                             maxLength: c.max_length, truncation: truncation),
                                     "line \(index + 1): Hugging Face raised \(error)")
                // The non-throwing variant still respects max_length (longest_first fallback).
                let fallback = tokenizer.encode(text, pair: c.pair, addSpecialTokens: c.add_special_tokens ?? true,
                                                maxLength: c.max_length, truncation: truncation)
                XCTAssertLessThanOrEqual(fallback.count, c.max_length ?? Int.max, "line \(index + 1)")
                continue
            }
            guard let inputIds = c.input_ids, let typeIds = c.token_type_ids, let offsets = c.offsets,
                  let wordIds = c.word_ids else {
                XCTFail("line \(index + 1): incomplete fixture")
                continue
            }
            let encoding = try tokenizer.tryEncode(text, pair: c.pair, addSpecialTokens: c.add_special_tokens ?? true,
                                                   maxLength: c.max_length, truncation: truncation)

            func check(_ field: String, _ expected: String, _ actual: String) {
                // Byte comparison: String == would accept canonically equivalent tokens.
                if !expected.utf8.elementsEqual(actual.utf8) {
                    mismatches.append(Mismatch(line: index + 1, field: field, text: text, expected: expected, actual: actual))
                }
            }
            check("input_ids", "\(inputIds)", "\(encoding.ids)")
            check("tokens", "\(c.tokens ?? inputIds.map { tokenizer.vocabulary[$0] })", "\(encoding.tokens)")
            check("token_type_ids", "\(typeIds)", "\(encoding.typeIds)")
            check("offsets", "\(offsets.map { TokenOffset($0[0], $0[1]) })", "\(encoding.offsets)")
            check("word_ids", "\(wordIds)", "\(encoding.wordIds)")
            let sequenceIds: [Int?] = c.sequence_ids ?? wordIds.map { $0 == nil ? nil : 0 }
            check("sequence_ids", "\(sequenceIds)", "\(encoding.sequenceIds)")
            if let decoded = c.decoded {
                check("decoded", decoded, tokenizer.decode(encoding.ids, skipSpecialTokens: true))
            }
            check("attention_mask", "\([Int](repeating: 1, count: inputIds.count))", "\(encoding.attentionMask)")
        }
        XCTAssertGreaterThanOrEqual(cases, minimumCases, "\(name) has too few cases")
        if !mismatches.isEmpty {
            let shown = mismatches.prefix(15).map { $0.description }.joined(separator: "\n")
            XCTFail("\(name): \(mismatches.count) mismatching fields in \(cases) cases\n\(shown)")
        }
    }

    func testSST2Dev() throws { try runFixture("sst2_dev.jsonl", minimumCases: 872) }

    func testSQuADSample() throws { try runFixture("squad_dev.jsonl", minimumCases: 400) }

    func testAdversarial() throws { try runFixture("adversarial.jsonl", minimumCases: 800) }

    func testUnicodeSweep() throws { try runFixture("unicode_sweep.jsonl", minimumCases: 100) }

    func testSQuADPairsReallyTruncate() throws {
        // Guard against a fixture that would not exercise only_second truncation.
        let truncated = try FixtureParityTests.loadCases("squad_dev.jsonl").filter {
            $0.error == nil && $0.truncation == "only_second" && $0.max_length == $0.input_ids?.count
        }
        XCTAssertGreaterThanOrEqual(truncated.count, 15)
    }
}

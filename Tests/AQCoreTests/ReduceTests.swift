import XCTest
@testable import AQCore
import AQNN

/// Layer 1 of the test pyramid, Tape+Reduce.swift: sum, mean: each op against finite differences (and its fast
/// path against the portable one where it has one).
final class ReduceTests: XCTestCase {
    func testReductions() {
        let x = randomTensor([2, 3, 4], seed: 13)
        checkGradients("sum", inputs: [x]) { t, i in t.sum(i[0]) }
        checkGradients("mean", inputs: [x]) { t, i in t.mean(i[0]) }
        for axis in 0..<3 {
            checkGradients("sum axis \(axis)", inputs: [x]) { t, i in t.sum(i[0], axis: axis) }
            checkGradients("mean axis \(axis)", inputs: [x]) { t, i in t.mean(i[0], axis: axis) }
        }
    }
}

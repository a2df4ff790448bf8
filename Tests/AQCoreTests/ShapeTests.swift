import XCTest
@testable import AQCore
import AQNN

/// Layer 1 of the test pyramid, Tape+Shape.swift: reshape, permute, slice, concat: each op against finite differences (and its fast
/// path against the portable one where it has one).
final class ShapeTests: XCTestCase {
    func testShapeOps() {
        let x = randomTensor([2, 3, 4], seed: 10)
        checkGradients("reshape", inputs: [x]) { t, i in t.mul(t.reshape(i[0], [6, -1]), t.reshape(i[0], [6, 4])) }
        checkGradients("permute", inputs: [x]) { t, i in t.permute(i[0], [2, 0, 1]) }
        checkGradients("permute 0213", inputs: [randomTensor([2, 3, 2, 4], seed: 11)]) { t, i in t.permute(i[0], [0, 2, 1, 3]) }
        checkGradients("slice", inputs: [x]) { t, i in t.slice(i[0], axis: 1, range: 1..<3) }
        let y = randomTensor([2, 2, 4], seed: 12)
        checkGradients("concat", inputs: [x, y]) { t, i in t.concat([i[0], i[1], i[0]], axis: 1) }
        checkGradients("concat last", inputs: [x, x]) { t, i in t.concat([i[0], i[1]], axis: 2) }
    }
}

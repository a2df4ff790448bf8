import XCTest
@testable import AQCore
import AQNN

/// Layer 1 of the test pyramid, Tape+Loss.swift: crossEntropy (ignore index), softCrossEntropy, squaredError: each op against finite differences (and its fast
/// path against the portable one where it has one).
final class LossTests: XCTestCase {
    func testCrossEntropyWithIgnoreIndex() {
        let logits = randomTensor([5, 4], seed: 23, std: 2)
        checkGradients("crossEntropy", inputs: [logits]) { t, i in t.crossEntropy(i[0], targets: [0, 3, -100, 1, 2]) }
        // Value against a hand computation.
        let loss = Tape.inference.crossEntropy(logits, targets: [0, 3, -100, 1, 2]).scalar
        var expected = 0.0
        for (r, c) in [(0, 0), (1, 3), (3, 1), (4, 2)] {
            let row = (0..<4).map { Double(logits.pointer[r * 4 + $0]) }
            expected += log(row.map { exp($0) }.reduce(0, +)) - row[c]
        }
        XCTAssertEqual(Double(loss), expected / 4, accuracy: 1e-5)
        XCTAssertEqual(Tape.inference.crossEntropy(logits, targets: [-100, -100, -100, -100, -100]).scalar, 0)
    }

    func testSoftCrossEntropy() {
        let logits = randomTensor([5, 4], seed: 24, std: 2)
        let teacher = randomTensor([5, 4], seed: 25, std: 2)
        let q = Tape.inference.softmax(teacher).array
        let rows = [true, true, false, true, true]
        checkGradients("softCrossEntropy", inputs: [logits]) { t, i in t.softCrossEntropy(i[0], targets: q, rows: rows) }
        // KL(q || p) + H(q) by hand, over the kept rows; and zero gradient-free KL at p = q.
        var expected = 0.0
        for r in [0, 1, 3, 4] {
            let row = (0..<4).map { Double(logits.pointer[r * 4 + $0]) }
            let logZ = log(row.map { exp($0) }.reduce(0, +))
            for j in 0..<4 { expected -= Double(q[r * 4 + j]) * (row[j] - logZ) }
        }
        XCTAssertEqual(Double(Tape.inference.softCrossEntropy(logits, targets: q, rows: rows).scalar), expected / 4, accuracy: 1e-5)
        let tape = Tape()
        let x = Tensor(shape: teacher.shape, values: teacher.array, requiresGrad: true)
        tape.backward(from: tape.softCrossEntropy(x, targets: q))
        XCTAssertLessThan(x.grad!.buffer.map { abs($0) }.max()!, 1e-6, "the gradient vanishes when student = teacher")
    }
}

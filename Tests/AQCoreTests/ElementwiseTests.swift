import XCTest
@testable import AQCore
import AQNN

/// Layer 1 of the test pyramid, Tape+Elementwise.swift: add, sub, mul (broadcasting), scale, log, tanh, relu, gelu, dropout, straightThroughOneHot: each op against finite differences (and its fast
/// path against the portable one where it has one).
final class ElementwiseTests: XCTestCase {
    func testBroadcastAddMul() {
        let a = randomTensor([2, 3, 4], seed: 8)
        for bs in [[2, 3, 4], [4], [3, 4], [3, 1], [2, 1, 4], [1]] {
            let b = randomTensor(bs, seed: 9)
            checkGradients("add \(bs)", inputs: [a, b]) { t, i in t.add(i[0], i[1]) }
            checkGradients("add reversed \(bs)", inputs: [b, a]) { t, i in t.add(i[0], i[1]) }
            checkGradients("mul \(bs)", inputs: [a, b]) { t, i in t.mul(i[0], i[1]) }
            checkGradients("sub \(bs)", inputs: [a, b]) { t, i in t.sub(i[0], i[1]) }
        }
    }

    func testActivations() {
        // Spread over the interesting range of GELU and tanh, including the tails.
        let x = randomTensor([3, 37], seed: 15, std: 2.5)
        checkGradients("gelu", inputs: [x]) { t, i in t.gelu(i[0]) }
        checkGradients("gelu tanh", inputs: [x]) { t, i in t.gelu(i[0], approximate: true) }
        checkGradients("tanh", inputs: [x]) { t, i in t.tanh(i[0]) }
        // Kept away from the kink at 0, where finite differences are meaningless.
        let r = randomTensor([3, 37], seed: 41)
        for j in 0..<r.count { r.pointer[j] += r.pointer[j] < 0 ? -0.1 : 0.1 }
        checkGradients("relu", inputs: [r]) { t, i in t.relu(i[0]) }
        let positive = randomTensor([3, 37], seed: 43)
        for j in 0..<positive.count { positive.pointer[j] = 0.5 + abs(positive.pointer[j]) }
        checkGradients("log", inputs: [positive]) { t, i in t.log(i[0]) }
        checkGradients("meanSquaredError", inputs: [x, randomTensor([3, 37], seed: 42)]) { t, i in
            t.meanSquaredError(i[0], i[1])
        }
        checkGradients("scale", inputs: [x]) { t, i in t.scale(i[0], by: -0.7) }
    }

    func testGELUPortableEqualsAVX2() throws {
        try XCTSkipUnless(Kernels.cpuHasAVX2, "this CPU has no AVX2+FMA: no fast GELU to compare with the portable one")
        let x = randomTensor([1000], seed: 16, std: 3)
        let dy = randomTensor([1000], seed: 17)
        for approximate in [false, true] {
            let ya = Tensor(uninitialized: [1000]), yp = Tensor(uninitialized: [1000])
            let ga = Tensor(zeros: [1000]), gp = Tensor(zeros: [1000])
            Kernels.setCPULevel("avx2")
            Kernels.geluForward(x.pointer, ya.pointer, count: 1000, approximate: approximate)
            Kernels.geluBackward(x.pointer, dy.pointer, ga.pointer, count: 1000, approximate: approximate)
            Kernels.setCPULevel("portable")
            Kernels.geluForward(x.pointer, yp.pointer, count: 1000, approximate: approximate)
            Kernels.geluBackward(x.pointer, dy.pointer, gp.pointer, count: 1000, approximate: approximate)
            Kernels.setCPULevel(nil)
            XCTAssertLessThan(maxAbsDiff(ya.array, yp.array), 2e-6, "gelu forward approximate=\(approximate)")
            XCTAssertLessThan(maxAbsDiff(ga.array, gp.array), 2e-6, "gelu backward approximate=\(approximate)")
            // Reference values in Double.
            for i in 0..<1000 {
                let v = Double(x.pointer[i])
                let ref = approximate
                    ? 0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))
                    : 0.5 * v * (1 + erf(v / 2.0.squareRoot()))
                XCTAssertEqual(Double(ya.pointer[i]), ref, accuracy: 1e-6 * max(1, abs(ref)))
            }
        }
    }

    func testDropoutIsSeededAndScaled() {
        let x = Tensor(filling: 1, shape: [1000])
        var g1 = SeededGenerator(seed: 5), g2 = SeededGenerator(seed: 5)
        let y1 = Tape.inference.dropout(x, probability: 0.25, generator: &g1)
        let y2 = Tape.inference.dropout(x, probability: 0.25, generator: &g2)
        XCTAssertEqual(y1.array, y2.array)
        let zeros = y1.array.filter { $0 == 0 }.count
        XCTAssertTrue((200...300).contains(zeros), "dropped \(zeros) of 1000 at p = 0.25")
        XCTAssertTrue(y1.array.allSatisfy { $0 == 0 || abs($0 - 1 / 0.75) < 1e-6 })
        var g3 = SeededGenerator(seed: 9)
        checkGradients("dropout", inputs: [randomTensor([50], seed: 24)]) { t, i in
            var g = g3  // same mask for every evaluation
            return t.dropout(i[0], probability: 0.3, generator: &g)
        }
        _ = g3.next()
    }

    /// A slice of a batch (`BatchRows`, data parallelism) gets the whole batch's mask rows: the
    /// dropout of rows 1..<3 of 4 equals rows 1..<3 of the whole batch's dropout.
    func testDropoutOfABatchSliceIsThatSliceOfTheWholeBatch() {
        let x = randomTensor([4, 3, 5], seed: 31)
        var whole = SeededGenerator(seed: 12), part = SeededGenerator(seed: 12)
        let y = Tape.inference.dropout(x, probability: 0.3, generator: &whole).array
        let slice = Tensor(shape: [2, 3, 5], values: Array(x.array[15..<45]))
        let ys = Tape.inference.dropout(slice, probability: 0.3, generator: &part, rows: BatchRows(offset: 1, total: 4)).array
        XCTAssertEqual(ys, Array(y[15..<45]))
        XCTAssertTrue(ys.contains(0) && ys.contains { $0 != 0 })
        XCTAssertEqual(whole.next(), part.next(), "both drew the whole batch's mask")
    }

    func testStraightThroughOneHot() {
        let x = Tensor(shape: [2, 3], values: [0.1, 0.7, 0.2, 0.5, 0.5, 0.0], requiresGrad: true)
        let t = Tape()
        let y = t.straightThroughOneHot(x)
        XCTAssertEqual(y.array, [0, 1, 0, 1, 0, 0])  // ties: the first maximum
        y.ensureGrad().pointer.update(from: [1, 2, 3, 4, 5, 6], count: 6)
        t.runBackward()
        XCTAssertEqual(x.gradArray!, [1, 2, 3, 4, 5, 6])
    }
}

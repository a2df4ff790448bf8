import XCTest
@testable import AQCore
import AQNN

/// Layer 1 of the test pyramid, Tape+Softmax.swift: softmax (masked), logSoftmax: each op against finite differences (and its fast
/// path against the portable one where it has one).
final class SoftmaxTests: XCTestCase {
    func testSoftmaxMasked() {
        let x = randomTensor([2, 3, 5], seed: 18)
        let mask = Tensor(shape: [2, 5], values: [1, 1, 1, 0, 0, 1, 1, 1, 1, 1])
        checkGradients("softmax", inputs: [x]) { t, i in t.softmax(i[0], scale: 0.6) }
        checkGradients("softmax masked", inputs: [x]) { t, i in t.softmax(i[0], scale: 0.6, keyMask: mask, rowsPerMask: 3) }
        let y = Tape.inference.softmax(x, scale: 1, keyMask: mask, rowsPerMask: 3)
        for r in 0..<3 {
            XCTAssertEqual(y.pointer[r * 5 + 3], 0)
            XCTAssertEqual(y.pointer[r * 5 + 4], 0)
            XCTAssertEqual((0..<5).map { y.pointer[r * 5 + $0] }.reduce(0, +), 1, accuracy: 1e-6)
        }
        checkGradients("logSoftmax", inputs: [x]) { t, i in t.logSoftmax(i[0]) }
    }

    func testSoftmaxPortableEqualsAVX2() throws {
        try XCTSkipUnless(Kernels.cpuHasAVX2, "this CPU has no AVX2+FMA: no fast softmax to compare with the portable one")
        let x = randomTensor([7, 37], seed: 19, std: 4)
        let mask = Tensor(shape: [1, 37], values: (0..<37).map { $0 % 5 == 2 ? 0 : 1 })
        Kernels.setCPULevel("avx2")
        let ya = Tape.inference.softmax(x, scale: 0.3, keyMask: mask, rowsPerMask: 7)
        Kernels.setCPULevel("portable")
        let yp = Tape.inference.softmax(x, scale: 0.3, keyMask: mask, rowsPerMask: 7)
        Kernels.setCPULevel(nil)
        XCTAssertLessThan(maxAbsDiff(ya.array, yp.array), 1e-6)
        // Backward, dx += scale * y * (dy - sum(dy * y)), accumulating into a non-zero dx.
        let dy = randomTensor([7, 37], seed: 20)
        func backward(_ level: String) -> [Float] {
            let dx = randomTensor([7, 37], seed: 21)
            Kernels.setCPULevel(level)
            Kernels.softmaxBackward(ya.pointer, dy.pointer, dx.pointer, rows: 7, cols: 37, scale: 0.3)
            Kernels.setCPULevel(nil)
            return dx.array
        }
        let fast = backward("avx2"), portable = backward("portable")
        XCTAssertLessThan(maxAbsDiff(fast, portable), 1e-6)
        let start = randomTensor([7, 37], seed: 21).array
        for r in 0..<7 {
            let dot = (0..<37).reduce(0.0) { $0 + Double(dy.pointer[r * 37 + $1]) * Double(ya.pointer[r * 37 + $1]) }
            for c in 0..<37 {
                let i = r * 37 + c
                let ref = Double(start[i]) + 0.3 * Double(ya.pointer[i]) * (Double(dy.pointer[i]) - dot)
                XCTAssertEqual(Double(portable[i]), ref, accuracy: 1e-5)
            }
        }
    }

    /// A row with a NaN gives a NaN softmax on both paths, as in PyTorch: the fast exp's range
    /// clamp must not turn exp(NaN) into exp(-88), which would drop the NaN and return a finite,
    /// wrong distribution. GELU keeps NaN too (forward and backward).
    func testNaNPropagatesThroughSoftmaxAndGELU() {
        var values = [Float](repeating: 0.5, count: 32)
        for i in 0..<32 { values[i] = Float(i % 7) * 0.3 - 1 }
        values[3] = .nan  // row 0 (columns 0..<16) has a NaN, row 1 has none
        let x = Tensor(shape: [32], values: values), dy = Tensor(shape: [32], values: [Float](repeating: 1, count: 32))
        for portable in [false, true] {
            Kernels.setCPULevel(portable ? "portable" : "avx2")
            let y = Tensor(uninitialized: [32])
            Kernels.softmaxForward(x.pointer, y.pointer, rows: 2, cols: 16, scale: 1, keyMask: nil, rowsPerMask: 1)
            for i in 0..<32 { XCTAssertEqual(y.pointer[i].isNaN, i < 16, "softmax portable=\(portable) index \(i)") }
            for approximate in [false, true] {
                let g = Tensor(uninitialized: [32]), d = Tensor(zeros: [32])
                Kernels.geluForward(x.pointer, g.pointer, count: 32, approximate: approximate)
                Kernels.geluBackward(x.pointer, dy.pointer, d.pointer, count: 32, approximate: approximate)
                XCTAssertEqual((0..<32).filter { g.pointer[$0].isNaN || d.pointer[$0].isNaN }, [3], "gelu portable=\(portable)")
            }
            Kernels.setCPULevel(nil)
        }
    }
}

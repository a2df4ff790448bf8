import XCTest
@testable import AQCore
import AQNN

/// Layer 1 of the test pyramid, Tape+LayerNorm.swift: layerNorm: each op against finite differences (and its fast
/// path against the portable one where it has one).
final class LayerNormTests: XCTestCase {
    func testLayerNorm() {
        let x = randomTensor([2, 3, 13], seed: 20, std: 2, mean: 0.5)
        let w = randomTensor([13], seed: 21, std: 0.3, mean: 1), b = randomTensor([13], seed: 22)
        checkGradients("layerNorm", inputs: [x, w, b]) { t, i in t.layerNorm(i[0], weight: i[1], bias: i[2], eps: 1e-5) }
    }

    /// The AVX2 LayerNorm forward against the portable one and a Double reference: output, mean
    /// and reciprocal standard deviation, on rows whose length is not a multiple of 8.
    func testLayerNormPortableEqualsAVX2() throws {
        try XCTSkipUnless(Kernels.cpuHasAVX2, "this CPU has no AVX2+FMA: no fast LayerNorm to compare with the portable one")
        let rows = 9, cols = 389
        let x = randomTensor([rows, cols], seed: 40, std: 3, mean: 0.7)
        let w = randomTensor([cols], seed: 41, std: 0.3, mean: 1), b = randomTensor([cols], seed: 42)
        func run() -> (y: [Float], mean: [Float], rstd: [Float]) {
            let y = Tensor(uninitialized: [rows, cols]), mean = Tensor(uninitialized: [rows]), rstd = Tensor(uninitialized: [rows])
            Kernels.layerNormForward(x.pointer, w.pointer, b.pointer, y.pointer, mean: mean.pointer, rstd: rstd.pointer,
                                     rows: rows, cols: cols, eps: 1e-12)
            return (y.array, mean.array, rstd.array)
        }
        Kernels.setCPULevel("avx2")
        let fast = run()
        Kernels.setCPULevel("portable")
        let portable = run()
        Kernels.setCPULevel(nil)
        XCTAssertLessThan(maxAbsDiff(fast.y, portable.y), 2e-5)
        XCTAssertLessThan(maxAbsDiff(fast.mean, portable.mean), 1e-5)
        XCTAssertLessThan(maxAbsDiff(fast.rstd, portable.rstd), 1e-5)
        for r in 0..<rows {
            let row = (0..<cols).map { Double(x.pointer[r * cols + $0]) }
            let m = row.reduce(0, +) / Double(cols)
            let v = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(cols)
            for c in 0..<cols {
                let ref = (row[c] - m) / (v + 1e-12).squareRoot() * Double(w.pointer[c]) + Double(b.pointer[c])
                XCTAssertEqual(Double(fast.y[r * cols + c]), ref, accuracy: 1e-4 * max(1, abs(ref)))
            }
        }
    }
}

import XCTest
@testable import AQCore
import AQNN

/// Layer 1 of the test pyramid, Tape+MatMul.swift: linear, matmul, batchedMatmul, and the BLAS sgemm they call: each op against finite differences (and its fast
/// path against the portable one where it has one).
final class MatMulTests: XCTestCase {
    func testLinear() {
        let x = randomTensor([2, 3, 5], seed: 1), w = randomTensor([4, 5], seed: 2), b = randomTensor([4], seed: 3)
        checkGradients("linear", inputs: [x, w, b]) { t, i in t.linear(i[0], i[1], i[2]) }
        checkGradients("linear no bias", inputs: [x, w]) { t, i in t.linear(i[0], i[1], nil) }
    }

    func testMatmulAllTransposes() {
        for ta in [false, true] {
            for tb in [false, true] {
                let a = randomTensor(ta ? [4, 3] : [3, 4], seed: 4), b = randomTensor(tb ? [5, 4] : [4, 5], seed: 5)
                checkGradients("matmul \(ta) \(tb)", inputs: [a, b]) { t, i in
                    t.matmul(i[0], i[1], transposeA: ta, transposeB: tb)
                }
            }
        }
    }

    func testBatchedMatmulAllTransposes() {
        for ta in [false, true] {
            for tb in [false, true] {
                let a = randomTensor(ta ? [2, 3, 4, 3] : [2, 3, 3, 4], seed: 6)
                let b = randomTensor(tb ? [2, 3, 5, 4] : [2, 3, 4, 5], seed: 7)
                checkGradients("bmm \(ta) \(tb)", inputs: [a, b]) { t, i in
                    t.batchedMatmul(i[0], i[1], transposeA: ta, transposeB: tb)
                }
            }
        }
    }

    func testSGEMMAgainstReference() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (m, n, k) = (70, 45, 33)
            let a = randomTensor(ta ? [k, m] : [m, k], seed: 33), b = randomTensor(tb ? [n, k] : [k, n], seed: 34)
            let c1 = randomTensor([m, n], seed: 35), c2 = c1.copy()
            BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: ta ? m : k,
                       b: b.pointer, ldb: tb ? k : n, beta: 0.25, c: c1.pointer, ldc: n, threads: 2)
            BLAS.sgemmReference(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: ta ? m : k,
                                b: b.pointer, ldb: tb ? k : n, beta: 0.25, c: c2.pointer, ldc: n)
            XCTAssertLessThan(maxAbsDiff(c1.array, c2.array), 1e-4, "sgemm \(ta) \(tb)")
        }
    }
}

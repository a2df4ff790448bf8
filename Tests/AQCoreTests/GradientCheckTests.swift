import XCTest
@testable import AQCore
import AQNN

/// Layer 1 of the test pyramid, the finite-difference checker itself (GradientCheck.swift) and the parallel splits every op relies on: each op against finite differences (and its fast
/// path against the portable one where it has one).
final class GradientCheckTests: XCTestCase {
    func testParallelSplitsMatchSingleThread() {
        // Large enough that the kernels and GEMMs split across workers.
        let saved = Runtime.threads
        defer { Runtime.threads = saved }
        let x = randomTensor([300, 200], seed: 28), w = randomTensor([150, 200], seed: 29), b = randomTensor([150], seed: 30)
        let gam = randomTensor([150], seed: 31, mean: 1), bet = randomTensor([150], seed: 32)
        func run(_ threads: Int) -> [[Float]] {
            Runtime.threads = threads
            for p in [x, w, b, gam, bet] { p.requiresGrad = true; p.grad = nil }
            let t = Tape()
            let y = t.gelu(t.layerNorm(t.linear(x, w, b), weight: gam, bias: bet, eps: 1e-12))
            t.backward(from: t.sum(t.mul(y, y)))
            return [y.array] + [x, w, b, gam, bet].map { $0.gradArray! }
        }
        let one = run(1), two = run(2)
        // Different splits sum in a different order: allow rounding relative to each array's
        // largest entry (on a Zen 4 the two differed by 1.2e-4 = 2^-13, over the old 1e-4 absolute).
        for (a, c) in zip(one, two) {
            let scale = max(1, a.map { abs($0) }.max() ?? 0)
            XCTAssertLessThan(maxAbsDiff(a, c), 1e-5 * scale)
        }
    }

    /// The checker itself can fail: a rule that forgets a factor of 2 is caught.
    func testCheckerCatchesAWrongRule() {
        let x = randomTensor([6], seed: 40)
        let wrongSquare: (Tape, [Tensor]) -> Tensor = { t, i in
            let a = i[0]
            let y = Tensor(shape: a.shape, values: a.array.map { $0 * $0 })
            y.requiresGrad = true
            if t.isRecording {
                t.record(y) {
                    let g = a.ensureGrad().pointer
                    for j in 0..<a.count { g[j] += y.grad!.pointer[j] * a.pointer[j] }  // should be 2 * a
                }
            }
            return y
        }
        XCTAssertNotNil(gradientMismatch("wrong square", inputs: [x], wrongSquare))
        XCTAssertNil(gradientMismatch("right square", inputs: [x]) { t, i in t.mul(i[0], i[0]) })
    }
}

import XCTest
@testable import AQCore
import AQNN

/// Layer 1 of the test pyramid, Tape+Attention.swift: attentionScores, attention (fused), attentionScoreError: each op against finite differences (and its fast
/// path against the portable one where it has one).
final class AttentionTests: XCTestCase {
    /// With dropout on the probabilities, a slice of the batch (`BatchRows`) computes its rows as
    /// the whole batch does: the same masks, the same outputs (attention never mixes rows).
    func testAttentionOfABatchSliceMatchesTheWholeBatch() {
        let b = 3, t = 4, heads = 2, h = 6
        let q = randomTensor([b, t, h], seed: 70), k = randomTensor([b, t, h], seed: 71), v = randomTensor([b, t, h], seed: 72)
        let mask = Tensor(shape: [b, t], values: [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0])
        var whole = SeededGenerator(seed: 4), part = SeededGenerator(seed: 4)
        let y = Tape.inference.attention(query: q, key: k, value: v, keyMask: mask, heads: heads, dropout: 0.3, generator: &whole).array
        func rows(_ x: Tensor, _ r: Range<Int>, _ width: Int) -> Tensor {
            Tensor(shape: [r.count] + Array(x.shape.dropFirst()), values: Array(x.array[(r.lowerBound * width)..<(r.upperBound * width)]))
        }
        let ys = Tape.inference.attention(query: rows(q, 2..<3, t * h), key: rows(k, 2..<3, t * h), value: rows(v, 2..<3, t * h),
                                          keyMask: rows(mask, 2..<3, t), heads: heads, dropout: 0.3, generator: &part,
                                          rows: BatchRows(offset: 2, total: 3)).array
        XCTAssertEqual(ys, Array(y[(2 * t * h)..<(3 * t * h)]))
    }

    /// The distillation ops: scaled attention scores (padded queries and keys 0) against the
    /// per-head definition and finite differences; the masked squared error likewise.
    func testAttentionScoresAndSquaredError() {
        let b = 2, t = 4, heads = 2, d = 3, h = heads * d
        let q = randomTensor([b, t, h], seed: 60), k = randomTensor([b, t, h], seed: 61)
        let mask = Tensor(shape: [b, t], values: [1, 1, 1, 0, 1, 1, 1, 1])
        let s = Tape.inference.attentionScores(query: q, key: k, keyMask: mask, heads: heads)
        XCTAssertEqual(s.shape, [b, heads, t, t])
        for bi in 0..<b {
            for hi in 0..<heads {
                for i in 0..<t {
                    for j in 0..<t {
                        var dot: Float = 0
                        for c in 0..<d { dot += q.array[(bi * t + i) * h + hi * d + c] * k.array[(bi * t + j) * h + hi * d + c] }
                        let real = mask.array[bi * t + i] != 0 && mask.array[bi * t + j] != 0
                        XCTAssertEqual(s.array[((bi * heads + hi) * t + i) * t + j], real ? dot / Float(d).squareRoot() : 0,
                                       accuracy: 1e-5, "score \(bi) \(hi) \(i) \(j)")
                    }
                }
            }
        }
        checkGradients("attentionScores", inputs: [q, k]) { tape, i in
            tape.attentionScores(query: i[0], key: i[1], keyMask: mask, heads: heads)
        }
        checkGradients("attentionScores unmasked", inputs: [q, k]) { tape, i in
            tape.attentionScores(query: i[0], key: i[1], keyMask: nil, heads: heads)
        }
        // The fused score error equals the composition, value and gradients.
        let tq = randomTensor([b, t, h], seed: 63), tk = randomTensor([b, t, h], seed: 64)
        let teacherScores = Tape.inference.attentionScores(query: tq, key: tk, keyMask: mask, heads: heads)
        let fused = Tape.inference.attentionScoreError(query: q, key: k, targetQuery: tq, targetKey: tk, keyMask: mask,
                                                       heads: heads, normalizer: 7)
        let composed = Tape.inference.squaredError(s, target: teacherScores, normalizer: 7)
        XCTAssertEqual(fused.scalar, composed.scalar, accuracy: 1e-5 * max(1, abs(composed.scalar)))
        checkGradients("attentionScoreError", inputs: [q, k]) { tape, i in
            tape.attentionScoreError(query: i[0], key: i[1], targetQuery: tq, targetKey: tk, keyMask: mask, heads: heads, normalizer: 7)
        }
        for x in [q, k] { x.grad = nil; x.requiresGrad = true }
        let t1 = Tape()
        t1.backward(from: t1.attentionScoreError(query: q, key: k, targetQuery: tq, targetKey: tk, keyMask: mask, heads: heads, normalizer: 7))
        let fusedGrads = [q.gradArray!, k.gradArray!]
        for x in [q, k] { x.grad = nil }
        let t2 = Tape()
        t2.backward(from: t2.squaredError(t2.attentionScores(query: q, key: k, keyMask: mask, heads: heads), target: teacherScores, normalizer: 7))
        XCTAssertLessThan(maxAbsDiff(fusedGrads[0], q.gradArray!), 1e-5)
        XCTAssertLessThan(maxAbsDiff(fusedGrads[1], k.gradArray!), 1e-5)

        let target = randomTensor([b, t, h], seed: 62)
        let rows: [Float] = [1, 0, 1, 1, 1, 1, 0, 1]
        checkGradients("squaredError", inputs: [q]) { tape, i in
            tape.squaredError(i[0], target: target, rowMask: rows, normalizer: 5)
        }
        var expected = 0.0
        for r in 0..<(b * t) where rows[r] != 0 {
            for c in 0..<h { expected += pow(Double(q.array[r * h + c] - target.array[r * h + c]), 2) }
        }
        XCTAssertEqual(Double(Tape.inference.squaredError(q, target: target, rowMask: rows, normalizer: 5).scalar), expected / 5,
                       accuracy: 1e-5)
    }

    func testFusedAttentionEqualsComposition() {
        let (b, tl, heads, d) = (2, 5, 3, 4)
        let h = heads * d
        let q = randomTensor([b, tl, h], seed: 25), k = randomTensor([b, tl, h], seed: 26), v = randomTensor([b, tl, h], seed: 27)
        let mask = Tensor(shape: [b, tl], values: [1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
        func composed(_ t: Tape, _ i: [Tensor]) -> Tensor {
            func split(_ x: Tensor) -> Tensor { t.permute(t.reshape(x, [b, tl, heads, d]), [0, 2, 1, 3]) }
            let s = t.batchedMatmul(split(i[0]), split(i[1]), transposeB: true)
            let p = t.softmax(s, scale: 1 / Float(d).squareRoot(), keyMask: mask, rowsPerMask: heads * tl)
            let o = t.batchedMatmul(p, split(i[2]))
            return t.reshape(t.permute(o, [0, 2, 1, 3]), [b, tl, h])
        }
        var g = SeededGenerator(seed: 0)
        let fused = Tape.inference.attention(query: q, key: k, value: v, keyMask: mask, heads: heads, generator: &g)
        let reference = composed(Tape.inference, [q, k, v])
        XCTAssertLessThan(maxAbsDiff(fused.array, reference.array), 1e-5)
        checkGradients("attention", inputs: [q, k, v]) { t, i in
            var g = SeededGenerator(seed: 0)
            return t.attention(query: i[0], key: i[1], value: i[2], keyMask: mask, heads: heads, generator: &g)
        }
        checkGradients("attention with dropout", inputs: [q, k, v]) { t, i in
            var g = SeededGenerator(seed: 3)
            return t.attention(query: i[0], key: i[1], value: i[2], keyMask: mask, heads: heads, dropout: 0.2, generator: &g)
        }
        // Gradients of fused and composed agree too.
        for x in [q, k, v] { x.requiresGrad = true; x.grad = nil }
        let t1 = Tape()
        t1.backward(from: t1.sum(t1.mul(t1.attention(query: q, key: k, value: v, keyMask: mask, heads: heads, generator: &g), v)))
        let g1 = [q, k, v].map { $0.gradArray! }
        for x in [q, k, v] { x.grad = nil }
        let t2 = Tape()
        t2.backward(from: t2.sum(t2.mul(composed(t2, [q, k, v]), v)))
        for (i, x) in [q, k, v].enumerated() { XCTAssertLessThan(maxAbsDiff(g1[i], x.gradArray!), 1e-5) }
    }
}

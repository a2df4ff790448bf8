import AQBert
import CAQKernels
import Foundation
import XCTest

@testable import AQQuant

/// `n` seeded normal values times `scale` (the quantizer tests' data).
func randomValues(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var g = SeededGenerator(seed: seed)
    return (0..<n).map { _ in scale * g.nextNormal() }
}

final class QuantizerTests: XCTestCase {

    /// Every bit-width: values land on the 2^b-level grid of [lo, hi] (the min rounded down and
    /// the max rounded up to fp16, the range the packed format stores), error at most half a
    /// step, lo and hi are levels, and the quantizer is idempotent.
    func testEveryBitWidth() {
        let x = randomValues(301, seed: 1)
        let lo = aq_half_below(x.min()!), hi = aq_half_above(x.max()!)
        XCTAssertTrue(lo <= x.min()! && x.min()! - lo < 2e-3 && hi >= x.max()! && hi - x.max()! < 2e-3, "\(lo) \(hi)")
        XCTAssertEqual(Float(Float16(lo)), lo)
        XCTAssertEqual(Float(Float16(hi)), hi)
        for b in 1...8 {
            var y = [Float](repeating: .nan, count: x.count)
            aq_fake_quantize(x, &y, x.count, Int32(b))
            let step = (hi - lo) / Float((1 << b) - 1)
            for (a, q) in zip(x, y) {
                XCTAssertLessThanOrEqual(abs(a - q), step / 2 * 1.0001 + 1e-6, "b=\(b)")
                let level = (q - lo) / step
                XCTAssertEqual(level, level.rounded(), accuracy: 1e-3, "b=\(b): \(q) is not on the grid")
            }
            XCTAssertLessThanOrEqual(Set(y.map { (($0 - lo) / step).rounded() }).count, 1 << b)
            XCTAssertEqual(y.min()!, lo, accuracy: 1e-6)
            XCTAssertEqual(y.max()!, hi, accuracy: 1e-5)
            var z = [Float](repeating: .nan, count: x.count)
            aq_fake_quantize(y, &z, y.count, Int32(b))
            for (p, q) in zip(y, z) { XCTAssertEqual(p, q, accuracy: 1e-5) }
        }
    }

    func testZeroBitsPrunesAndConstantGroupsPassThrough() {
        let x = randomValues(10, seed: 2)
        var y = [Float](repeating: .nan, count: 10)
        aq_fake_quantize(x, &y, 10, 0)
        XCTAssertEqual(y, [Float](repeating: 0, count: 10))
        let c = [Float](repeating: 0.37, count: 7)
        var d = [Float](repeating: .nan, count: 7)
        for b in [1, 2, 4, 8] {
            aq_fake_quantize(c, &d, 7, Int32(b))
            XCTAssertEqual(d, c)
        }
    }

    /// 2 bits of [0, 3]: levels 0, 1, 2, 3 exactly; ties round half to even (torch.round).
    func testHandValues() {
        let x: [Float] = [0, 0.5, 1.4, 1.5, 2.5, 3]
        var y = [Float](repeating: 0, count: 6)
        aq_fake_quantize(x, &y, 6, 2)
        XCTAssertEqual(y, [0, 0, 1, 2, 2, 3])
    }

    /// STE: dW = dY on kept groups, 0 on pruned ones.
    func testStraightThroughGradients() {
        let w = Tensor(shape: [4, 3], values: randomValues(12, seed: 3), requiresGrad: true)
        let tape = Tape()
        let y = tape.fakeQuantize(w, groupBits: [2, 0])
        let dy = randomValues(12, seed: 4)
        y.ensureGrad().pointer.update(from: dy, count: 12)
        tape.runBackward()
        XCTAssertEqual(Array(w.gradArray!.prefix(6)), Array(dy.prefix(6)))
        XCTAssertEqual(Array(w.gradArray!.suffix(6)), [Float](repeating: 0, count: 6))
        XCTAssertEqual(Array(y.array.suffix(6)), [Float](repeating: 0, count: 6))
    }

    /// Mixed weight: forward equals the weighted sum of quantized copies; the mixing-weight
    /// gradient equals finite differences (the weights enter linearly), the weight gradient is
    /// the straight-through share of the non-zero candidates.
    func testMixedQuantizeGradients() {
        let candidates = [0, 2, 4]
        let w = Tensor(shape: [6, 5], values: randomValues(30, seed: 5), requiresGrad: true)
        let o = Tensor(shape: [3, 3], values: [0.2, 0.3, 0.5, 0.6, 0.1, 0.3, 0.0, 0.5, 0.5], requiresGrad: true)
        let dy = randomValues(30, seed: 6)
        let tape = Tape()
        let y = tape.mixedQuantize(w, mixing: o, candidates: candidates)
        // Forward against the definition.
        for j in 0..<3 {
            let group = Array(w.array[(j * 10)..<((j + 1) * 10)])
            var expected = [Float](repeating: 0, count: 10)
            for (c, b) in candidates.enumerated() {
                var q = [Float](repeating: 0, count: 10)
                aq_fake_quantize(group, &q, 10, Int32(b))
                for i in 0..<10 { expected[i] += o.array[j * 3 + c] * q[i] }
            }
            for i in 0..<10 { XCTAssertEqual(y.array[j * 10 + i], expected[i], accuracy: 1e-6) }
        }
        y.ensureGrad().pointer.update(from: dy, count: 30)
        tape.runBackward()
        func loss() -> Double {
            let t = Tape.inference.mixedQuantize(w, mixing: o, candidates: candidates)
            return zip(t.array, dy).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        let analytic = o.gradArray!
        for i in 0..<9 {
            let old = o.pointer[i]
            o.pointer[i] = old + 1e-2
            let lp = loss()
            o.pointer[i] = old - 1e-2
            let lm = loss()
            o.pointer[i] = old
            XCTAssertEqual(Double(analytic[i]), (lp - lm) / 2e-2, accuracy: 1e-3, "dO[\(i)]")
        }
        for j in 0..<3 {
            let keep = o.array[j * 3 + 1] + o.array[j * 3 + 2]
            for i in 0..<10 { XCTAssertEqual(w.gradArray![j * 10 + i], keep * dy[j * 10 + i], accuracy: 1e-6) }
        }
    }

    /// Mixed weight at fixed bounds per (group, candidate): forward equals the weighted sum of
    /// the clamped quantizers at those bounds; the mixing-weight gradient equals finite
    /// differences; the weight gradient is each non-zero candidate's share where the weight lies
    /// inside that candidate's bounds and 0 where it is clamped.
    func testMixedQuantizeWithRangesGradients() {
        let candidates = [0, 2, 4], g = 3, n = 10, k = 3
        let w = Tensor(shape: [6, 5], values: randomValues(30, seed: 7), requiresGrad: true)
        let o = Tensor(shape: [3, 3], values: [0.2, 0.3, 0.5, 0.6, 0.1, 0.3, 0.0, 0.5, 0.5], requiresGrad: true)
        let dy = randomValues(30, seed: 8)
        // Bounds well inside each group's range, so that some weights clamp at every candidate.
        var ranges = [Float](repeating: 0, count: g * k * 2)
        for j in 0..<g {
            let group = Array(w.array[(j * n)..<((j + 1) * n)])
            for (c, b) in candidates.enumerated() where b > 0 {
                var lo: Float = 0, hi: Float = 0
                aq_learned_range(0.6 * group.min()! + 0.05 * Float(c), 0.7 * group.max()!, &lo, &hi)
                ranges[(j * k + c) * 2] = lo
                ranges[(j * k + c) * 2 + 1] = hi
            }
        }
        let tape = Tape()
        let y = tape.mixedQuantize(w, mixing: o, candidates: candidates, ranges: ranges)
        var clamped = 0
        for j in 0..<g {
            let group = Array(w.array[(j * n)..<((j + 1) * n)])
            var expected = [Float](repeating: 0, count: n)
            for (c, b) in candidates.enumerated() where b > 0 {
                let lo = ranges[(j * k + c) * 2], hi = ranges[(j * k + c) * 2 + 1]
                var q = [Float](repeating: 0, count: n)
                aq_fake_quantize_range(group, &q, n, Int32(b), lo, hi)
                for i in 0..<n { expected[i] += o.array[j * k + c] * q[i] }
                clamped += group.filter { $0 < lo || $0 > hi }.count
            }
            for i in 0..<n { XCTAssertEqual(y.array[j * n + i], expected[i], accuracy: 1e-6) }
        }
        XCTAssertGreaterThan(clamped, 0, "the bounds clamp some weights")
        y.ensureGrad().pointer.update(from: dy, count: 30)
        tape.runBackward()
        func loss() -> Double {
            let t = Tape.inference.mixedQuantize(w, mixing: o, candidates: candidates, ranges: ranges)
            return zip(t.array, dy).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        let analytic = o.gradArray!
        for i in 0..<9 {
            let old = o.pointer[i]
            o.pointer[i] = old + 1e-2
            let lp = loss()
            o.pointer[i] = old - 1e-2
            let lm = loss()
            o.pointer[i] = old
            XCTAssertEqual(Double(analytic[i]), (lp - lm) / 2e-2, accuracy: 1e-3, "dO[\(i)]")
        }
        for j in 0..<g {
            for i in 0..<n {
                let x = w.array[j * n + i]
                var keep: Float = 0
                for (c, b) in candidates.enumerated() where b > 0 {
                    if x >= ranges[(j * k + c) * 2] && x <= ranges[(j * k + c) * 2 + 1] { keep += o.array[j * k + c] }
                }
                XCTAssertEqual(w.gradArray![j * n + i], keep * dy[j * n + i], accuracy: 1e-6, "dW[\(j), \(i)]")
            }
        }
    }

    func testActivationQuantizerEMAAndFreeze() {
        let q = ActivationQuantizer(bits: 8, momentum: 0.99)
        q.training = true
        _ = q(Tensor(shape: [3], values: [-1, 0, 2]), tape: .inference)
        XCTAssertEqual(q.low, -1)
        XCTAssertEqual(q.high, 2)
        _ = q(Tensor(shape: [2], values: [-3, 4]), tape: .inference)
        XCTAssertEqual(q.low, 0.99 * -1 + 0.01 * -3, accuracy: 1e-6)
        XCTAssertEqual(q.high, 0.99 * 2 + 0.01 * 4, accuracy: 1e-6)
        q.training = false
        let (lo, hi) = (q.low, q.high)
        let y = q(Tensor(shape: [3], values: [-10, 0.5, 10]), tape: .inference)
        XCTAssertEqual(q.low, lo)
        XCTAssertEqual(q.high, hi)
        XCTAssertEqual(y.array[0], lo, accuracy: 1e-6)  // clamped
        XCTAssertEqual(y.array[2], hi, accuracy: 1e-5)
        XCTAssertEqual(y.array[1], 0.5, accuracy: (hi - lo) / 255)
    }
}

/// The exact (integer) evaluation of a quantized Linear against a direct computation.
final class ExactQuantizedProductTests: XCTestCase {
    func testMatchesIntegerDotProductsAndTheFakeQuantizedProduct() {
        var gen = SeededGenerator(seed: 7)
        let (m, k, o) = (5, 70, 12)
        let x = Tensor(shape: [m, k], values: (0..<(m * k)).map { _ in gen.nextNormal() * 1.5 + 0.3 })
        let w = Tensor(shape: [o, k], values: (0..<(o * k)).map { _ in gen.nextNormal() * 0.05 })
        let bias = Tensor(shape: [o], values: (0..<o).map { Float($0) * 0.01 - 0.05 })
        let bits = [3, 0, 8, 2, 4, 5]  // 2 rows per group; group 1 pruned
        let (lo, hi): (Float, Float) = (-2.5, 3.75)
        let y = ExactQuantizedProduct.forward(x, weight: w, bias: bias, groupBits: bits, activationLow: lo, activationHigh: hi)
        XCTAssertEqual(y.shape, [m, o])

        // fp32 simulation: fake-quantized input and weights, fp32 product.
        let aq = ActivationQuantizer(bits: 8)
        aq.setRange(low: lo, high: hi)
        let tape = Tape.inference
        let sim = tape.linear(aq(x, tape: tape), tape.fakeQuantize(w, groupBits: bits), bias)
        // Reference in double from the dequantized values.
        let xq = aq(x, tape: tape).array, wq = tape.fakeQuantize(w, groupBits: bits).array
        for t in 0..<m {
            for r in 0..<o {
                var ref = Double(bias.array[r])
                for j in 0..<k { ref += Double(xq[t * k + j]) * Double(wq[r * k + j]) }
                XCTAssertEqual(Double(y.array[t * o + r]), ref, accuracy: 2e-6 * max(1, abs(ref)), "row \(t) col \(r)")
                XCTAssertEqual(y.array[t * o + r], sim.array[t * o + r], accuracy: 1e-4)
            }
            // The pruned group's rows are the bias exactly.
            XCTAssertEqual(y.array[t * o + 2], bias.array[2])
            XCTAssertEqual(y.array[t * o + 3], bias.array[3])
        }
        // K * 255 * 255 < 2^24 here, so the integer sums went through sgemm; the fp64 GEMM gives
        // the same integers, hence the same floats.
        let y64 = ExactQuantizedProduct.forward(x, weight: w, bias: bias, groupBits: bits, activationLow: lo,
                                                activationHigh: hi, fp32Products: false)
        XCTAssertEqual(y.array, y64.array)
    }

    /// The fp32 GEMM is used only while K * 255 * (2^b - 1) <= 2^24.
    func testFloatSumBound() {
        XCTAssertTrue(ExactQuantizedProduct.sumsFitFloat(columns: 4386, widestBits: 4))
        XCTAssertFalse(ExactQuantizedProduct.sumsFitFloat(columns: 4387, widestBits: 4))
        XCTAssertTrue(ExactQuantizedProduct.sumsFitFloat(columns: 258, widestBits: 8))
        XCTAssertFalse(ExactQuantizedProduct.sumsFitFloat(columns: 259, widestBits: 8))
        XCTAssertTrue(ExactQuantizedProduct.sumsFitFloat(columns: 3072, widestBits: 4), "bert-base's widest K at 4 bits")
    }

    /// Sums too large for fp32 (K * 255 * 255 > 2^24 with an 8-bit group) take the fp64 GEMM
    /// and stay exact; at 4 bits the same K fits fp32 and agrees with it bit for bit. The data
    /// push the sums up: codes near the top of one-sided ranges (zero points near 0), so D is
    /// about 600 * 235 * 186 = 2.6e7 > 2^24 at 8 bits, where an fp32 sum would round.
    func testLargeSumsStayExact() {
        var gen = SeededGenerator(seed: 8)
        let (m, k, o) = (3, 600, 4)
        let (lo, hi): (Float, Float) = (-0.1, 3)
        let x = Tensor(shape: [m, k], values: (0..<(m * k)).map { _ in hi * (0.9 + 0.1 * gen.nextFloat()) })
        let w = Tensor(shape: [o, k], values: (0..<(o * k)).map { i in
            i % k == 0 ? -0.001 : 0.05 * (0.5 + 0.5 * gen.nextFloat())
        })
        let aq = ActivationQuantizer(bits: 8)
        aq.setRange(low: lo, high: hi)
        let xq = aq(x, tape: .inference).array
        for bits in [[8, 2], [4, 4]] {
            let y = ExactQuantizedProduct.forward(x, weight: w, bias: nil, groupBits: bits, activationLow: lo, activationHigh: hi)
            let wq = Tape.inference.fakeQuantize(w, groupBits: bits).array
            for t in 0..<m {
                for r in 0..<o {
                    var ref = 0.0
                    for j in 0..<k { ref += Double(xq[t * k + j]) * Double(wq[r * k + j]) }
                    XCTAssertEqual(Double(y.array[t * o + r]), ref, accuracy: 2e-6 * max(1, abs(ref)), "bits \(bits) row \(t) col \(r)")
                }
            }
            let y64 = ExactQuantizedProduct.forward(x, weight: w, bias: nil, groupBits: bits, activationLow: lo,
                                                    activationHigh: hi, fp32Products: false)
            XCTAssertEqual(y.array, y64.array, "bits \(bits)")
        }
    }
}

import AQBert
import AQSafeTensors
import CAQKernels
import Foundation
import XCTest

@testable import AQQuant

/// Learned weight ranges (LSQ with a learned offset): the quantizer at given bounds, its
/// straight-through gradients against finite differences, the MSE-optimal start, and the
/// round trip through a quantization-aware directory and the packed format.
final class LearnedRangeTests: XCTestCase {
    /// Forward: each group on the 2^b-level grid of its fp16-rounded bounds, clamped to them.
    func testForwardClampsToTheRoundedBounds() {
        let w = Tensor(shape: [4, 6], values: randomValues(24, seed: 1))
        // Group 0 at 2 bits within bounds that round to fp16 (-0.75, 0.5); group 1 pruned.
        let ranges = Tensor(shape: [2, 2], values: [-0.75001, 0.50002, 0, 1])
        let y = Tape.inference.fakeQuantize(w, groupBits: [2, 0], ranges: ranges)
        let lo: Float = -0.75, hi: Float = 0.5, step = (hi - lo) / 3
        for i in 0..<12 {
            let code = min(max((w.array[i] - lo) / step, 0), 3).rounded()
            XCTAssertEqual(y.array[i], code * step + lo, accuracy: 1e-6, "element \(i)")
        }
        XCTAssertEqual(Array(y.array.suffix(12)), [Float](repeating: 0, count: 12))
        XCTAssertEqual(LearnedRanges.effective(ranges), [-0.75, 0.5, 0, 1])
        // Bounds that round to one value get a one-step range above it.
        var lo1: Float = 0, hi1: Float = 0
        aq_learned_range(0.3, 0.30001, &lo1, &hi1)
        XCTAssertEqual(lo1, Float(Float16(0.3)))
        XCTAssertGreaterThan(hi1, lo1)
    }

    /// LSQ's gradients for the bounds and the weights against central differences of the
    /// straight-through surrogate: with the rounding residual r = round(v) - v and each value's
    /// region (below, inside, above) held at the base point, x_hat = lo (below), hi (above),
    /// x + r (hi - lo) / L (inside). (The quantizer itself is piecewise constant in lo and hi;
    /// the surrogate is what the straight-through estimator differentiates.)
    func testBoundAndWeightGradientsMatchFiniteDifferencesOfTheSurrogate() {
        let groups = 3, rows = 6, k = 7, n = rows / groups * k
        let bits = [2, 3, 4]
        let w = Tensor(shape: [rows, k], values: randomValues(rows * k, seed: 2), requiresGrad: true)
        // fp16-exact bounds that clip both tails of every group.
        let bounds: [Float] = [-0.875, 0.625, -1.0, 0.75, -0.5, 1.25]
        let ranges = Tensor(shape: [groups, 2], values: bounds, requiresGrad: true)
        let dy = randomValues(rows * k, seed: 3)
        let tape = Tape()
        let y = tape.fakeQuantize(w, groupBits: bits, ranges: ranges)
        y.ensureGrad().pointer.update(from: dy, count: dy.count)
        tape.runBackward()
        let dRanges = ranges.gradArray!, dW = w.gradArray!
        var clippedBelow = 0, clippedAbove = 0
        for j in 0..<groups {
            let levels = Double((1 << bits[j]) - 1)
            let lo0 = Double(bounds[2 * j]), hi0 = Double(bounds[2 * j + 1])
            let xs = (0..<n).map { Double(w.array[j * n + $0]) }
            // Regions and residuals at the base point.
            let v0 = xs.map { ($0 - lo0) * levels / (hi0 - lo0) }
            let r0 = v0.map { $0.rounded(.toNearestOrEven) - $0 }
            func surrogate(_ lo: Double, _ hi: Double, _ x: [Double]) -> Double {
                var s = 0.0
                for i in 0..<n {
                    let value = v0[i] < 0 ? lo : (v0[i] > levels ? hi : x[i] + r0[i] * (hi - lo) / levels)
                    s += value * Double(dy[j * n + i])
                }
                return s
            }
            let h = 1e-4
            let dLo = (surrogate(lo0 + h, hi0, xs) - surrogate(lo0 - h, hi0, xs)) / (2 * h)
            let dHi = (surrogate(lo0, hi0 + h, xs) - surrogate(lo0, hi0 - h, xs)) / (2 * h)
            XCTAssertEqual(Double(dRanges[2 * j]), dLo, accuracy: 1e-4, "d lo of group \(j)")
            XCTAssertEqual(Double(dRanges[2 * j + 1]), dHi, accuracy: 1e-4, "d hi of group \(j)")
            for i in 0..<n {
                var plus = xs, minus = xs
                plus[i] += h
                minus[i] -= h
                let dx = (surrogate(lo0, hi0, plus) - surrogate(lo0, hi0, minus)) / (2 * h)
                XCTAssertEqual(Double(dW[j * n + i]), dx, accuracy: 1e-4, "d w[\(j * n + i)]")
            }
            clippedBelow += v0.filter { $0 < 0 }.count
            clippedAbove += v0.filter { $0 > levels }.count
        }
        XCTAssertGreaterThan(clippedBelow, 0, "the data exercise the lower clamp")
        XCTAssertGreaterThan(clippedAbove, 0, "the data exercise the upper clamp")
        // The same rules in LSQ's own terms for one group: d/d step = sum dy (round(v) - v)
        // inside, sum dy * L above; d/d offset = sum dy over the clamped values. With
        // lo = offset, hi = offset + L step: d step = L d hi, d offset = d lo + d hi.
        let levels = Float(3), lo: Float = -0.875, hi: Float = 0.625, s = (hi - lo) / levels
        var dStep = 0.0, dOffset = 0.0
        for i in 0..<n {
            let v = (w.array[i] - lo) / s
            if v < 0 { dOffset += Double(dy[i]) } else if v > levels { dOffset += Double(dy[i]); dStep += Double(levels * dy[i]) } else {
                dStep += Double(dy[i]) * Double(v.rounded(.toNearestOrEven) - v)
            }
        }
        XCTAssertEqual(Double(dRanges[1]) * Double(levels), dStep, accuracy: 1e-4)
        XCTAssertEqual(Double(dRanges[0] + dRanges[1]), dOffset, accuracy: 1e-4)
        // Pruned groups pass nothing.
        let t2 = Tape()
        let y2 = t2.fakeQuantize(w, groupBits: [0, 2, 0], ranges: ranges)
        w.grad = nil
        ranges.grad = nil
        y2.ensureGrad().pointer.update(from: dy, count: dy.count)
        t2.runBackward()
        XCTAssertEqual(Array(ranges.gradArray!.prefix(2)), [0, 0])
        XCTAssertEqual(Array(w.gradArray!.prefix(n)), [Float](repeating: 0, count: n))
    }

    /// The MSE start never does worse than min/max, clips the tails of a group with outliers,
    /// and returns fp16 bounds inside the group's range.
    func testMSEInitialisationClipsOutliers() {
        var x = randomValues(1152, seed: 4, scale: 0.05)
        x[7] = 0.6
        x[99] = -0.45
        let w = Tensor(shape: [3, 384], values: x)
        for bits in [2, 3, 4, 8] {
            let mse = LearnedRanges.initial(w, groupBits: [bits], method: .mse).array
            let minmax = LearnedRanges.initial(w, groupBits: [bits], method: .minmax).array
            func error(_ r: [Float]) -> Double {
                var y = [Float](repeating: 0, count: x.count)
                aq_fake_quantize_range(x, &y, x.count, Int32(bits), r[0], r[1])
                return zip(x, y).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            }
            XCTAssertLessThanOrEqual(error(mse), error(minmax), "bits \(bits)")
            XCTAssertEqual(Float(Float16(mse[0])), mse[0])
            XCTAssertEqual(Float(Float16(mse[1])), mse[1])
            XCTAssertGreaterThanOrEqual(mse[0], minmax[0])
            XCTAssertLessThanOrEqual(mse[1], minmax[1])
            if bits <= 3 {
                XCTAssertLessThan(error(mse), 0.5 * error(minmax), "bits \(bits): the outliers are clipped")
                XCTAssertLessThan(mse[1], 0.5, "bits \(bits)")
            }
        }
    }

    /// A quantization-aware tiny model with learned (moved) ranges: saved and loaded back it
    /// computes the same logits; exported, the packed model computes them bit for bit; the
    /// quantization_config is version 2 with the ranges' file, the packed one version 1.
    func testLearnedRangesRoundTripThroughTheDirectoryAndThePackedModel() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aqbert-lsq-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (m, _) = try BertTaskModel.load(directory: BitPlanTests.tinyModel)
        var plan = try BitPlan.uniform(model: m, bits: 3, groups: 1, candidates: [0, 2, 3, 4, 8])
        for (i, path) in plan.matrices.keys.sorted().enumerated() {
            let rows = plan.matrices[path]!.shape[0]
            let groups = rows == 37 ? 37 : 8
            plan.matrices[path]!.groups = groups
            plan.matrices[path]!.bits = (0..<groups).map { [0, 2, 3, 4, 8][(i + $0) % 5] }
        }
        let q = try QuantizedBert(plan: plan, model: m, ranges: .learned, rangeInitialization: .mse)
        XCTAssertEqual(q.rangeParameters.count, plan.matrices.count)
        // Move every bound a little, as training would (not onto fp16 values).
        for (_, t) in q.rangeParameters {
            for i in 0..<t.count { t.pointer[i] += (i % 2 == 0 ? -0.0123 : 0.0077) }
        }
        let batch = BertBatch(sequences: [[2, 5, 6, 7, 8, 9, 3], [2, 11, 12, 3], [2, 40, 41, 42, 43, 44, 45, 46, 3]])
        q.training = true
        _ = m.forward(batch, tape: .inference)
        q.training = false
        let logits = m.forward(batch, tape: .inference).array

        let qat = dir.appendingPathComponent("qat")
        try m.save(to: qat, labelNames: nil)
        try q.save(to: qat)
        let config = try XCTUnwrap(try QuantizationConfig.read(from: qat))
        XCTAssertEqual(config.version, 2)
        XCTAssertEqual(config.weightRangesFile, QuantizedBert.weightRangesFileName)
        let (m2, _) = try BertTaskModel.load(directory: qat)
        let q2 = try XCTUnwrap(try QuantizedBert.load(from: qat, into: m2))
        XCTAssertEqual(q2.rangeMode, .learned)
        for (path, t) in q.weightRanges { XCTAssertEqual(q2.weightRanges[path]?.array, t.array, path) }
        XCTAssertEqual(m2.forward(batch, tape: .inference).array, logits)

        let packedDir = dir.appendingPathComponent("packed")
        let sizes = try PackedBert.export(model: m2, quantization: q2, to: packedDir)
        XCTAssertEqual(sizes.bytes, sizes.predicted)
        let packedConfig = try XCTUnwrap(try QuantizationConfig.read(from: packedDir))
        XCTAssertEqual(packedConfig.version, 1)
        XCTAssertNil(packedConfig.weightRangesFile)
        let (p, _) = try PackedBert.load(directory: packedDir)
        XCTAssertEqual(p.forward(batch, tape: .inference).array, logits, "packed = quantization-aware, bit for bit")
        // The stored ranges are the effective (fp16) bounds.
        let file = try SafeTensorsFile(url: packedDir.appendingPathComponent("model.safetensors"))
        let path = plan.matrices.keys.sorted()[0]
        let kept = plan.matrices[path]!.bits.enumerated().filter { $0.element > 0 }.map(\.offset)
        let effective = LearnedRanges.effective(q.weightRanges[path]!)
        XCTAssertEqual(try file.floats(path + ".ranges"), kept.flatMap { [effective[2 * $0], effective[2 * $0 + 1]] })

        // A damaged ranges file is an error naming it; a v2 config without one is refused.
        try SafeTensorsWriter.write([(name: "nonsense", shape: [1], values: [0])],
                                    to: qat.appendingPathComponent(QuantizedBert.weightRangesFileName))
        let (m3, _) = try BertTaskModel.load(directory: qat)
        XCTAssertThrowsError(try QuantizedBert.load(from: qat, into: m3)) { error in
            XCTAssertTrue("\(error)".contains(QuantizedBert.weightRangesFileName), "\(error)")
        }
    }
}

import AQBert
import AQQuant
import Foundation
import XCTest

@testable import AQSearch

/// Q-BERT's power iteration against the spectrum of a Hessian formed explicitly (finite
/// differences of gradients, one column per parameter) on a very small BERT block.
final class HessianSensitivityTests: XCTestCase {
    /// A 2-layer BERT with hidden 4 (block 1 has 164 parameters) on a fixed batch.
    func tinyProblem() -> (BertTaskModel, HessianBlock) {
        let c = BertConfig(vocabSize: 20, hiddenSize: 4, numHiddenLayers: 2, numAttentionHeads: 1, intermediateSize: 6,
                           maxPositionEmbeddings: 16)
        let model = BertTaskModel(config: c, architecture: .sequenceClassification, numLabels: 3)
        var g = SeededGenerator(seed: 11)
        model.bert.initializeWeights(generator: &g)
        model.head!.initialize(std: 0.5, generator: &g)
        for p in model.bert.layers[1].denseLayers { p.initialize(std: 0.4, generator: &g) }
        model.training = false
        let batch = BertBatch(sequences: [[2, 5, 6, 7, 3], [2, 9, 10, 3], [2, 11, 12, 13, 14, 3], [2, 15, 3]])
        let labels: [Int32] = [0, 1, 2, 1]
        let parameters = model.bert.layers[1].parameters
        for p in model.parameters { p.requiresGrad = false }
        for p in parameters { p.requiresGrad = true }
        let block = HessianBlock(parameters: parameters) {
            for p in parameters { p.grad = nil }
            let tape = Tape()
            tape.backward(from: model.classificationLoss(model.forward(batch, tape: tape), labels: labels, tape: tape))
            return parameters.flatMap { p in p.grad.map { Array(UnsafeBufferPointer(start: $0.pointer, count: p.count)) } ?? [Float](repeating: 0, count: p.count) }
        }
        return (model, block)
    }

    /// Eigenvalues of a symmetric matrix (cyclic Jacobi rotations, in Double).
    func symmetricEigenvalues(_ a: [[Double]]) -> [Double] {
        var a = a
        let n = a.count
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<n { for j in 0..<n where i != j { off += a[i][j] * a[i][j] } }
            if off < 1e-22 { break }
            for p in 0..<n {
                for q in (p + 1)..<n where abs(a[p][q]) > 1e-300 {
                    let theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
                    let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<n {
                        let akp = a[k][p], akq = a[k][q]
                        a[k][p] = c * akp - s * akq
                        a[k][q] = s * akp + c * akq
                    }
                    for k in 0..<n {
                        let apk = a[p][k], aqk = a[q][k]
                        a[p][k] = c * apk - s * aqk
                        a[q][k] = s * apk + c * aqk
                    }
                }
            }
        }
        return (0..<n).map { a[$0][$0] }
    }

    func testPowerIterationFindsTheTopEigenvalueOfTheExplicitHessian() {
        let (_, block) = tinyProblem()
        let n = block.dimension
        XCTAssertEqual(n, 4 * (4 * 4 + 4) + 2 * 4 + (6 * 4 + 6) + (4 * 6 + 4) + 2 * 4)
        let before = block.parameters.flatMap(\.array)
        let eps = block.step(relativeStep: 1e-3)
        // Column j of H: the product with the unit vector e_j.
        var h = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for j in 0..<n {
            var e = [Float](repeating: 0, count: n)
            e[j] = 1
            let col = block.hessianVectorProduct(e, eps: eps)
            for i in 0..<n { h[i][j] = Double(col[i]) }
        }
        var asymmetry = 0.0, scale = 0.0
        for i in 0..<n { for j in 0..<n { asymmetry = max(asymmetry, abs(h[i][j] - h[j][i])); scale = max(scale, abs(h[i][j])) } }
        XCTAssertLessThan(asymmetry, 1e-2 * scale, "the finite-difference Hessian is symmetric to rounding")
        for i in 0..<n { for j in (i + 1)..<n { let m = (h[i][j] + h[j][i]) / 2; h[i][j] = m; h[j][i] = m } }
        let spectrum = symmetricEigenvalues(h).sorted { abs($0) > abs($1) }
        let top = spectrum[0]
        XCTAssertGreaterThan(abs(top), 1.05 * abs(spectrum[1]), "a spectral gap the iteration can resolve: \(spectrum.prefix(3))")

        let result = HessianSensitivity.topEigenvalue(of: block, seed: 3, tolerance: 1e-6, maxIterations: 500)
        XCTAssertTrue(result.converged)
        XCTAssertEqual(result.eigenvalue, top, accuracy: 1e-3 * abs(top), "spectrum head \(spectrum.prefix(3))")
        // The products leave the parameters exactly as they were.
        XCTAssertEqual(block.parameters.flatMap(\.array), before)
        // A loose tolerance stops earlier, on a Rayleigh quotient that can never exceed the top
        // magnitude (here it stops on a plateau well below it: why the default is 1e-3).
        let loose = HessianSensitivity.topEigenvalue(of: block, seed: 3, tolerance: 1e-2, maxIterations: 500)
        XCTAssertLessThan(loose.iterations, result.iterations)
        XCTAssertLessThanOrEqual(abs(loose.eigenvalue), abs(top) * 1.001)
    }

    func testOmegaIsAbsoluteMeanPlusPopulationStd() {
        XCTAssertEqual(HessianSensitivity.omega([1, 3]), 2 + 1, accuracy: 1e-12)
        XCTAssertEqual(HessianSensitivity.omega([-4, -2]), 3 + 1, accuracy: 1e-12)
        XCTAssertEqual(HessianSensitivity.omega([5]), 5)
        XCTAssertEqual(HessianSensitivity.omega([]), 0)
        // A block whose eigenvalue varies more across subsets ranks higher at the same mean.
        XCTAssertGreaterThan(HessianSensitivity.omega([1, 9]), HessianSensitivity.omega([5, 5]))
    }

    /// plan qbert: the top half of the blocks by Omega at the high width, ties in block order.
    func testQBERTPlanGivesTheSensitiveHalfTheHighWidth() throws {
        var c = BertConfig.tiny
        c.numHiddenLayers = 4
        let model = BertTaskModel(config: c, architecture: .base)
        let plan = try BitPlan.qbert(model: model, omega: [0.5, 7, 0.1, 3], lowBits: 2, highBits: 3, groups: 4)
        for (path, m) in plan.matrices {
            let layer = Int(path.split(separator: ".")[3])!
            XCTAssertEqual(Set(m.bits), [layer == 1 || layer == 3 ? 3 : 2], path)
            XCTAssertEqual(m.groups, 4)
        }
        XCTAssertEqual(plan.averageBits, 2.5, accuracy: 1e-12)
        XCTAssertEqual(plan.candidates, [2, 3])
        XCTAssertEqual(plan.provenance.method, "q-bert")
        XCTAssertEqual(plan.provenance.notes["high_blocks"], "1,3")
        let tie = try BitPlan.qbert(model: model, omega: [1, 1, 1, 1], lowBits: 2, highBits: 4, groups: 1)
        XCTAssertEqual(tie.provenance.notes["high_blocks"], "0,1")
        XCTAssertThrowsError(try BitPlan.qbert(model: model, omega: [1, 2], lowBits: 2, highBits: 3, groups: 1))
        XCTAssertThrowsError(try BitPlan.qbert(model: model, omega: [1, 2, 3, 4], lowBits: 3, highBits: 3, groups: 1))
        XCTAssertThrowsError(try BitPlan.qbert(model: model, omega: [1, 2, 3, 4], lowBits: 2, highBits: 3, groups: 5))
    }
}

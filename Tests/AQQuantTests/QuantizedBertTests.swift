import AQBert
import Foundation
import XCTest

@testable import AQQuant

final class QuantizedBertTests: XCTestCase {
    func model() throws -> BertTaskModel { try BertTaskModel.load(directory: BitPlanTests.tinyModel).model }

    func testEightBitsIsCloseToFP32AndUninstallRestoresIt() throws {
        let m = try model()
        let batch = BertBatch(sequences: [[2, 5, 6, 7, 3], [2, 9, 3]])
        let fp32 = m.forward(batch, tape: .inference).array
        let q = try QuantizedBert(plan: try BitPlan.uniform(model: m, bits: 8, groups: 1), model: m)
        q.training = true
        _ = m.forward(batch, tape: .inference)  // calibrate activation ranges
        q.training = false
        let q8 = m.forward(batch, tape: .inference).array
        let diff = zip(fp32, q8).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(diff, 0, "quantization changes the output")
        XCTAssertLessThan(diff, 0.05, "8-bit weights and activations stay close to fp32")
        XCTAssertEqual(q.activationRanges.count, 12)
        q.uninstall()
        XCTAssertEqual(m.forward(batch, tape: .inference).array, fp32)
    }

    func testPrunedMatricesAreZeroAndGradientsFlowThroughKeptOnes() throws {
        let m = try model()
        var plan = try BitPlan.uniform(model: m, bits: 2, groups: 1, candidates: [0, 2, 4])
        let pruned = "bert.encoder.layer.0.attention.self.value.weight"
        plan.matrices[pruned]!.bits = [0]
        let q = try QuantizedBert(plan: plan, model: m, activationBits: 0)
        let tape = Tape()
        let logits = m.forward(BertBatch(sequences: [[2, 5, 6, 3]]), tape: tape)
        let loss = m.classificationLoss(logits, labels: [1], tape: tape)
        tape.backward(from: loss)
        let params = Dictionary(uniqueKeysWithValues: m.checkpointParameters.map { ($0.name, $0.tensor) })
        XCTAssertEqual(params[pruned]!.gradArray.map { $0.allSatisfy { $0 == 0 } }, true, "pruned group: no gradient")
        let kept = params["bert.encoder.layer.1.attention.self.value.weight"]!.gradArray!
        XCTAssertTrue(kept.contains { $0 != 0 }, "straight-through gradient on kept groups")
        XCTAssertEqual(params[pruned]!.array.contains { $0 != 0 }, true, "the fp32 parameter itself is untouched")
        _ = q
    }
}
